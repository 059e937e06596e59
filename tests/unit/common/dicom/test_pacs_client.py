"""The PACS clients against a real Orthanc (tests/orthanc_pacs.py): QIDO-RS and WADO-RS, C-FIND and C-GET, and the
errors each standard answers with."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date

import pydicom
import pytest
from pydicom.uid import generate_uid

from hilum.common.dicom.pacs_client import DicomwebClient, DimseClient, PacsError, date_range, study_source
from hilum.common.settings import PacsSection
from hilum.runtime.ports import free_port
from tests.orthanc_pacs import HILUM_AE, PACS_AE, Pacs, sample_pacs


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    with sample_pacs(tmp_path_factory.mktemp("pacs")) as server:
        yield server


def test_qido_matches_and_parses_what_orthanc_answers(pacs: Pacs) -> None:
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        dx = client.search_studies({"ModalitiesInStudy": "DX"})
        cr = client.search_studies({"ModalitiesInStudy": "CR"})
        ct = client.search_studies({"ModalitiesInStudy": "CT", "StudyDate": date_range(date(2025, 2, 18))})
    assert {study.study_instance_uid for study in dx} == pacs.chest_uids
    assert cr == []
    assert {study.study_instance_uid for study in ct} == {pacs.ct_only_uid, pacs.mixed_uid}
    mixed = next(study for study in ct if study.study_instance_uid == pacs.mixed_uid)
    assert mixed.study_date == date(2025, 3, 1) and sorted(mixed.modalities) == ["CT", "DX"]




def test_whole_studies_are_retrieved_for_the_priors_stage(pacs: Pacs) -> None:
    uid, content = next(iter(pacs.samples.items()))
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        assert client.retrieve_study(uid) == [content]
        assert len(client.retrieve_study(pacs.mixed_uid)) == 2  # the DX and the CT
    [received] = pacs.dimse().retrieve_study(uid)
    assert pydicom.dcmread(io.BytesIO(received)) == pydicom.dcmread(io.BytesIO(content))
    assert [s.modality for s in pacs.dimse().search_series(pacs.mixed_uid)] in (["DX", "CT"], ["CT", "DX"])




def test_dicomweb_errors_are_pacs_errors(pacs: Pacs) -> None:
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        with pytest.raises(PacsError, match="HTTP 404"):
            client.retrieve_study(generate_uid())
    with DicomwebClient(f"{pacs.server.url}/no-such-root") as client:
        with pytest.raises(PacsError, match="QIDO-RS search answered HTTP 404"):
            client.search_studies({"ModalitiesInStudy": "DX"})
    with DicomwebClient(f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=2.0) as client:
        with pytest.raises(PacsError, match="QIDO-RS search failed: ConnectError"):
            client.search_studies({})




def test_dimse_errors_are_pacs_errors(pacs: Pacs) -> None:
    # Orthanc answers strangers' C-FIND and C-GET with a refusal.
    with pytest.raises(PacsError):
        pacs.dimse("STRANGER").search_studies({"ModalitiesInStudy": "DX"})
    with pytest.raises(PacsError):
        pacs.dimse("STRANGER").retrieve_study(next(iter(pacs.samples)))
    with pytest.raises(PacsError, match="refused or did not answer"):
        DimseClient(PACS_AE, "127.0.0.1", free_port(), HILUM_AE, timeout_s=2.0).search_studies({})
    with pytest.raises(PacsError, match="C-GET answered status"):
        pacs.dimse().retrieve_study(generate_uid())




def test_study_source_follows_the_settings() -> None:
    assert isinstance(study_source(PacsSection(dicomweb_url="http://pacs/dicom-web"), HILUM_AE), DicomwebClient)
    dimse = study_source(PacsSection(ae_title="PACS", host="pacs.example", port=11112), HILUM_AE)
    assert isinstance(dimse, DimseClient) and dimse.calling_ae_title == HILUM_AE and dimse.port == 11112
    with pytest.raises(ValueError, match="no PACS is configured"):
        study_source(PacsSection(), HILUM_AE)
