"""JSON logging for every Hilum process, and the PHI-free references that logs may carry.

Only an allow-list of structured fields reaches the output: libraries attach their own `extra` data
(Celery adds task arguments, which hold study UIDs), and nothing that could identify a patient may
be written to a log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import warnings
from datetime import UTC, datetime

# Structured fields Hilum's own code logs; each is free of patient data by construction.
SAFE_FIELDS = frozenset({
    "service", "stage", "study_ref", "model_version", "retry", "code", "has_prior", "door", "count", "error_type",
    "destination", "event", "attempts", "prior_source",
})


def study_ref(study_instance_uid: str) -> str:
    """A short, stable, non-reversible reference to a study for logs and traces (UIDs can identify patients)."""
    return hashlib.sha256(study_instance_uid.encode()).hexdigest()[:12]


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
    """One JSON object per line: time, level, logger, message and the allow-listed structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k in SAFE_FIELDS})
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
