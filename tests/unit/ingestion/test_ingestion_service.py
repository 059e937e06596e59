"""Ingestion's core: stored first, studies marked due after the stability window, duplicates idempotent,
identity conflicts quarantined and never merged, rejections kept with their bytes, release and delete."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fhir.resources.R4B.imagingstudy import ImagingStudy
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.atomic_file import StagedFile
from hilum.common.db import records, studies
from hilum.common.db.models import RejectionRow
from hilum.common.db.session import create_db_engine, session_factory, upgrade_database
from hilum.common.dicom.pixels import Radiograph, read_radiograph
from hilum.common.model_inputs import ModelInputs, load_model_inputs, make_model_inputs, model_inputs_key
from hilum.common.object_store import ObjectStore, dicom_key
from hilum.ingestion.service import Door, IncomingInstance, Ingestion, QuarantineNotFound
from hilum.samples.chest_views import ViewPosition
from hilum.samples.dicom_files import write_study
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES, SyntheticStudy
from hilum.v1 import ingestion_pb2, messages_pb2
from tests.helpers import audit_events, audited_patient_ids, cached_bytes

MRN_SYSTEM = "urn:oid:1.2.3.4.5"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=5)
Code = ingestion_pb2.RejectionCode


@pytest.fixture
def ingestion(sqlite_sessions: sessionmaker[Session], store: ObjectStore) -> Ingestion:
    return Ingestion(sqlite_sessions, store, MRN_SYSTEM, stability_window=WINDOW, clock=lambda: NOW)


def _incoming(path: Path, door: Door = Door.GRPC) -> IncomingInstance:
    return IncomingInstance(label=path.name, content=path.read_bytes(), door=door)


def _small(index: int, **changes: object) -> SyntheticStudy:
    """A bundled sample study at a small size, with any field changed."""
    return dataclasses.replace(SAMPLE_STUDIES[index], rows=160, columns=128, **changes)


def _rewritten(path: Path, out: Path, **attributes: object) -> Path:
    """A copy of the DICOM file at path with some attributes set (UIDs, patient)."""
    dataset = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    if "SOPInstanceUID" in attributes:
        dataset.file_meta.MediaStorageSOPInstanceUID = attributes["SOPInstanceUID"]
    out.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(out)
    return out


def _due(sessions: sessionmaker[Session], uid: str) -> datetime | None:
    with sessions() as session:
        ready_at = studies.require_study(session, uid).ready_at
    return ready_at.replace(tzinfo=UTC) if ready_at is not None and ready_at.tzinfo is None else ready_at


def _held(sessions: sessionmaker[Session]) -> list[RejectionRow]:
    with sessions() as session:
        return records.quarantined(session)


def test_an_accepted_instance_is_stored_and_its_study_due_after_the_window(
    ingestion: Ingestion, store: ObjectStore, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_study(_small(1), tmp_path / "in")
    result = ingestion.accept([_incoming(path)]).results[0]
    assert result.accepted and not result.duplicate and result.quarantine_id == 0
    with sqlite_sessions() as session:
        [instance] = studies.require_study_info(session, result.study_instance_uid).instances
    assert store.get(instance.object_key) == path.read_bytes()
    assert _due(sqlite_sessions, result.study_instance_uid) == NOW + WINDOW
    status = ingestion.status(result.study_instance_uid)
    assert status.state == study_state.RECEIVED and status.instance_count == 1


def test_the_imaging_study_grows_with_the_study(ingestion: Ingestion, tmp_path: Path) -> None:
    frontal = write_study(_small(1), tmp_path / "pa")
    uid = pydicom.dcmread(frontal).StudyInstanceUID
    lateral = _rewritten(write_study(_small(1, view_position=ViewPosition.LL, seed=777, label="lateral"),
                                     tmp_path / "ll"), tmp_path / "ll2" / "ll.dcm", StudyInstanceUID=uid)
    ingestion.accept([_incoming(frontal)])
    assert ImagingStudy.model_validate_json(ingestion.status(uid).imaging_study_json).numberOfInstances == 1
    ingestion.accept([_incoming(lateral)])
    study = ImagingStudy.model_validate_json(ingestion.status(uid).imaging_study_json)
    assert study.numberOfInstances == 2 and study.numberOfSeries == 2
    assert study.identifier[0].value == f"urn:oid:{uid}"
    assert study.subject.identifier.system == MRN_SYSTEM


def _keeping_inputs(sessions: sessionmaker[Session], store: ObjectStore) -> Ingestion:
    """Ingestion that keeps both models' inputs beside each image that may be a frontal view, as its wiring builds."""
    return Ingestion(sessions, store, MRN_SYSTEM, make_inputs=partial(make_model_inputs, devices=True))


