"""Priors' core against a real (SQLite) store and a real Orthanc: finds the latest earlier study, waits for one in
flight, fetches one from the PACS for analysis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import results, studies
from hilum.common.db.models import FindingsRow
from hilum.common.dicom.pacs_client import DicomwebClient
from hilum.common.errors import PermanentError, TransientError
from hilum.common.object_store import ObjectStore
from hilum.common.study import PatientInfo
from hilum.ingestion.assembly import study_reference
from hilum.ingestion.service import Ingestion
from hilum.priors.pacs_source import PacsSource
from hilum.priors.service import Priors
from hilum.priors.sources import StoreSource
from hilum.runtime.ports import free_port
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import messages_pb2
from tests.helpers import MRN_SYSTEM, audit_events, audited_patient_ids, record_study
from tests.orthanc_pacs import Pacs, sample_pacs

PATIENT = PatientInfo(patient_id="P1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
MODEL = messages_pb2.ModelInfo(name="cxr_findings", version="demo-untrained", demo_weights=True)
S = messages_pb2.FindingState


def _study(sessions: sessionmaker[Session], uid: str, started: datetime, patient: PatientInfo = PATIENT) -> None:
    record_study(sessions, uid, patient, started)


def _findings(uid: str, effusion: messages_pb2.FindingState.ValueType) -> messages_pb2.StudyFindings:
    return messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=uid), model=MODEL,
        findings=[messages_pb2.Finding(code="effusion", display="Pleural effusion", state=effusion)],
    )


def _store(sessions: sessionmaker[Session], findings: messages_pb2.StudyFindings) -> None:
    with sessions.begin() as session:
        results.save_findings(session, findings)


def test_latest_earlier_study_of_the_same_patient_is_the_prior(sqlite_sessions: sessionmaker[Session]) -> None:
    now = datetime(2025, 2, 18, 10, 0)
    _study(sqlite_sessions, "1.1", now - timedelta(days=400))
    _study(sqlite_sessions, "1.2", now - timedelta(days=30))
    _study(sqlite_sessions, "1.3", now)
    _study(sqlite_sessions, "9.9", now - timedelta(days=1), PatientInfo("P2", "HOSP", "", None, ""))
    _study(sqlite_sessions, "1.4", now + timedelta(days=5))  # later: never a prior
    _store(sqlite_sessions, _findings("1.1", S.FINDING_STATE_PRESENT))
    _store(sqlite_sessions, _findings("1.2", S.FINDING_STATE_ABSENT))

    comparison = Priors(sqlite_sessions).compare(_findings("1.3", S.FINDING_STATE_PRESENT))
    assert comparison.prior.study_instance_uid == "1.2"
    assert comparison.prior.study_date == (now - timedelta(days=30)).strftime("%Y%m%d")
    assert [(c.code, c.change) for c in comparison.changes] == [("effusion", messages_pb2.Change.CHANGE_NEW)]
    with sqlite_sessions() as session:
        row = studies.get_study(session, "1.3")
        assert row is not None and row.state == "COMPARED"


def test_no_prior_means_no_comparison(sqlite_sessions: sessionmaker[Session]) -> None:
    _study(sqlite_sessions, "2.1", datetime(2025, 1, 1))
    comparison = Priors(sqlite_sessions).compare(_findings("2.1", S.FINDING_STATE_ABSENT))
    assert not comparison.HasField("prior") and list(comparison.changes) == []


def test_a_prior_still_in_flight_is_waited_for_then_given_up_on(sqlite_sessions: sessionmaker[Session]) -> None:
    _study(sqlite_sessions, "3.1", datetime(2024, 1, 1))
    _study(sqlite_sessions, "3.2", datetime(2025, 1, 1))
    current = _findings("3.2", S.FINDING_STATE_PRESENT)
    with pytest.raises(TransientError) as waiting:
        Priors(sqlite_sessions).compare(current)
    assert waiting.value.retry_after_s is not None
    # Past the wait (by the injected clock), the prior is named but no change is claimed.
    later = Priors(sqlite_sessions, clock=lambda: datetime.now(UTC) + timedelta(minutes=6))
    comparison = later.compare(current)
    assert comparison.prior.study_instance_uid == "3.1" and list(comparison.prior.findings) == []
    assert list(comparison.changes) == []


def test_a_failed_prior_is_not_waited_for(sqlite_sessions: sessionmaker[Session]) -> None:
    _study(sqlite_sessions, "4.1", datetime(2024, 1, 1))
    _study(sqlite_sessions, "4.2", datetime(2025, 1, 1))
    with sqlite_sessions.begin() as session:
        studies.fail(session, "4.1", "inference: image unreadable")
    comparison = Priors(sqlite_sessions).compare(_findings("4.2", S.FINDING_STATE_ABSENT))
    assert comparison.prior.study_instance_uid == "4.1"


def test_unknown_study_is_a_permanent_error(sqlite_sessions: sessionmaker[Session]) -> None:
    with pytest.raises(PermanentError):
        Priors(sqlite_sessions).compare(_findings("5.5", S.FINDING_STATE_ABSENT))


def test_state_never_moves_backwards(sqlite_sessions: sessionmaker[Session]) -> None:
    _study(sqlite_sessions, "6.1", datetime(2025, 1, 1))
    with sqlite_sessions.begin() as session:
        studies.advance(session, "6.1", study_state.REPORTED)
        studies.advance(session, "6.1", study_state.INFERRED)
    with sqlite_sessions() as session:
        row = studies.get_study(session, "6.1")
        assert row is not None and row.state == "REPORTED"


def test_studies_at_the_same_instant_give_one_prior_every_time(sqlite_sessions: sessionmaker[Session]) -> None:
    earlier = datetime(2024, 1, 1, 9, 0)
    _study(sqlite_sessions, "7.1", earlier)
    _study(sqlite_sessions, "7.2", earlier)  # received after 7.1
    _study(sqlite_sessions, "7.3", datetime(2025, 1, 1))
    _store(sqlite_sessions, _findings("7.1", S.FINDING_STATE_ABSENT))
    _store(sqlite_sessions, _findings("7.2", S.FINDING_STATE_ABSENT))
    current = _findings("7.3", S.FINDING_STATE_ABSENT)
    for _ in range(3):
        assert Priors(sqlite_sessions).compare(current).prior.study_instance_uid == "7.2"


def test_tubes_and_lines_are_compared_when_the_devices_model_ran_on_both(
    sqlite_sessions: sessionmaker[Session],
) -> None:
    now = datetime(2025, 2, 18, 10, 0)
    _study(sqlite_sessions, "5.1", now - timedelta(days=1))
    _study(sqlite_sessions, "5.2", now)
    devices_model = messages_pb2.ModelInfo(name="cxr_devices", version="demo-untrained", demo_weights=True)
    prior = _findings("5.1", S.FINDING_STATE_ABSENT)
    prior.devices.append(messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9,
                                                    tip_distance_mm=50.0, landmark="carina"))
    current = _findings("5.2", S.FINDING_STATE_ABSENT)
    current.devices.append(messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9,
                                                      tip_distance_mm=30.0, landmark="carina"))

    _store(sqlite_sessions, prior)  # recorded before the devices model ran: its devices are not compared
    comparison = Priors(sqlite_sessions).compare(current)
    assert len(comparison.prior.devices) == 1 and list(comparison.device_changes) == []

    prior.devices_model.CopyFrom(devices_model)
    current.devices_model.CopyFrom(devices_model)
    with sqlite_sessions.begin() as session:
        session.execute(delete(FindingsRow).where(FindingsRow.study_instance_uid == "5.1"))
    _store(sqlite_sessions, prior)
    (change,) = Priors(sqlite_sessions).compare(current).device_changes
    assert (change.kind, change.change, round(change.tip_movement_mm, 1)) == (
        messages_pb2.DEVICE_KIND_ETT, messages_pb2.DEVICE_CHANGE_MOVED, -20.0)


ADA_PRIOR, ADA_CURRENT = SAMPLE_STUDIES[0], SAMPLE_STUDIES[1]
ADA = PatientInfo(patient_id=ADA_CURRENT.patient_id, issuer=ADA_CURRENT.issuer, name="", birth_date=None, sex="")


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    with sample_pacs(tmp_path_factory.mktemp("pacs")) as server:
        yield server


def test_a_prior_on_the_pacs_is_fetched_analysed_as_comparison_only_then_compared_image_to_image(
        pacs: Pacs, sqlite_sessions: sessionmaker[Session], store: ObjectStore) -> None:
    _study(sqlite_sessions, ADA_CURRENT.study_instance_uid, ADA_CURRENT.study_started, ADA)
    current = _findings(ADA_CURRENT.study_instance_uid, S.FINDING_STATE_PRESENT)
    handed: list[messages_pb2.SpooledInstances] = []
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        priors = Priors(sqlite_sessions, sources=[PacsSource(client, "the test PACS", store, handed.append)])
        with pytest.raises(TransientError, match="fetched from the PACS and is being analysed") as fetched:
            priors.compare(current)
        assert fetched.value.retry_after_s is not None  # a wait the stage bounds, not a counted retry
        with pytest.raises(TransientError, match="being ingested"):  # fetched once: not fetched again
            priors.compare(current)
        [spooled] = handed
        assert spooled.comparison_only

        # Ingestion's queue door takes the spooled prior: a comparison-only study, analysed, never reported.
        [accepted] = Ingestion(sqlite_sessions, store, MRN_SYSTEM).accept_spooled(spooled).results
        assert accepted.accepted and accepted.study_instance_uid == ADA_PRIOR.study_instance_uid
        with sqlite_sessions() as session:
            row = studies.require_study(session, ADA_PRIOR.study_instance_uid)
            assert row.comparison_only and row.state == "RECEIVED"
            assert study_reference(session, row).comparison_only
        with pytest.raises(TransientError, match="still being analysed"):
            priors.compare(current)

        _store(sqlite_sessions, _findings(ADA_PRIOR.study_instance_uid, S.FINDING_STATE_ABSENT))
        with sqlite_sessions.begin() as session:
            studies.advance(session, ADA_PRIOR.study_instance_uid, study_state.ANALYSED)
        comparison = priors.compare(current)
    assert len(handed) == 1
    prior = comparison.prior
    assert (prior.study_instance_uid, prior.study_date, prior.source) == (ADA_PRIOR.study_instance_uid, "20240122",
                                                                          "pacs")
    assert not prior.from_report and [f.code for f in prior.findings] == ["effusion"]
    assert [(c.code, c.change) for c in comparison.changes] == [("effusion", messages_pb2.Change.CHANGE_NEW)]


def test_a_fetched_prior_that_never_reaches_the_store_is_named_without_a_change(
        pacs: Pacs, sqlite_sessions: sessionmaker[Session], store: ObjectStore) -> None:
    """Ingestion refused the prior's images (or lost them): after prior_wait the study goes on without them."""
    _study(sqlite_sessions, ADA_CURRENT.study_instance_uid, ADA_CURRENT.study_started, ADA)
    current = _findings(ADA_CURRENT.study_instance_uid, S.FINDING_STATE_PRESENT)
    handed: list[messages_pb2.SpooledInstances] = []
    fetch_time = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        source = PacsSource(client, "the test PACS", store, handed.append, clock=lambda: fetch_time)
        with pytest.raises(TransientError):
            Priors(sqlite_sessions, sources=[source], clock=lambda: fetch_time).compare(current)
        still = Priors(sqlite_sessions, sources=[source], clock=lambda: fetch_time + timedelta(minutes=4))
        with pytest.raises(TransientError, match="being ingested"):
            still.compare(current)
        later = Priors(sqlite_sessions, sources=[source], clock=lambda: fetch_time + timedelta(minutes=6))
        comparison = later.compare(current)
    assert len(handed) == 1
    assert comparison.prior.study_instance_uid == ADA_PRIOR.study_instance_uid
    assert comparison.prior.reason.endswith("its images could not be analysed, so no change is stated")
    assert list(comparison.changes) == [] and list(comparison.prior.findings) == []


