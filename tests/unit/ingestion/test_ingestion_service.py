"""Ingestion's core: store first then enqueue, duplicates, rejections recorded, status per study."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pydicom
import pytest
from fhir.resources.R4B.imagingstudy import ImagingStudy
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import repository
from hilum.common.db.models import RejectionRow
from hilum.common.object_store import ObjectStore
from hilum.ingestion.service import IncomingInstance, Ingestion
from hilum.samples.synthetic import SAMPLE_STUDIES, SyntheticStudy, ViewPosition, write_rejectable_inputs, write_study
from hilum.v1 import ingestion_pb2, messages_pb2

State = ingestion_pb2.StudyState
MRN_SYSTEM = "urn:oid:1.2.3.4.5"


@pytest.fixture
def enqueued() -> list[messages_pb2.StudyReference]:
    return []


@pytest.fixture
def ingestion(sqlite_sessions: sessionmaker[Session], tmp_path: Path,
              enqueued: list[messages_pb2.StudyReference]) -> Ingestion:
    return Ingestion(sqlite_sessions, ObjectStore(tmp_path / "objects"), enqueued.append, MRN_SYSTEM)


def _incoming(path: Path) -> IncomingInstance:
    return IncomingInstance(label=path.name, content=path.read_bytes())


def _small(index: int, **changes: object) -> SyntheticStudy:
    """A bundled sample study at a small size, with any field changed."""
    return dataclasses.replace(SAMPLE_STUDIES[index], rows=64, columns=52, **changes)


def test_accepted_instance_is_stored_before_inference_is_enqueued(
    ingestion: Ingestion, enqueued: list[messages_pb2.StudyReference], tmp_path: Path
) -> None:
    path = write_study(_small(1), tmp_path / "in")
    response = ingestion.accept([_incoming(path)])
    result = response.results[0]
    assert result.accepted and not result.duplicate
    assert list(response.enqueued_study_instance_uids) == [result.study_instance_uid]
    assert len(enqueued) == 1 and enqueued[0].study_instance_uid == result.study_instance_uid
    stored = ObjectStore(tmp_path / "objects")
    assert stored.get(enqueued[0].object_keys[0]) == path.read_bytes()
    status = ingestion.status(result.study_instance_uid)
    assert status.state == State.STUDY_STATE_RECEIVED and status.instance_count == 1


def test_frontal_view_is_analysed_first(ingestion: Ingestion, enqueued: list[messages_pb2.StudyReference],
                                        tmp_path: Path) -> None:
    frontal = write_study(_small(1), tmp_path / "pa")
    lateral_spec = _small(1, view_position=ViewPosition.LL, seed=777, label="lateral")
    lateral = write_study(lateral_spec, tmp_path / "ll")
    # A second view of the same study: the lateral joins the frontal's study.
    dataset = pydicom.dcmread(lateral)
    dataset.StudyInstanceUID = pydicom.dcmread(frontal).StudyInstanceUID
    dataset.save_as(lateral)
    ingestion.accept([_incoming(frontal)])
    first = ImagingStudy.model_validate_json(ingestion.status(dataset.StudyInstanceUID).imaging_study_json)
    assert first.numberOfInstances == 1
    ingestion.accept([_incoming(lateral)])
    keys = enqueued[-1].object_keys
    assert len(keys) == 2 and keys[0].endswith(pydicom.dcmread(frontal).SOPInstanceUID + ".dcm")
    # The ImagingStudy recorded at ingestion grows with the study.
    study = ImagingStudy.model_validate_json(ingestion.status(dataset.StudyInstanceUID).imaging_study_json)
    assert study.numberOfInstances == 2 and study.numberOfSeries == 2
    assert study.identifier[0].value == f"urn:oid:{dataset.StudyInstanceUID}"
    assert study.subject.identifier.system == MRN_SYSTEM
    assert study.subject.identifier.value == dataset.PatientID


def test_duplicates_of_a_reported_study_are_not_enqueued_again(
    ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], enqueued: list[messages_pb2.StudyReference],
    tmp_path: Path,
) -> None:
    path = write_study(_small(2), tmp_path)
    uid = ingestion.accept([_incoming(path)]).results[0].study_instance_uid
    # Not reported yet: a resubmission enqueues again (the first enqueue may have been lost).
    again = ingestion.accept([_incoming(path)])
    assert again.results[0].duplicate and list(again.enqueued_study_instance_uids) == [uid]
    with sqlite_sessions.begin() as session:
        for state in (State.STUDY_STATE_INFERRED, State.STUDY_STATE_COMPARED, State.STUDY_STATE_REPORTED):
            repository.advance_state(session, uid, state)
    third = ingestion.accept([_incoming(path)])
    assert third.results[0].duplicate and list(third.enqueued_study_instance_uids) == []
    assert len(enqueued) == 2


def test_failed_study_restarts_on_resubmission(ingestion: Ingestion, sqlite_sessions: sessionmaker[Session],
                                               tmp_path: Path) -> None:
    path = write_study(_small(3), tmp_path)
    uid = ingestion.accept([_incoming(path)]).results[0].study_instance_uid
    with sqlite_sessions.begin() as session:
        repository.fail_study(session, uid, "inference: retries exhausted")
    assert ingestion.status(uid).state == State.STUDY_STATE_FAILED
    assert ingestion.accept([_incoming(path)]).enqueued_study_instance_uids == [uid]
    assert ingestion.status(uid).state == State.STUDY_STATE_RECEIVED


def test_rejections_are_recorded_and_do_not_stop_the_batch(
    ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    bad = write_rejectable_inputs(tmp_path / "bad")
    good = write_study(_small(0), tmp_path / "good")
    response = ingestion.accept([_incoming(bad["ct_image"]), _incoming(good), _incoming(bad["not_dicom"])])
    assert [r.accepted for r in response.results] == [False, True, False]
    with sqlite_sessions() as session:
        rows = session.scalars(select(RejectionRow).order_by(RejectionRow.id)).all()
    assert [(r.label, r.code) for r in rows] == [
        (bad["ct_image"].name, "REJECTION_CODE_UNSUPPORTED_MODALITY"),
        (bad["not_dicom"].name, "REJECTION_CODE_NOT_DICOM"),
    ]
    assert all(r.reason for r in rows)


def test_unknown_study_has_no_state(ingestion: Ingestion) -> None:
    assert ingestion.status("1.2.3").state == State.STUDY_STATE_UNSPECIFIED