def _instance_keys(sessions: sessionmaker[Session], uid: str) -> list[str]:
    with sessions() as session:
        return [instance.object_key for instance in studies.instances_of(session, uid)]


def test_the_door_keeps_the_models_inputs_of_a_frontal_view_made_from_its_own_decode(
    sqlite_sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path
) -> None:
    """One decode per image: the inputs inference takes are those it would make from the stored file; a lateral
    view, never a study's frontal view, gets none."""
    ingestion = _keeping_inputs(sqlite_sessions, store)
    frontal = write_study(_small(1), tmp_path / "pa")
    uid = pydicom.dcmread(frontal).StudyInstanceUID
    lateral = _rewritten(write_study(_small(1, view_position=ViewPosition.LL, seed=777, label="lateral"),
                                     tmp_path / "ll"), tmp_path / "ll2" / "ll.dcm", StudyInstanceUID=uid)
    ingestion.accept([_incoming(frontal), _incoming(lateral)])

    frontal_key, lateral_key = sorted(_instance_keys(sqlite_sessions, uid), key=lambda key: key != _key_of(frontal))
    kept = load_model_inputs(store, frontal_key, devices=True)
    made = make_model_inputs(read_radiograph(store.path(frontal_key)), devices=True)
    assert kept is not None and kept.devices is not None and made.devices is not None
    np.testing.assert_array_equal(kept.findings, made.findings)
    np.testing.assert_array_equal(kept.devices, made.devices)
    assert (kept.rows, kept.columns) == (160, 128)
    assert not store.exists(model_inputs_key(lateral_key))


def test_a_stored_image_leaves_the_page_cache_and_its_models_inputs_stay(
    sqlite_sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path
) -> None:
    """The door writes an image once and inference reads the inputs kept beside it: the image's pages are dropped
    once it is on the disk, so that accepted images do not push what is read out of memory."""
    frontal = write_study(_small(1), tmp_path / "pa")
    _keeping_inputs(sqlite_sessions, store).accept([_incoming(frontal)])
    key = _key_of(frontal)
    assert cached_bytes(store.path(key)) == 0
    assert cached_bytes(store.path(model_inputs_key(key))) > 0
    assert store.get(key) == frontal.read_bytes()


