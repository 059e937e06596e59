"""One connected trace per study, across every process of the running stack, and no patient data in any span; every
access to the patient is an AuditEvent, read back through the FHIR API and received by a syslog audit repository.

The embedded stack (SQLite, demo weights, real Triton, a real HL7 v2 interface engine to publish to) exports its
traces to a loopback OTLP/gRPC collector (tests/otlp_receiver.py) and its audit trail to a loopback syslog repository
(tests/syslog_receiver.py). A study with a distinctive patient goes through the gRPC door; its spans are read back
from the collector.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pydicom
import pytest
import redis as redis_lib

from hilum.common import study_state
from hilum.common.db.session import upgrade_database
from hilum.common.logs import study_ref
from hilum.common.polling import wait_until
from hilum.common.settings import AuditSection, MllpDestination, PublishSection, TelemetrySection
from hilum.common.tracing import STUDY_REF
from hilum.ingestion.client import IngestionClient
from hilum.runtime.ports import loopback_settings
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from tests.integration.conftest import server_venv
from tests.mllp_peer import MllpPeer
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.syslog_receiver import SyslogReceiver

pytestmark = pytest.mark.integration

PATIENT_ID, PATIENT_NAME, BIRTH = "TRACE-MRN-4711", "TRACEFAMILY^TRACEGIVEN", date(1933, 3, 3)
STUDY = dataclasses.replace(SAMPLE_STUDIES[2], patient_id=PATIENT_ID, patient_name=PATIENT_NAME, birth_date=BIRTH,
                            seed=4711, label="traced", rows=640, columns=512)
# Every stage's Celery task, each in its worker process.
STAGE_TASKS = {f"run/hilum.{stage}.run" for stage in ("inference", "priors", "reporting", "publishing")}


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def audit_repository() -> Iterator[SyslogReceiver]:
    with SyslogReceiver("tcp") as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced_stack(tmp_path_factory: pytest.TempPathFactory, demo_model_repository: Path, collector: OtlpReceiver,
                 audit_repository: SyslogReceiver) -> Iterator[tuple[EmbeddedStack, MllpPeer]]:
    settings = loopback_settings(tmp_path_factory.mktemp("stack"), demo_model_repository, server_venv())
    settings.telemetry = TelemetrySection(otlp_endpoint=collector.endpoint)
    settings.audit = AuditSection(site="Trace General", syslog_url=audit_repository.url)
    old_delay = os.environ.get("OTEL_BSP_SCHEDULE_DELAY")
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"  # the processes export every 0.2 s, not every 5 s
    try:
        with MllpPeer() as engine:
            settings.publish = PublishSection(mllp=MllpDestination(host="127.0.0.1", port=engine.port, timeout_s=10))
            upgrade_database(settings.database_url)
            with EmbeddedStack(settings) as running:
                yield running, engine
    finally:
        if old_delay is None:
            os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
        else:
            os.environ["OTEL_BSP_SCHEDULE_DELAY"] = old_delay


@pytest.fixture(scope="module")
def study_trace(traced_stack: tuple[EmbeddedStack, MllpPeer], collector: OtlpReceiver,
                tmp_path_factory: pytest.TempPathFactory) -> list[ReceivedSpan]:
    """Every span of the trace the study's spans are in, once its HL7 v2 message was delivered."""
    stack, engine = traced_stack
    grpc = stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        [accepted] = client.submit_files([write_study(STUDY, tmp_path_factory.mktemp("study"))])
        assert accepted.accepted
        status = client.wait_for([STUDY.study_instance_uid], timeout_s=180)[STUDY.study_instance_uid]
    assert status.state == study_state.REPORTED, status.error
    ref = study_ref(STUDY.study_instance_uid)

    def delivered_span() -> bool:
        return any(s.span.name == "deliver" and s.attributes.get(STUDY_REF) == ref for s in collector.spans())

    wait_until(delivered_span, timeout_s=60, interval_s=0.2, what="the delivery's span at the collector")
    wait_until(lambda: len(engine.received) == 1, timeout_s=30, interval_s=0.2, what="the ORU at the engine")
    trace_ids = {s.span.trace_id for s in collector.spans() if s.attributes.get(STUDY_REF) == ref}
    assert len(trace_ids) == 1, f"the study's spans are in {len(trace_ids)} traces"
    [trace_id] = trace_ids

    def settled() -> bool:  # the last processes' batches may still be on their way
        spans = [s for s in collector.spans() if s.span.trace_id == trace_id]
        return STAGE_TASKS <= {s.span.name for s in spans}

    wait_until(settled, timeout_s=30, interval_s=0.2, what="every stage's span at the collector")
    return [s for s in collector.spans() if s.span.trace_id == trace_id]


