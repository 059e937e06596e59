"""Publishing's core: each delivery sent once, failures counted with backoff, dead after the last attempt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import deliveries
from hilum.common.destinations import DeliveryEvent, Destination
from hilum.common.errors import PermanentError, TransientError
from hilum.common.settings import PublishSection
from hilum.publishing.service import PublishedReport, Publishing, Sender, load_published
from hilum.v1 import messages_pb2, publishing_pb2
from tests.helpers import audit_events, audited_patient_ids
from tests.unit.publishing.conftest import PATIENT

NOW = datetime(2025, 2, 18, 12, 0, tzinfo=UTC)
POLICY = PublishSection(max_attempts=3, backoff_base_s=2.0, backoff_max_s=5.0)


class Recorder:
    """A sender that records what it was asked to send and fails as scripted (None: succeed)."""

    def __init__(self, *failures: Exception | None) -> None:
        self.failures = list(failures)
        self.sent: list[tuple[str, DeliveryEvent]] = []

    def __call__(self, report: PublishedReport, event: DeliveryEvent) -> str:
        self.sent.append((report.study.study_instance_uid, event))
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        return f"receipt-{len(self.sent)}"


def _publishing(sessions: sessionmaker[Session], senders: dict[Destination, Sender]) -> Publishing:
    return Publishing(sessions, senders, POLICY, clock=lambda: NOW)


def test_a_delivery_is_sent_once(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    (request,) = publish_study("8.1", (Destination.MLLP,)).deliveries
    sender = Recorder()
    publishing = _publishing(sqlite_sessions, {Destination.MLLP: sender})
    first = publishing.deliver(request)
    assert first.status == publishing_pb2.DELIVERY_STATUS_DELIVERED and first.receipt == "receipt-1"
    again = publishing.deliver_or_retry(request)  # a redelivered queue message
    assert again.status == publishing_pb2.DELIVERY_STATUS_DELIVERED and again.attempts == 1
    assert sender.sent == [("8.1", DeliveryEvent.PRELIMINARY)]


def test_transient_failures_are_retried_with_backoff_then_dead_lettered(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    (request,) = publish_study("8.2", (Destination.FHIR_SERVER,)).deliveries
    sender = Recorder(TransientError("503 from the server"), TransientError("timed out"), TransientError("reset"))
    publishing = _publishing(sqlite_sessions, {Destination.FHIR_SERVER: sender})
    with pytest.raises(TransientError) as first:
        publishing.deliver_or_retry(request)
    assert first.value.retry_after_s is not None and 2.0 <= first.value.retry_after_s <= 2.2
    with pytest.raises(TransientError) as second:
        publishing.deliver_or_retry(request)
    assert second.value.retry_after_s is not None and 4.0 <= second.value.retry_after_s <= 4.4
    dead = publishing.deliver_or_retry(request)  # the third and last attempt: recorded, not raised
    assert dead.status == publishing_pb2.DELIVERY_STATUS_DEAD and dead.attempts == 3
    assert dead.last_error == "reset"
    assert publishing.deliver(request).attempts == 3  # a dead delivery is not tried again
    assert len(sender.sent) == 3
    # Every attempt is an Export in the audit trail, with what went wrong.
    exports = audit_events(sqlite_sessions, "110106")
    assert [(e["outcome"], e.get("outcomeDesc")) for e in exports] == [
        ("8", "503 from the server"), ("8", "timed out"), ("8", "reset")]


def test_a_delivered_result_is_an_export_naming_destination_patient_and_report(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    published = publish_study("8.9", (Destination.MLLP, Destination.PACS))
    mllp, pacs = published.deliveries
    publishing = _publishing(sqlite_sessions, {Destination.MLLP: Recorder(),
                                               Destination.PACS: Recorder(PermanentError("SOP class refused"))})
    publishing.deliver(mllp)
    publishing.deliver(pacs)
    delivered, refused = audit_events(sqlite_sessions, "110106")
    assert (delivered["outcome"], refused["outcome"]) == ("0", "4")
    assert delivered["agent"][1]["who"]["identifier"]["value"] == "mllp"
    assert audited_patient_ids(delivered) == [PATIENT.patient_id]
    assert {"reference": f"DiagnosticReport/{published.diagnostic_report_id}"} in [
        entity["what"] for entity in delivered["entity"]]
    assert {"type": "receipt", "valueString": "receipt-1"} in delivered["entity"][-1]["detail"]
    assert refused["outcomeDesc"] == "refused: SOP class refused"


def test_a_refusal_is_dead_lettered_at_once(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    (request,) = publish_study("8.3", (Destination.PACS,)).deliveries
    publishing = _publishing(sqlite_sessions, {Destination.PACS: Recorder(PermanentError("SOP class refused"))})
    outcome = publishing.deliver_or_retry(request)
    assert outcome.status == publishing_pb2.DELIVERY_STATUS_DEAD and outcome.attempts == 1
    assert outcome.last_error == "refused: SOP class refused"


def test_an_unexpected_error_is_counted_like_a_transient_one(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    (request,) = publish_study("8.4", (Destination.MLLP,)).deliveries
    publishing = _publishing(sqlite_sessions, {Destination.MLLP: Recorder(KeyError("boom"))})
    outcome = publishing.deliver(request)
    assert outcome.status == publishing_pb2.DELIVERY_STATUS_PENDING
    assert outcome.last_error == "unexpected KeyError"


def test_each_destination_is_delivered_on_its_own(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    requests = publish_study("8.5").deliveries
    failing, working = Recorder(PermanentError("down for good")), Recorder()
    publishing = _publishing(sqlite_sessions, {Destination.FHIR_SERVER: working, Destination.MLLP: failing,
                                               Destination.PACS: working})
    statuses = {r.destination: publishing.deliver(r).status for r in requests}
    assert statuses == {"fhir_server": publishing_pb2.DELIVERY_STATUS_DELIVERED,
                        "mllp": publishing_pb2.DELIVERY_STATUS_DEAD,
                        "pacs": publishing_pb2.DELIVERY_STATUS_DELIVERED}


def test_an_unconfigured_destination_and_an_unplanned_delivery(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    (request,) = publish_study("8.6", (Destination.MLLP,)).deliveries
    outcome = _publishing(sqlite_sessions, {}).deliver(request)
    assert outcome.status == publishing_pb2.DELIVERY_STATUS_DEAD
    assert outcome.last_error == "destination mllp is not configured"
    unplanned = messages_pb2.DeliveryRequest(study_instance_uid="8.6", model_version="x", destination="mllp",
                                             event="preliminary")
    with pytest.raises(PermanentError, match="no such delivery"):
        _publishing(sqlite_sessions, {}).deliver(unplanned)


def test_the_published_report_is_rebuilt_from_the_store(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    result = publish_study("8.7", ())
    with sqlite_sessions() as session:
        report = load_published(session, "8.7", result.model.version)
    assert report.study.study_instance_uid == "8.7" and report.diagnostic_report_id == result.diagnostic_report_id
    assert [f.code for f in report.reported.present] == ["pneumothorax"]
    assert report.draft == result.draft and report.bundle["resourceType"] == "Bundle"


def test_retry_waits_grow_and_are_capped() -> None:
    publishing = Publishing(sessionmaker(), {}, POLICY)
    waits = [publishing.retry_in_s(n) for n in (1, 2, 3, 4)]
    assert 2.0 <= waits[0] <= 2.2 and 4.0 <= waits[1] <= 4.4 and all(5.0 <= w <= 5.5 for w in waits[2:])


def test_the_row_schedules_the_next_attempt(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    (request,) = publish_study("8.8", (Destination.MLLP,)).deliveries
    _publishing(sqlite_sessions, {Destination.MLLP: Recorder(TransientError("AE"))}).deliver(request)
    with sqlite_sessions() as session:
        row = deliveries.find(session, request)
        assert row is not None and row.next_attempt_at is not None
        due = row.next_attempt_at.replace(tzinfo=UTC)
        assert NOW + timedelta(seconds=2) <= due <= NOW + timedelta(seconds=2.2)


def test_a_delivery_given_up_on_is_counted_once_for_its_destination(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    def dead_count() -> float:
        return REGISTRY.get_sample_value("hilum_deliveries_dead_total", {"destination": "pacs"}) or 0.0

    (request,) = publish_study("8.9", (Destination.PACS,)).deliveries
    publishing = _publishing(sqlite_sessions, {Destination.PACS: Recorder(PermanentError("SOP class refused"))})
    before = dead_count()
    assert publishing.deliver_or_retry(request).status == publishing_pb2.DELIVERY_STATUS_DEAD
    publishing.deliver(request)  # already dead: not sent, not counted again
    assert dead_count() == before + 1
