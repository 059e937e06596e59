"""Senders: the ORU of each event over MLLP to a real listener, stable control ids, configured destinations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.destinations import DeliveryEvent, Destination
from hilum.common.errors import TransientError
from hilum.common.settings import FhirSection, HilumSettings, MllpDestination, PublishSection
from hilum.publishing.oru import validate_oru
from hilum.publishing.senders import configured_senders, mllp_sender, oru_control_id
from hilum.publishing.service import load_published
from hilum.reporting.service import Reporting
from hilum.v1 import messages_pb2
from tests.helpers import demo_comparison
from tests.mllp_peer import MllpPeer

NOW = datetime(2025, 2, 18, 12, 0, tzinfo=UTC)


def test_control_ids_are_stable_short_and_differ_per_event() -> None:
    first = oru_control_id("1.2.3", "v1", DeliveryEvent.PRELIMINARY)
    assert first == oru_control_id("1.2.3", "v1", DeliveryEvent.PRELIMINARY) and len(first) == 20
    assert first != oru_control_id("1.2.3", "v1", DeliveryEvent.AMENDED)
    assert first != oru_control_id("1.2.3", "v2", DeliveryEvent.PRELIMINARY)


@pytest.mark.parametrize(("event", "status"), [(DeliveryEvent.PRELIMINARY, "P"), (DeliveryEvent.AMENDED, "C"),
                                               (DeliveryEvent.CANCELLED, "X")])
def test_the_oru_of_each_event_reaches_the_engine_valid(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult],
    event: DeliveryEvent, status: str,
) -> None:
    result = publish_study("6.1", ())
    with sqlite_sessions() as session:
        report = load_published(session, "6.1", result.model.version)
    with MllpPeer() as engine:
        send = mllp_sender(MllpDestination(host="127.0.0.1", port=engine.port, timeout_s=5), FhirSection(),
                           lambda: NOW)
        receipt = send(report, event)
    (message,) = engine.received
    text = message.decode()
    assert receipt == f"AA {oru_control_id('6.1', result.model.version, event)}"
    assert validate_oru(text) == []
    obr = next(line for line in text.split("\r") if line.startswith("OBR|")).split("|")
    assert obr[25] == status


def test_a_nak_is_a_transient_failure(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult]
) -> None:
    result = publish_study("6.2", ())
    with sqlite_sessions() as session:
        report = load_published(session, "6.2", result.model.version)
    with MllpPeer(naks=["AE"]) as engine:
        send = mllp_sender(MllpDestination(host="127.0.0.1", port=engine.port, timeout_s=5), FhirSection(),
                           lambda: NOW)
        with pytest.raises(TransientError):
            send(report, DeliveryEvent.PRELIMINARY)
        assert send(report, DeliveryEvent.PRELIMINARY).startswith("AA ")


def test_only_configured_destinations_get_a_sender(tmp_settings: HilumSettings) -> None:
    assert configured_senders(tmp_settings) == {}
    settings = tmp_settings.model_copy(update={"publish": PublishSection(mllp=MllpDestination(host="engine"))})
    assert set(configured_senders(settings)) == {Destination.MLLP}


def test_the_report_of_a_reprocessed_study_reaches_the_engine_as_a_correction_of_the_order(
    sqlite_sessions: sessionmaker[Session], publish_study: Callable[..., messages_pb2.PublishResult],
    tmp_path: Path, redis_client: redis_lib.Redis,
) -> None:
    first = publish_study("6.3", ())
    comparison = demo_comparison("6.3")
    comparison.current.model.CopyFrom(messages_pb2.ModelInfo(name="cxr_findings", version="2.0.0"))
    Reporting(sqlite_sessions, tmp_path / "out", redis_client, FhirSection(), (),
              clock=lambda: datetime(2025, 3, 1, 8, 0, tzinfo=UTC)).publish(comparison)
    with sqlite_sessions() as session:
        earlier, amended = (load_published(session, "6.3", version) for version in (first.model.version, "2.0.0"))
    with MllpPeer() as engine:
        send = mllp_sender(MllpDestination(host="127.0.0.1", port=engine.port, timeout_s=5), FhirSection(),
                           lambda: NOW)
        send(earlier, DeliveryEvent.PRELIMINARY)
        send(amended, DeliveryEvent.PRELIMINARY)
    obrs = [next(line for line in m.decode().split("\r") if line.startswith("OBR|")).split("|")
            for m in engine.received]
    assert [obr[25] for obr in obrs] == ["P", "C"]
    assert obrs[0][2:4] == obrs[1][2:4]  # the same placer and filler order: the correction replaces the result
    assert all(validate_oru(m.decode()) == [] for m in engine.received)
