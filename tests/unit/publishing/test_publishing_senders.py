"""Senders: the ORU of each event over MLLP to a real listener, stable control ids, configured destinations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.destinations import DeliveryEvent, Destination
from hilum.common.errors import TransientError
from hilum.common.settings import FhirSection, HilumSettings, MllpDestination, PublishSection
from hilum.publishing.oru import validate_oru
from hilum.publishing.senders import configured_senders, mllp_sender, oru_control_id
from hilum.publishing.service import load_published
from hilum.v1 import messages_pb2
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
