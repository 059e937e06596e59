"""Logs carry no patient data: only allow-listed fields, and hashed study references."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from hilum.common.logs import JsonFormatter, WithoutQueryStrings, configure_logging, ensure_reference_key, study_ref
from tests.helpers import REFERENCE_KEY

UID = "2.25.208296826420722990248074954278195765583"


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1, "Task succeeded", None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_library_extras_with_payloads_are_dropped() -> None:
    line = JsonFormatter().format(_record(data={"args": f"[{UID}]", "name": "hilum.inference.run"},
                                          patient_name="DOE^JANE", study_ref=study_ref(UID), stage="inference"))
    entry = json.loads(line)
    assert UID not in line and "DOE" not in line
    assert entry["study_ref"] == study_ref(UID) and entry["stage"] == "inference"
    assert set(entry) == {"time", "level", "logger", "message", "study_ref", "stage"}


def test_study_ref_is_stable_short_and_not_the_uid() -> None:
    assert study_ref(UID) == study_ref(UID)
    assert len(study_ref(UID)) == 12 and study_ref(UID) not in UID


def test_access_log_lines_lose_their_query_strings() -> None:
    path = f"/fhir/DiagnosticReport?patient:identifier=urn:mrn|MRN-7&x={UID}"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", path, "1.1", 200), None)
    assert WithoutQueryStrings().filter(record)
    line = JsonFormatter().format(record)
    assert "MRN-7" not in line and UID not in line
    assert json.loads(line)["message"] == '127.0.0.1:5 - "GET /fhir/DiagnosticReport HTTP/1.1" 200'


def test_httpx_request_lines_with_their_urls_are_not_logged() -> None:
    root, quieted = logging.getLogger(), [logging.getLogger(name) for name in ("pydicom", "highdicom", "httpx")]
    access = logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, logging.getLogRecordFactory(), [logger.level for logger in quieted],
             access.filters[:])
    try:
        configure_logging("priors-worker")
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)  # "HTTP Request: GET <url with MRN>"
        assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.setLogRecordFactory(saved[2])
        for logger, level in zip(quieted, saved[3], strict=True):
            logger.setLevel(level)
        access.filters[:] = saved[4]  # configure_logging's query-string filter must not reach other tests


REFERENCE = "from hilum.common.logs import study_ref; print(study_ref('1.2.3'))"


def _reference_in_a_process(env: dict[str, str], data_dir: Path) -> str:
    """study_ref('1.2.3') as a fresh process with env (and its data folder) makes it: the key is read once."""
    clean = {k: v for k, v in os.environ.items() if k != "HILUM_REFERENCES__KEY"}
    done = subprocess.run([sys.executable, "-c", REFERENCE], capture_output=True, text=True, timeout=60,
                          env={**clean, "HILUM_STORAGE__DATA_DIR": str(data_dir), **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_references_are_keyed_by_the_configured_key_else_the_data_folders(tmp_path: Path) -> None:
    def keyed(key: str) -> str:
        return hmac.new(key.encode(), b"1.2.3", hashlib.sha256).hexdigest()[:12]

    assert study_ref("1.2.3") == keyed(REFERENCE_KEY)  # this process: the tests' key
    # Neither a key nor a key file: plain SHA-256, which anyone could recompute from a guessed UID or MRN.
    assert _reference_in_a_process({}, tmp_path / "none") == hashlib.sha256(b"1.2.3").hexdigest()[:12]
    assert _reference_in_a_process({"HILUM_REFERENCES__KEY": "k1"}, tmp_path / "none") == keyed("k1")
    path = ensure_reference_key(tmp_path / "data")
    assert path == ensure_reference_key(tmp_path / "data")  # made once, then kept
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text()) == 64
    assert _reference_in_a_process({}, tmp_path / "data") == keyed(path.read_text())
    assert _reference_in_a_process({"HILUM_REFERENCES__KEY": "k1"}, tmp_path / "data") == keyed("k1")  # key wins


def test_a_line_logged_in_a_span_carries_its_trace_and_span_ids() -> None:
    context = SpanContext(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7, is_remote=False,
                          trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(context)):
        entry = json.loads(JsonFormatter().format(_record(study_ref=study_ref(UID))))
    assert (entry["trace_id"], entry["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert "trace_id" not in json.loads(JsonFormatter().format(_record()))  # outside any span: none
