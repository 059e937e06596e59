"""STOW-RS into the embedded stack: a study posted to the URL endpoints.json names ends REPORTED.

One stack on free loopback ports (SQLite, the embedded default) over the demo-weights model repository.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset

from hilum.common import study_state
from hilum.common.db.session import upgrade_database
from hilum.ingestion import door_status
from hilum.ingestion.client import IngestionClient
from hilum.runtime.endpoints import live_endpoints
from hilum.runtime.ports import loopback_settings
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.integration

BOUNDARY = "hilum-stow-integration"


def _multipart(*contents: bytes) -> bytes:
    parts = b"".join(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + content + b"\r\n"
                     for content in contents)
    return parts + b"--" + BOUNDARY.encode() + b"--\r\n"


def test_a_study_stored_by_stow_rs_is_reported(tmp_path: Path, demo_model_repository: Path) -> None:
    settings = loopback_settings(tmp_path, demo_model_repository, REPO_ROOT / ".venv-triton")
    upgrade_database(settings.database_url)
    study = write_study(dataclasses.replace(SAMPLE_STUDIES[2], rows=640, columns=512), tmp_path / "in")
    header = pydicom.dcmread(study, stop_before_pixels=True)

    with EmbeddedStack(settings) as stack:
        endpoints = live_endpoints(stack.data_dir)
        assert endpoints is not None and endpoints.stow is not None and endpoints.ingestion_grpc is not None
        assert endpoints.stow == f"{stack.cds_url}/dicomweb/studies"

        response = httpx.post(
            f"{endpoints.stow}/{header.StudyInstanceUID}",
            content=_multipart(study.read_bytes(), b"not DICOM"),
            headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
                     "Accept": "application/dicom+json"},
            timeout=60.0,
        )
        assert response.status_code == 202, response.text
        assert response.headers["content-type"] == "application/dicom+json"
        answer = Dataset.from_json(response.text)
        assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [header.SOPInstanceUID]
        assert [item.FailureReason for item in answer.FailedSOPSequence] == [door_status.CANNOT_UNDERSTAND]

        with IngestionClient(endpoints.ingestion_grpc) as client:
            status = client.wait_for([header.StudyInstanceUID], timeout_s=240, check=stack.check_alive)
        finished = status[header.StudyInstanceUID]
        assert finished.state == study_state.REPORTED, finished.error
        assert finished.instance_count == 1
        assert Path(finished.result.bundle_path).is_file()

    log = (stack.log_dir / "cds.log").read_text()
    assert "POST /dicomweb/studies/{study} HTTP/1.1" in log
    for value in (header.StudyInstanceUID, header.SOPInstanceUID, header.PatientID, str(header.PatientName)):
        assert value not in log
