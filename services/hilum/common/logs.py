"""JSON logging for every Hilum process, and the PHI-free references that logs may carry.

Only an allow-list of structured fields reaches the output: libraries attach their own `extra` data
(Celery adds task arguments, which hold study UIDs), and nothing that could identify a patient may
be written to a log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
import warnings
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from opentelemetry import trace

# Structured fields Hilum's own code logs; each is free of patient data by construction.
SAFE_FIELDS = frozenset({
    "service", "stage", "study_ref", "model_version", "retry", "code", "has_prior", "door", "count", "error_type",
    "destination", "event", "attempts", "prior_source",
})


REFERENCE_KEY_FILE = "reference.key"


@cache
def _reference_key() -> bytes:
    """This process's reference key: settings.references.key, else the data folder's reference.key; b"" when neither
    (read once: every reference a process makes must agree)."""
    from hilum.common.settings import HilumSettings  # settings do not log; no import cycle

    settings = HilumSettings()
    if settings.references.key:
        return settings.references.key.encode()
    path = settings.storage.data_dir / REFERENCE_KEY_FILE
    return path.read_bytes().strip() if path.is_file() else b""


def ensure_reference_key(data_dir: Path) -> Path:
    """The data folder's reference.key, created (random, readable by its owner only) when there is none: the
    embedded stack's key, unless settings.references.key gives one."""
    path = data_dir / REFERENCE_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secrets.token_hex(32))
    return path


def keyed_digest(value: str) -> str:
    """HMAC-SHA256 of value under the reference key, in hex: non-reversible, and without the key no guessed
    identifier can be tested against it. Plain SHA-256 when no key is configured."""
    key = _reference_key()
    if not key:
        return hashlib.sha256(value.encode()).hexdigest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def study_ref(study_instance_uid: str) -> str:
    """A short, stable, non-reversible reference to a study for logs, traces and `hilum status` (UIDs can identify
    patients): the keyed digest's first 12 hex digits."""
    return keyed_digest(study_instance_uid)[:12]


class WithoutQueryStrings(logging.Filter):
    """Drops the query string from uvicorn's access log lines: FHIR searches carry MRNs and UIDs there.

    uvicorn.access records have args (client, method, path with query, HTTP version, status).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the allow-listed structured fields, and the trace and
    span ids of the span the line was logged in (when tracing is on), so that a line leads to its study's trace."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k in SAFE_FIELDS})
        span = trace.get_current_span().get_span_context()  # formatted in the thread that logged
        if span.is_valid:
            entry["trace_id"], entry["span_id"] = f"{span.trace_id:032x}", f"{span.span_id:016x}"
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger to stderr as JSON lines tagged with the service name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pydicom quotes offending attribute values (names, IDs) in its warnings: keep them out of the logs.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    # highdicom names the source datasets (by SOP Instance UID) as it builds a structured report.
    logging.getLogger("highdicom").setLevel(logging.ERROR)
    # httpx logs every request's URL at INFO, and FHIR search URLs carry MRNs and UIDs in their query.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, WithoutQueryStrings) for f in access.filters):
        access.addFilter(WithoutQueryStrings())
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
    old_factory = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        record.service = service
        return record

    logging.setLogRecordFactory(factory)