def test_one_connected_trace_spans_every_service_from_door_to_delivery(study_trace: list[ReceivedSpan]) -> None:
    names = {s.span.name for s in study_trace}
    assert STAGE_TASKS <= names
    assert {"ingest instance", "hand on to inference", "deliver"} <= names
    assert "/hilum.v1.IngestionService/SubmitInstances" in names  # the door
    assert "/inference.GRPCInferenceService/ModelInfer" in names  # the call to Triton
    redis_commands = [s for s in study_trace if "redis" in (s.attributes.get("db.system"),
                                                            s.attributes.get("db.system.name"))]
    assert redis_commands  # e.g. the CDS view reporting writes
    statements = [str(s.attributes.get("db.statement", s.attributes.get("db.query.text", ""))) for s in redis_commands]
    # Commands (a pipeline's one per line), every argument and key a "?".
    assert all(word == "?" or word.isalpha() and word.isupper() for text in statements for word in text.split()), \
        statements
    services = {s.service for s in study_trace}
    assert {"hilum-grpc", "hilum-inference-worker", "hilum-reporting-worker",
            "hilum-ingestion-priors-publishing-worker"} <= services
    # One tree: a single root (the door's call), and every other span's parent is in the trace.
    ids = {s.span.span_id for s in study_trace}
    roots = [s for s in study_trace if s.span.parent_span_id not in ids]
    assert [s.span.name for s in roots] == ["/hilum.v1.IngestionService/SubmitInstances"]


def test_every_access_to_the_patient_is_audited_readable_by_patient_and_sent_to_the_siem(
        study_trace: list[ReceivedSpan], traced_stack: tuple[EmbeddedStack, MllpPeer],
        audit_repository: SyslogReceiver) -> None:
    """Import (the gRPC door), inference (the demo model), the prior lookup (Hilum's store) and export (the HL7 v2
    engine) are AuditEvents of the patient, found by `AuditEvent?patient:identifier=`; the search itself is one
    too; each reaches the audit repository as a DICOM audit message naming the patient."""
    stack, _ = traced_stack
    system = stack.settings.fhir.patient_identifier_system
    search = {"patient:identifier": f"{system}|{PATIENT_ID}", "_count": "100"}
    found = httpx.get(f"{stack.cds_url}/fhir/AuditEvent", params=search, timeout=10).json()
    events = [entry["resource"] for entry in found["entry"]]
    by_type = {event["type"]["code"]: event for event in events}
    assert {"110107", "110103", "110112", "110106"} <= set(by_type)  # import, inference, query, export
    inference = by_type["110103"]
    assert {"type": "weights", "valueString": "demo, unvalidated"} in inference["entity"][-1]["detail"]
    assert inference["source"]["site"] == "Trace General"
    assert by_type["110106"]["agent"][1]["who"]["identifier"]["value"] == "mllp"

    def searches_audited() -> bool:  # the API's own events reach the database through the spool's drain
        again = httpx.get(f"{stack.cds_url}/fhir/AuditEvent", params={**search, "subtype": "search-type"}, timeout=10)
        return bool(again.json().get("entry"))

    wait_until(searches_audited, timeout_s=30, interval_s=0.2, what="the audit trail's own search in it")

    def exported() -> set[str]:
        return {message.audit_message.find("EventIdentification/EventID").attrib["csd-code"]  # type: ignore[union-attr]
                for message in audit_repository.received()
                if any(o.attrib["ParticipantObjectID"].split("^")[0] == PATIENT_ID
                       for o in message.audit_message.findall("ParticipantObjectIdentification"))}

    wait_until(lambda: {"110107", "110103", "110112", "110106", "rest"} <= exported(), timeout_s=30, interval_s=0.2,
               what="the patient's audit messages at the repository")
    assert audit_repository.errors == []
    assert {message.pri for message in audit_repository.received()} == {85}


def test_no_log_line_span_metric_label_or_redis_key_carries_the_patient(
        study_trace: list[ReceivedSpan], collector: OtlpReceiver,
        traced_stack: tuple[EmbeddedStack, MllpPeer]) -> None:
    """The patient's name, id and birth date and the study's UIDs appear nowhere Hilum writes for operators: every
    span any process sent, every line of every process's log, every label of every process's metrics, every Redis
    key."""
    stack, _ = traced_stack
    header = pydicom.dcmread(write_study(STUDY, stack.data_dir / "scan"), stop_before_pixels=True)
    forbidden = (PATIENT_ID, "TRACEFAMILY", "TRACEGIVEN", BIRTH.strftime("%Y%m%d"), BIRTH.isoformat(),
                 header.StudyInstanceUID, header.SeriesInstanceUID, header.SOPInstanceUID)

    def leaked(text: str) -> list[str]:
        return [secret for secret in forbidden if secret in text]

    for received in collector.spans():
        texts = [received.span.name, str(received.attributes), received.span.status.message,
                 *(str(event) for event in received.span.events)]
        assert not [secret for text in texts for secret in leaked(text)], (received.service, received.span.name, texts)
    logs = {path.name: path.read_text(errors="replace") for path in stack.log_dir.glob("*.log")}
    assert "inference-worker.log" in logs and study_ref(STUDY.study_instance_uid) in logs["inference-worker.log"]
    assert f'"trace_id": "{study_trace[0].span.trace_id.hex()}"' in logs["inference-worker.log"]  # a line leads to it
    assert not {name: leaked(text) for name, text in logs.items() if leaked(text)}
    scraped = 0
    for port in stack.settings.metrics.process_ports.values():
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        labels = [line for line in metrics.splitlines() if "{" in line and not line.startswith("#")]
        scraped += len(labels)
        assert not [line for line in labels if leaked(line)]
    assert scraped > 0
    client = redis_lib.Redis.from_url(stack.settings.redis.url)
    keys = [key.decode(errors="replace") for key in client.scan_iter("*")]
    assert any(key.startswith("hilum:cds:patient:") for key in keys)
    assert not [key for key in keys if leaked(key)]
