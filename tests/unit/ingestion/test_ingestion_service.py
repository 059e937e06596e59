"""Ingestion's core: stored first, ready studies returned (never enqueued by the core), duplicates,
rejections recorded, views chosen once, status per study."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
import pytest
from fhir.resources.R4B.imagingstudy import ImagingStudy
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import studies
from hilum.common.db.models import RejectionRow
from hilum.common.object_store import ObjectStore
from hilum.ingestion.service import IncomingInstance, Ingestion
from hilum.samples.chest_views import ViewPosition
from hilum.samples.dicom_files import write_study
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES, SyntheticStudy
from hilum.v1 import messages_pb2

MRN_SYSTEM = "urn:oid:1.2.3.4.5"


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "objects")


@pytest.fixture
def ingestion(sqlite_sessions: sessionmaker[Session], store: ObjectStore) -> Ingestion:
    return Ingestion(sqlite_sessions, store, MRN_SYSTEM)


def _incoming(path: Path) -> IncomingInstance:
    return IncomingInstance(label=path.name, content=path.read_bytes())


def _small(index: int, **changes: object) -> SyntheticStudy:
    """A bundled sample study at a small size, with any field changed."""
    return dataclasses.replace(SAMPLE_STUDIES[index], rows=64, columns=52, **changes)


def _second_view(frontal: Path, spec: SyntheticStudy, out_dir: Path) -> Path:
    """Another image of frontal's study (same patient and Study Instance UID), written from spec."""
    path = write_study(spec, out_dir)
    dataset = pydicom.dcmread(path)
    dataset.StudyInstanceUID = pydicom.dcmread(frontal).StudyInstanceUID
    dataset.save_as(path)
    return path


def test_accepted_instance_is_stored_and_its_study_returned_ready(
    ingestion: Ingestion, store: ObjectStore, tmp_path: Path
) -> None:
    path = write_study(_small(1), tmp_path / "in")
    response = ingestion.accept([_incoming(path)])
    result = response.results[0]
    assert result.accepted and not result.duplicate
    [ready] = response.ready_studies
    assert ready.study_instance_uid == result.study_instance_uid
    assert store.get(ready.frontal_object_key) == path.read_bytes()
    assert ready.lateral_object_key == ""
    assert ready.received_at.seconds > 0
    status = ingestion.status(result.study_instance_uid)
    assert status.state == study_state.RECEIVED and status.instance_count == 1


def test_the_views_are_chosen_once_and_carried_in_the_reference(ingestion: Ingestion, tmp_path: Path) -> None:
    frontal = write_study(_small(1), tmp_path / "pa")
    lateral_spec = _small(1, view_position=ViewPosition.LL, seed=777, label="lateral")
    lateral = _second_view(frontal, lateral_spec, tmp_path / "ll")
    uid = pydicom.dcmread(frontal).StudyInstanceUID
    # The lateral arrives first: it is never analysed as the frontal view.
    [alone] = ingestion.accept([_incoming(lateral)]).ready_studies
    assert alone.frontal_object_key == "" and alone.lateral_object_key.endswith(
        pydicom.dcmread(lateral).SOPInstanceUID + ".dcm")
    first = ImagingStudy.model_validate_json(ingestion.status(uid).imaging_study_json)
    assert first.numberOfInstances == 1
    [both] = ingestion.accept([_incoming(frontal)]).ready_studies
    assert both.frontal_object_key.endswith(pydicom.dcmread(frontal).SOPInstanceUID + ".dcm")
    assert both.lateral_object_key == alone.lateral_object_key
    # The ImagingStudy recorded at ingestion grows with the study.
    study = ImagingStudy.model_validate_json(ingestion.status(uid).imaging_study_json)
    assert study.numberOfInstances == 2 and study.numberOfSeries == 2
    assert study.identifier[0].value == f"urn:oid:{uid}"
    assert study.subject.identifier.system == MRN_SYSTEM
    assert study.subject.identifier.value == pydicom.dcmread(frontal).PatientID


def test_duplicates_of_a_reported_study_are_not_handed_on_again(
    ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_study(_small(2), tmp_path)
    uid = ingestion.accept([_incoming(path)]).results[0].study_instance_uid
    # Not reported yet: a resubmission hands it on again (the first handoff may have been lost).
    again = ingestion.accept([_incoming(path)])
    assert again.results[0].duplicate and [r.study_instance_uid for r in again.ready_studies] == [uid]
    with sqlite_sessions.begin() as session:
        for reached in (study_state.INFERRED, study_state.COMPARED, study_state.REPORTED):
            studies.advance(session, uid, reached)
    third = ingestion.accept([_incoming(path)])
    assert third.results[0].duplicate and list(third.ready_studies) == []
    assert ingestion.status(uid).state == study_state.REPORTED


def test_failed_study_restarts_on_resubmission(ingestion: Ingestion, sqlite_sessions: sessionmaker[Session],
                                               tmp_path: Path) -> None:
    path = write_study(_small(3), tmp_path)
    uid = ingestion.accept([_incoming(path)]).results[0].study_instance_uid
    with sqlite_sessions.begin() as session:
        studies.fail(session, uid, "inference: retries exhausted")
    status = ingestion.status(uid)
    assert status.state == study_state.FAILED and status.error == "inference: retries exhausted"
    assert [r.study_instance_uid for r in ingestion.accept([_incoming(path)]).ready_studies] == [uid]
    status = ingestion.status(uid)
    assert status.state == study_state.RECEIVED and status.error == ""


def test_rejections_are_recorded_and_do_not_stop_the_batch(
    ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    bad = write_rejectable_inputs(tmp_path / "bad")
    good = write_study(_small(0), tmp_path / "good")
    response = ingestion.accept([_incoming(bad["ct_image"]), _incoming(good), _incoming(bad["not_dicom"])])
    assert [r.accepted for r in response.results] == [False, True, False]
    assert len(response.ready_studies) == 1
    with sqlite_sessions() as session:
        rows = session.scalars(select(RejectionRow).order_by(RejectionRow.id)).all()
    assert [(r.label, r.code) for r in rows] == [
        (bad["ct_image"].name, "REJECTION_CODE_UNSUPPORTED_MODALITY"),
        (bad["not_dicom"].name, "REJECTION_CODE_NOT_DICOM"),
    ]
    assert all(r.reason for r in rows)


def test_spooled_instances_stay_until_released(ingestion: Ingestion, store: ObjectStore, tmp_path: Path) -> None:
    path = write_study(_small(0), tmp_path)
    store.put("spool/a.dcm", path.read_bytes())
    spooled = messages_pb2.SpooledInstances(spool_keys=["spool/a.dcm", "spool/gone.dcm"])
    first = ingestion.accept_spooled(spooled)
    assert [r.label for r in first.results] == ["a.dcm"] and len(first.ready_studies) == 1
    # A redelivery before release (the handoff failed) accepts again as a duplicate and hands on again.
    again = ingestion.accept_spooled(spooled)
    assert again.results[0].duplicate and list(again.ready_studies) == list(first.ready_studies)
    ingestion.release_spool(spooled)
    assert not store.exists("spool/a.dcm")
    assert list(ingestion.accept_spooled(spooled).results) == []


def test_unknown_study_has_no_state(ingestion: Ingestion) -> None:
    assert ingestion.status("1.2.3").state == study_state.StudyState.STUDY_STATE_UNSPECIFIED