def test_a_pacs_that_is_down_is_passed_over_for_the_next_source(sqlite_sessions: sessionmaker[Session],
                                                                 store: ObjectStore) -> None:
    _study(sqlite_sessions, "8.1", datetime(2024, 1, 1), ADA)
    _study(sqlite_sessions, ADA_CURRENT.study_instance_uid, ADA_CURRENT.study_started, ADA)
    _store(sqlite_sessions, _findings("8.1", S.FINDING_STATE_PRESENT))
    with DicomwebClient(f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=2.0) as down:
        pacs_source = PacsSource(down, "the test PACS", store, lambda spooled: None)
        priors = Priors(sqlite_sessions, sources=[pacs_source, StoreSource(sqlite_sessions)])
        comparison = priors.compare(_findings(ADA_CURRENT.study_instance_uid, S.FINDING_STATE_PRESENT))
    assert (comparison.prior.study_instance_uid, comparison.prior.source) == ("8.1", "store")
    assert [(c.code, c.change) for c in comparison.changes] == [("effusion", messages_pb2.Change.CHANGE_UNCHANGED)]

    # Each question asked is in the audit trail: the PACS that failed, then the store that answered.
    failed, answered = audit_events(sqlite_sessions, "110112")
    assert (failed["outcome"], answered["outcome"]) == ("8", "0")
    assert failed["outcomeDesc"] == "the source failed (TransientError)"
    assert [agent["who"]["identifier"]["value"] for agent in failed["agent"]] == ["hilum-priors", "prior-source-pacs"]
    assert audited_patient_ids(failed) == audited_patient_ids(answered) == [ADA.patient_id]
    [query] = [entity for entity in answered["entity"] if "query" in entity]
    assert {"type": "prior-study-uid", "valueString": "8.1"} in query["detail"]
