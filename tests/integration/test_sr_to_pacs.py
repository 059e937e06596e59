"""The result's DICOM SR sent to a real Orthanc, by STOW-RS and by C-STORE: stored once, however often it is sent.

One Orthanc that knows Hilum's calling AE title ("HILUM") as a modality, so it accepts its C-STOREs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from pydicom import Dataset

from hilum.common.errors import PermanentError
from hilum.common.reported_findings import (
    ChangeSincePrior,
    FindingStatus,
    Laterality,
    ModelProvenance,
    ReportedFinding,
    ReportedFindings,
)
from hilum.common.settings import PacsDestination
from hilum.publishing.pacs import send_structured_report
from hilum.publishing.structured_report import DEMO_TEXT, build_structured_report
from hilum.runtime.orthanc import DicomModality, OrthancServer
from hilum.runtime.ports import free_port
from hilum.samples.dicom_files import dx_dataset
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import messages_pb2

pytestmark = pytest.mark.integration

PACS_AE = "TESTPACS"
HILUM_AE = "HILUM"
MODEL = ModelProvenance(name="cxr_findings", version="demo-untrained", demo_weights=True)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """An Orthanc that accepts C-STORE from the AE title HILUM."""
    hilum = DicomModality(HILUM_AE, "127.0.0.1", free_port())
    with OrthancServer(tmp_path_factory.mktemp("orthanc"), ae_title=PACS_AE, modalities={"hilum": hilum}) as server:
        yield server


def _sr(index: int, seed: int) -> Dataset:
    """The SR of a new study (a bundled sample's patient, new UIDs) with one new, present finding."""
    source = dx_dataset(dataclasses.replace(SAMPLE_STUDIES[index], seed=seed, rows=64, columns=52))
    finding = ReportedFinding(
        code="effusion", display="Pleural effusion", snomed_code="60046008", status=FindingStatus.PRESENT,
        probability=0.83, threshold=0.5, laterality=Laterality.UNSPECIFIED, change=ChangeSincePrior.NEW, model=MODEL,
    )
    reported = ReportedFindings(study_instance_uid=str(source.StudyInstanceUID), model=MODEL, prior=None,
                                compared=True, findings=(finding,), assessed_codes=("effusion",))
    draft = messages_pb2.DraftReport(
        model=MODEL.as_info(), impression=[messages_pb2.ReportSentence(text="New pleural effusion.")]
    )
    return build_structured_report([source], reported, draft, now=datetime(2025, 2, 18, 12, 0, tzinfo=UTC))


def _instances_of(orthanc: OrthancServer, sr: Dataset) -> list[str]:
    """Orthanc's IDs of the instances QIDO-RS finds in the SR's series (the SR itself, once stored)."""
    url = f"{orthanc.dicomweb_url}/studies/{sr.StudyInstanceUID}/series/{sr.SeriesInstanceUID}/instances"
    response = httpx.get(url, headers={"Accept": "application/dicom+json"}, timeout=10)
    if response.status_code == 204:
        return []
    response.raise_for_status()
    found = [str(item["00080018"]["Value"][0]) for item in response.json()]
    assert set(found) <= {str(sr.SOPInstanceUID)}
    lookup = httpx.post(f"{orthanc.url}/tools/lookup", content=str(sr.SOPInstanceUID), timeout=10)
    lookup.raise_for_status()
    ids = [str(item["ID"]) for item in lookup.json() if item["Type"] == "Instance"]
    assert len(ids) == len(found)
    return ids


def _check_stored(orthanc: OrthancServer, sr: Dataset) -> None:
    """Orthanc holds the SR once, in the source study, with its demo notice."""
    (instance_id,) = _instances_of(orthanc, sr)
    tags = httpx.get(f"{orthanc.url}/instances/{instance_id}/simplified-tags", timeout=10).json()
    assert tags["SOPClassUID"] == sr.SOPClassUID
    assert tags["StudyInstanceUID"] == sr.StudyInstanceUID
    assert tags["SeriesDescription"] == DEMO_TEXT
    assert tags["Modality"] == "SR"


@pytest.mark.parametrize("door", ["stow-rs", "c-store"])
def test_sr_is_stored_once_however_often_it_is_sent(orthanc: OrthancServer, door: str) -> None:
    index, seed = (1, 9101) if door == "stow-rs" else (2, 9102)
    sr = _sr(index, seed)
    stow = PacsDestination(stow_url=orthanc.dicomweb_url, timeout_s=10)
    dimse = PacsDestination(ae_title=PACS_AE, host="127.0.0.1", port=orthanc.dicom_port, calling_ae_title=HILUM_AE,
                            timeout_s=10)
    first, other = (stow, dimse) if door == "stow-rs" else (dimse, stow)
    assert _instances_of(orthanc, sr) == []
    assert send_structured_report(sr, first) == sr.SOPInstanceUID
    _check_stored(orthanc, sr)
    # A redelivery by the same door, and one by the other door, leave one instance.
    assert send_structured_report(sr, first) == sr.SOPInstanceUID
    assert send_structured_report(sr, other) == sr.SOPInstanceUID
    _check_stored(orthanc, sr)


def test_wrong_called_ae_is_a_permanent_rejection(orthanc: OrthancServer) -> None:
    sr = _sr(3, 9103)
    wrong = PacsDestination(ae_title="NOTTHEPACS", host="127.0.0.1", port=orthanc.dicom_port,
                            calling_ae_title=HILUM_AE, timeout_s=10)
    with pytest.raises(PermanentError, match="rejected the association"):
        send_structured_report(sr, wrong)
    assert _instances_of(orthanc, sr) == []