def _key_of(path: Path) -> str:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return dicom_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def test_inputs_that_cannot_be_made_or_kept_never_cost_the_instance(
    sqlite_sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Making them fails, or storing them does: the instance is stored and due all the same, without inputs (inference
    decodes it)."""
    def fails(image: Radiograph) -> ModelInputs:
        raise MemoryError("no room for the inputs")

    failing = Ingestion(sqlite_sessions, store, MRN_SYSTEM, make_inputs=fails)
    first = failing.accept([_incoming(write_study(_small(1), tmp_path / "a"))]).results[0]

    def full_disk(store: ObjectStore, key: str, inputs: ModelInputs) -> StagedFile:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hilum.ingestion.service.stage_model_inputs", full_disk)
    second = _keeping_inputs(sqlite_sessions, store).accept([_incoming(write_study(_small(2), tmp_path / "b"))])
    for result in (first, second.results[0]):
        assert result.accepted and not result.HasField("rejection")
        [key] = _instance_keys(sqlite_sessions, result.study_instance_uid)
        assert store.exists(key) and not store.exists(model_inputs_key(key))
        assert _due(sqlite_sessions, result.study_instance_uid) is not None


def test_a_refused_instance_leaves_no_inputs(sqlite_sessions: sessionmaker[Session], store: ObjectStore,
                                            tmp_path: Path) -> None:
    path = write_study(_small(1), tmp_path / "in")
    ingestion = _keeping_inputs(sqlite_sessions, store)
    ingestion.accept([_incoming(path)])
    other = _rewritten(write_study(_small(2), tmp_path / "other"), tmp_path / "clash.dcm",
                       StudyInstanceUID=pydicom.dcmread(path).StudyInstanceUID)  # another patient's study UID
    assert ingestion.accept([_incoming(other)]).results[0].HasField("rejection")
    assert sorted(store.root.rglob("*.inputs.npz")) == [store.path(model_inputs_key(_key_of(path)))]


def test_the_same_bytes_again_are_an_idempotent_duplicate(
    ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_study(_small(2), tmp_path)
    uid = ingestion.accept([_incoming(path)]).results[0].study_instance_uid
    again = ingestion.accept([_incoming(path)]).results[0]
    assert again.accepted and again.duplicate and again.quarantine_id == 0
    with sqlite_sessions.begin() as session:
        for reached in (study_state.INFERRED, study_state.COMPARED, study_state.REPORTED):
            studies.advance(session, uid, reached)
        studies.handed_on(session, uid, studies.require_study(session, uid).ready_at or NOW)
    third = ingestion.accept([_incoming(path)]).results[0]
    assert third.duplicate and _due(sqlite_sessions, uid) is None  # a reported study is not handed on again
    assert ingestion.status(uid).state == study_state.REPORTED


def test_an_instance_sent_again_after_its_images_were_purged_is_stored_again(
    ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path
) -> None:
    path = write_study(_small(3), tmp_path)
    uid = ingestion.accept([_incoming(path)]).results[0].study_instance_uid
    with sqlite_sessions.begin() as session:
        (instance,) = studies.instances_of(session, uid)
        key = instance.object_key
        studies.require_study(session, uid).images_purged_at = NOW  # what `hilum purge images` leaves
    store.delete(key)
    again = ingestion.accept([_incoming(path)]).results[0]
    assert again.accepted and again.duplicate
    assert store.get(key) == path.read_bytes()
    with sqlite_sessions() as session:
        assert studies.require_study(session, uid).images_purged_at is None


def test_a_failed_study_starts_again_on_resubmission(
    ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_study(_small(3), tmp_path)
    uid = ingestion.accept([_incoming(path)]).results[0].study_instance_uid
    with sqlite_sessions.begin() as session:
        studies.fail(session, uid, "inference: retries exhausted")
    ingestion.accept([_incoming(path)])
    status = ingestion.status(uid)
    assert status.state == study_state.RECEIVED and status.error == ""
    assert _due(sqlite_sessions, uid) == NOW + WINDOW


def test_another_patients_study_uid_is_quarantined_never_merged(
    ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    first = write_study(_small(0), tmp_path / "a")
    uid = pydicom.dcmread(first).StudyInstanceUID
    intruder = _rewritten(write_study(_small(2), tmp_path / "b"), tmp_path / "c" / "x.dcm", StudyInstanceUID=uid)
    ingestion.accept([_incoming(first)])
    result = ingestion.accept([_incoming(intruder)]).results[0]
    assert not result.accepted and result.rejection.code == Code.REJECTION_CODE_IDENTITY_CONFLICT
    assert result.quarantine_id > 0 and "another patient" in result.rejection.reason
    assert ingestion.status(uid).instance_count == 1
    [held] = _held(sqlite_sessions)
    assert held.id == result.quarantine_id and held.door == "grpc"


def test_a_series_uid_of_another_study_is_quarantined(ingestion: Ingestion, tmp_path: Path) -> None:
    first = write_study(_small(0), tmp_path / "a")
    series = pydicom.dcmread(first).SeriesInstanceUID
    other = _rewritten(write_study(_small(0, seed=4242, label="other"), tmp_path / "b"), tmp_path / "c" / "x.dcm",
                       SeriesInstanceUID=series, StudyInstanceUID=pydicom.uid.generate_uid())
    ingestion.accept([_incoming(first)])
    result = ingestion.accept([_incoming(other)]).results[0]
    assert result.rejection.code == Code.REJECTION_CODE_IDENTITY_CONFLICT
    assert "Series Instance UID" in result.rejection.reason


def test_the_same_sop_instance_uid_with_other_content_is_a_conflict(
    ingestion: Ingestion, store: ObjectStore, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    original = write_study(_small(0), tmp_path / "a")
    altered = _rewritten(original, tmp_path / "b" / "x.dcm", StudyDescription="XR CHEST PA (altered)")
    uid = ingestion.accept([_incoming(original)]).results[0].study_instance_uid
    result = ingestion.accept([_incoming(altered)]).results[0]
    assert result.rejection.code == Code.REJECTION_CODE_INSTANCE_CONFLICT
    with sqlite_sessions() as session:
        [instance] = studies.require_study_info(session, uid).instances
    assert store.get(instance.object_key) == original.read_bytes()  # the stored one is kept unchanged


def test_what_is_written_before_the_transaction_stays_out_of_place_for_a_conflict_or_a_duplicate(
    sqlite_sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path
) -> None:
    """The image and its models' inputs are written before the transaction and put in place in it: a conflict or a
    duplicate puts neither there (the stored image and its inputs stay as they were) and leaves no temporary file."""
    ingestion = _keeping_inputs(sqlite_sessions, store)
    original = write_study(_small(0), tmp_path / "a")
    altered = _rewritten(original, tmp_path / "b" / "x.dcm", StudyDescription="XR CHEST PA (altered)")
    ingestion.accept([_incoming(original)])
    [key] = [path.relative_to(store.root).as_posix() for path in store.root.rglob("*.dcm")]
    kept_inputs = store.get(model_inputs_key(key))
    results = ingestion.accept([_incoming(altered), _incoming(original)]).results
    assert results[0].rejection.code == Code.REJECTION_CODE_INSTANCE_CONFLICT and results[1].duplicate
    assert store.get(key) == original.read_bytes() and store.get(model_inputs_key(key)) == kept_inputs
    assert not [path.name for path in store.root.rglob(".writing-*")]


def test_a_resend_of_stored_bytes_writes_nothing_and_one_whose_file_was_purged_writes_it_again(
    sqlite_sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PACS sending a study again costs no writes: the same bytes under a stored SOP Instance UID are a duplicate
    found before anything is written; once the file is gone (purged), the resend stores it again."""
    ingestion = _keeping_inputs(sqlite_sessions, store)
    path = write_study(_small(0), tmp_path)
    ingestion.accept([_incoming(path)])
    staged: list[str] = []
    stage = store.stage
    monkeypatch.setattr(store, "stage", lambda key, content, **options: (staged.append(key),
                                                                         stage(key, content, **options))[1])
    assert ingestion.accept([_incoming(path)]).results[0].duplicate
    assert staged == []
    [key] = [found.relative_to(store.root).as_posix() for found in store.root.rglob("*.dcm")]
    store.delete(key)
    assert ingestion.accept([_incoming(path)]).results[0].duplicate
    assert store.get(key) == path.read_bytes() and key in staged
    assert not [found.name for found in store.root.rglob(".writing-*")]


def test_rejections_keep_their_bytes_and_never_stop_the_batch(
    ingestion: Ingestion, store: ObjectStore, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    bad = write_rejectable_inputs(tmp_path / "bad")
    good = write_study(_small(0), tmp_path / "good")
    response = ingestion.accept([_incoming(bad["ct_image"], Door.DIMSE), _incoming(good),
                                 _incoming(bad["not_dicom"], Door.STOW)])
    assert [r.accepted for r in response.results] == [False, True, False]
    held = _held(sqlite_sessions)
    assert [(r.label, r.code, r.door) for r in held] == [
        (bad["ct_image"].name, "REJECTION_CODE_UNSUPPORTED_MODALITY", "dimse"),
        (bad["not_dicom"].name, "REJECTION_CODE_NOT_DICOM", "stow"),
    ]
    assert all(r.reason for r in held)
    assert store.get(held[0].object_key) == bad["ct_image"].read_bytes()
    assert [r.quarantine_id for r in response.results] == [held[0].id, 0, held[1].id]


def test_every_instance_received_or_refused_is_an_audit_event(
    ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    bad = write_rejectable_inputs(tmp_path / "bad")
    study = _small(0)
    good = write_study(study, tmp_path / "good")
    ingestion.accept([
        IncomingInstance(label="a", content=good.read_bytes(), door=Door.DIMSE, sender="MODALITY1", address="10.0.0.7"),
        IncomingInstance(label="b", content=bad["ct_image"].read_bytes(), door=Door.STOW, address="10.0.0.8"),
        IncomingInstance(label="c", content=good.read_bytes(), door=Door.GRPC),  # a duplicate is received too
    ])
    imported, refused, again = audit_events(sqlite_sessions, "110107")
    assert (imported["outcome"], refused["outcome"], again["outcome"]) == ("0", "4", "0")
    assert imported["agent"][0]["who"]["identifier"]["value"] == "MODALITY1"
    assert imported["agent"][0]["network"] == {"address": "10.0.0.7", "type": "2"}
    assert audited_patient_ids(imported) == [study.patient_id]
    assert imported["entity"][0]["what"]["identifier"]["system"] == MRN_SYSTEM
    assert {"type": "door", "valueString": "dimse"} in imported["entity"][1]["detail"]
    assert refused["agent"][0]["who"]["identifier"]["value"] == "stow-door"
    assert refused["subtype"][0]["code"] == "refused-instance" and refused["outcomeDesc"]
    assert audited_patient_ids(refused) == []  # what was refused is not read for its patient
    assert again["agent"][0]["who"]["identifier"]["value"] == "grpc-door"


def test_release_runs_acceptance_again_and_delete_drops_the_bytes(
    ingestion: Ingestion, store: ObjectStore, sqlite_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    first = write_study(_small(0), tmp_path / "a")
    uid = pydicom.dcmread(first).StudyInstanceUID
    intruder = _rewritten(write_study(_small(2), tmp_path / "b"), tmp_path / "c" / "x.dcm", StudyInstanceUID=uid)
    ingestion.accept([_incoming(first)])
    held_id = ingestion.accept([_incoming(intruder)]).results[0].quarantine_id
    # Still a conflict: the entry stays held with the reason.
    again = ingestion.release(held_id)
    assert again.rejection.code == Code.REJECTION_CODE_IDENTITY_CONFLICT and again.quarantine_id == held_id
    assert [r.id for r in _held(sqlite_sessions)] == [held_id]
    # The first study is corrected upstream (removed here); the release now stores the instance.
    with sqlite_sessions.begin() as session:
        session.delete(studies.require_study(session, uid))
    released = ingestion.release(held_id)
    assert released.accepted and ingestion.status(uid).instance_count == 1
    assert _held(sqlite_sessions) == []
    with pytest.raises(QuarantineNotFound):
        ingestion.release(held_id)
    # Delete: the bytes go, the record of why stays.
    bad = write_rejectable_inputs(tmp_path / "bad")["ct_image"]
    ct_id = ingestion.accept([_incoming(bad)]).results[0].quarantine_id
    with sqlite_sessions() as session:
        key = session.scalars(select(RejectionRow.object_key).where(RejectionRow.id == ct_id)).one()
    ingestion.delete_quarantined(ct_id)
    assert not store.exists(key)
    with sqlite_sessions() as session:
        assert [r.status for r in records.quarantined(session, None) if r.id == ct_id] == ["deleted"]
    with pytest.raises(QuarantineNotFound):
        ingestion.delete_quarantined(ct_id)


def test_spooled_instances_stay_until_released(ingestion: Ingestion, store: ObjectStore, tmp_path: Path) -> None:
    path = write_study(_small(0), tmp_path)
    store.put("spool/a.dcm", path.read_bytes())
    spooled = messages_pb2.SpooledInstances(spool_keys=["spool/a.dcm", "spool/gone.dcm"])
    first = ingestion.accept_spooled(spooled)
    assert [(r.label, r.accepted) for r in first.results] == [("a.dcm", True)]
    again = ingestion.accept_spooled(spooled)  # a redelivery before the spool was released
    assert again.results[0].duplicate
    ingestion.release_spool(spooled)
    assert not store.exists("spool/a.dcm")
    assert list(ingestion.accept_spooled(spooled).results) == []


def test_a_prior_spooled_for_comparison_makes_a_comparison_only_study_and_keeps_what_a_study_was(
        ingestion: Ingestion, sqlite_sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path) -> None:
    prior, current = write_study(_small(0), tmp_path / "p"), write_study(_small(1), tmp_path / "c")
    store.put("spool/prior.dcm", prior.read_bytes())
    store.put("spool/current.dcm", current.read_bytes())
    ingestion.accept([_incoming(current)])  # a study Hilum was sent: it is reported
    spooled = messages_pb2.SpooledInstances(spool_keys=["spool/prior.dcm", "spool/current.dcm"], comparison_only=True)
    assert [r.accepted for r in ingestion.accept_spooled(spooled).results] == [True, True]
    with sqlite_sessions() as session:
        assert studies.require_study(session, _small(0).study_instance_uid).comparison_only
        assert not studies.require_study(session, _small(1).study_instance_uid).comparison_only
    assert _due(sqlite_sessions, _small(0).study_instance_uid) is not None  # handed to inference like any study
    ingestion.accept([_incoming(prior)])  # sent later through a door: it stays what it was first seen as
    with sqlite_sessions() as session:
        assert studies.require_study(session, _small(0).study_instance_uid).comparison_only


def test_unknown_study_has_no_state(ingestion: Ingestion) -> None:
    assert ingestion.status("1.2.3").state == study_state.StudyState.STUDY_STATE_UNSPECIFIED


@pytest.mark.integration
def test_two_contents_of_one_instance_arriving_at_once_keep_the_bytes_of_the_one_recorded_on_postgresql(
    postgres_url: str, store: ObjectStore, tmp_path: Path
) -> None:
    """The same SOP Instance UID with other bytes, sent twice at once: one is stored, the other refused as a conflict
    (never taken for a duplicate: the stored instance is looked up once), and the file under the instance's key is the
    one whose digest its row records, never the refused one's (the row is claimed before the file is put in place, so
    the loser waits on the row and never writes the file)."""
    upgrade_database(postgres_url)
    sessions = session_factory(create_db_engine(postgres_url))
    ingestion = _keeping_inputs(sessions, store)
    for index in range(6):
        original = write_study(_small(1, seed=9100 + index), tmp_path / f"o{index}")
        altered = _rewritten(original, tmp_path / f"a{index}" / "x.dcm", StudyDescription="XR CHEST PA (altered)")
        start = threading.Barrier(2)

        def submit(incoming: IncomingInstance, start: threading.Barrier = start) -> ingestion_pb2.InstanceResult:
            start.wait()
            return ingestion.accept([incoming]).results[0]

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(submit, [_incoming(original), _incoming(altered)]))
        assert sorted(result.accepted for result in results) == [False, True], results
        assert not any(result.duplicate for result in results), results
        [refused] = [result for result in results if not result.accepted]
        assert refused.rejection.code == Code.REJECTION_CODE_INSTANCE_CONFLICT
        with sessions() as session:
            row = studies.stored_instance(session, pydicom.dcmread(original).SOPInstanceUID)
            assert row is not None
            assert hashlib.sha256(store.get(row.object_key)).hexdigest() == row.content_sha256
    assert not [path.name for path in store.root.rglob(".writing-*")]


@pytest.mark.integration
def test_two_views_of_a_new_study_arriving_at_once_are_both_stored_on_postgresql(
    postgres_url: str, store: ObjectStore, tmp_path: Path
) -> None:
    """Both calls see no study row and both insert one: the one that loses on the study's key reads again and adds
    its instance, rather than answering "duplicate" for an instance that is stored nowhere."""
    upgrade_database(postgres_url)
    sessions = session_factory(create_db_engine(postgres_url))
    ingestion = Ingestion(sessions, store, MRN_SYSTEM, stability_window=WINDOW, clock=lambda: NOW)
    pairs, uids = [], []
    for index in range(6):
        study = _small(1, seed=9000 + index)
        frontal = write_study(study, tmp_path / f"f{index}")
        lateral = _rewritten(frontal, tmp_path / f"l{index}" / "lateral.dcm",
                             SOPInstanceUID=f"{study.sop_instance_uid}.2")
        pairs.append((_incoming(frontal), _incoming(lateral)))
        uids.append(study.study_instance_uid)
    for pair in pairs:
        start = threading.Barrier(2)

        def submit(incoming: IncomingInstance, start: threading.Barrier = start) -> ingestion_pb2.InstanceResult:
            start.wait()
            return ingestion.accept([incoming]).results[0]

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(submit, pair))
        assert all(result.accepted and not result.duplicate for result in results), results
    with sessions() as session:
        for uid in uids:
            assert studies.count_instances(session, uid) == 2
            assert len(ImagingStudy.model_validate_json(studies.require_study(session, uid).imaging_study)
                       .series[0].instance) == 2
    assert _due(sessions, uids[0]) == NOW + WINDOW
