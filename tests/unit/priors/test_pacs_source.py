"""The PACS prior source against a real Orthanc (tests/orthanc_pacs.py), over DICOMweb and over DIMSE: which study
is the prior, who is the same patient, and what a fetch spools and hands to ingestion."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pydicom
import pytest

from hilum.common.dicom.pacs_client import DicomwebClient, FoundStudy, StudySource
from hilum.common.errors import TransientError
from hilum.common.object_store import ObjectStore
from hilum.common.study import PatientInfo, StudyInfo
from hilum.priors.pacs_source import PacsSource, started_before
from hilum.runtime.ports import free_port
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import messages_pb2
from tests.orthanc_pacs import Pacs, sample_pacs

ADA_PRIOR, ADA_CURRENT, BORIS = SAMPLE_STUDIES[0], SAMPLE_STUDIES[1], SAMPLE_STUDIES[2]
SAME_DAY_PATIENT = "SYN-SAMEDAY"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    """The sample PACS, plus three studies of one more patient on one day: at 07:00, at 09:00 and one without a
    Study Time."""
    root = tmp_path_factory.mktemp("pacs")
    with sample_pacs(root) as loaded:
        for seed, hour in ((9001, 7), (9002, 9), (9003, None)):
            spec = dataclasses.replace(ADA_PRIOR, patient_id=SAME_DAY_PATIENT, seed=seed, label=f"same-day-{seed}",
                                       rows=160, columns=128, study_started=datetime(2025, 5, 5, hour or 0, 0))
            path = write_study(spec, root / "same-day")
            if hour is None:
                dataset = pydicom.dcmread(path)
                del dataset.StudyTime
                dataset.save_as(path)
            loaded.server.upload(path.read_bytes())
        yield loaded


def _current(patient_id: str, started: datetime, issuer: str = ADA_CURRENT.issuer, uid: str = "1.2.3.4") -> StudyInfo:
    patient = PatientInfo(patient_id=patient_id, issuer=issuer, name="", birth_date=None, sex="")
    return StudyInfo(study_instance_uid=uid, patient=patient, started=started, accession_number="", description="")


def _source(client: StudySource, store: ObjectStore, handed: list[messages_pb2.SpooledInstances]) -> PacsSource:
    return PacsSource(client, "the test PACS", store, handed.append, clock=lambda: NOW)


@pytest.fixture(params=["dicomweb", "dimse"])
def client(request: pytest.FixtureRequest, pacs: Pacs) -> Iterator[StudySource]:
    if request.param == "dicomweb":
        with DicomwebClient(pacs.server.dicomweb_url) as dicomweb:
            yield dicomweb
    else:
        yield pacs.dimse()


def test_the_prior_is_the_patients_newest_radiograph_before_the_current_one(client: StudySource,
                                                                              store: ObjectStore) -> None:
    current = _current(ADA_CURRENT.patient_id, ADA_CURRENT.study_started, uid=ADA_CURRENT.study_instance_uid)
    candidate = _source(client, store, []).find_prior(current)
    assert candidate is not None
    assert candidate.study_instance_uid == ADA_PRIOR.study_instance_uid
    assert candidate.started == ADA_PRIOR.study_started.replace(microsecond=0)
    assert (candidate.modality, candidate.source, candidate.report) == ("DX", "pacs", None)
    assert candidate.study_date == "20240122"
    assert candidate.reason == ("most recent CR/DX study before 2025-02-18T10:05:32 with the same PatientID and "
                                "Issuer of Patient ID on the PACS the test PACS")
    assert ADA_CURRENT.patient_id not in candidate.reason
    # The prior itself has none before it; Boris's only other study (the mixed one) is later than his current.
    assert _source(client, store, []).find_prior(_current(ADA_PRIOR.patient_id, ADA_PRIOR.study_started)) is None
    assert _source(client, store, []).find_prior(_current(BORIS.patient_id, BORIS.study_started)) is None


def test_the_patient_is_matched_by_id_and_issuer_exactly(client: StudySource, pacs: Pacs, store: ObjectStore) -> None:
    source = _source(client, store, [])
    assert source.find_prior(_current(ADA_CURRENT.patient_id, ADA_CURRENT.study_started, issuer="OTHER")) is None
    assert source.find_prior(_current(ADA_CURRENT.patient_id, ADA_CURRENT.study_started, issuer="")) is None
    # "*" and "?" are wildcards in DICOM matching: C-FIND answers with Ada's studies, which are not this patient's.
    wildcard = ADA_CURRENT.patient_id[:-2] + "*"
    assert pacs.dimse().search_studies({"PatientID": wildcard, "ModalitiesInStudy": "DX"})
    assert source.find_prior(_current(wildcard, ADA_CURRENT.study_started)) is None
    assert source.find_prior(_current("", ADA_CURRENT.study_started)) is None


def test_on_the_same_day_study_times_decide(client: StudySource, store: ObjectStore) -> None:
    source = _source(client, store, [])
    later = source.find_prior(_current(SAME_DAY_PATIENT, datetime(2025, 5, 5, 10, 0)))
    between = source.find_prior(_current(SAME_DAY_PATIENT, datetime(2025, 5, 5, 8, 0)))
    assert later is not None and later.started == datetime(2025, 5, 5, 9, 0)
    assert between is not None and between.started == datetime(2025, 5, 5, 7, 0)
    # Before 07:00 nothing of that day can be called earlier (the study without a time could be either).
    assert source.find_prior(_current(SAME_DAY_PATIENT, datetime(2025, 5, 5, 6, 0))) is None
    next_day = source.find_prior(_current(SAME_DAY_PATIENT, datetime(2025, 5, 6, 6, 0)))
    assert next_day is not None and next_day.started == datetime(2025, 5, 5, 9, 0)


def test_started_before_needs_both_times_on_the_same_day() -> None:
    untimed = FoundStudy("1.2", date(2025, 5, 5), ("DX",))
    assert started_before(untimed, datetime(2025, 5, 6, 0, 0))
    assert not started_before(untimed, datetime(2025, 5, 5, 23, 0))
    assert not started_before(FoundStudy("1.2", None, ("DX",)), datetime(2025, 5, 5, 23, 0))


def test_a_fetch_spools_the_prior_and_hands_it_to_ingestion_as_comparison_only(
        client: StudySource, pacs: Pacs, store: ObjectStore) -> None:
    handed: list[messages_pb2.SpooledInstances] = []
    source = _source(client, store, handed)
    uid = ADA_PRIOR.study_instance_uid
    assert source.fetched_at(uid) is None
    assert source.fetch(uid) == 1
    [spooled] = handed
    assert spooled.comparison_only
    [key] = spooled.spool_keys
    content = store.get(key)
    original = pacs.samples[uid]
    assert key == f"spool/prior-{hashlib.sha256(content).hexdigest()}.dcm"
    assert pydicom.dcmread(io.BytesIO(content)) == pydicom.dcmread(io.BytesIO(original))
    assert source.fetched_at(uid) == NOW
    # The marker is named by a hash: no UID in the object store's paths.
    assert not any(uid in str(path) for path in Path(store.root).rglob("*"))


def test_only_radiograph_series_are_fetched(pacs: Pacs, store: ObjectStore) -> None:
    handed: list[messages_pb2.SpooledInstances] = []
    with DicomwebClient(pacs.server.dicomweb_url) as dicomweb:
        assert _source(dicomweb, store, handed).fetch(pacs.mixed_uid) == 1  # the DX, not the CT
    [spooled] = handed
    assert store.get(spooled.spool_keys[0]) == pacs.mixed_dx


def test_a_pacs_that_fails_is_a_transient_error_and_nothing_is_marked(store: ObjectStore) -> None:
    handed: list[messages_pb2.SpooledInstances] = []
    with DicomwebClient(f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=2.0) as down:
        source = _source(down, store, handed)
        with pytest.raises(TransientError, match="the PACS could not be searched: QIDO-RS search failed"):
            source.find_prior(_current(ADA_CURRENT.patient_id, ADA_CURRENT.study_started))
        with pytest.raises(TransientError, match="could not be retrieved"):
            source.fetch(ADA_PRIOR.study_instance_uid)
    assert handed == [] and source.fetched_at(ADA_PRIOR.study_instance_uid) is None
