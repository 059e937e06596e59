"""The DICOM door of the embedded stack: in endpoints.json, answering C-ECHO, and a study sent with dcmtk's
storescu goes all the way to REPORTED.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pydicom
import pytest

from hilum.common import study_state
from hilum.ingestion.client import IngestionClient
from hilum.ingestion.dimse_scp import echo
from hilum.runtime.endpoints import DicomEndpoint, read_endpoints
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from tests.helpers import require_tool

pytestmark = pytest.mark.integration

CALLING = "MODALITY1"


def test_the_dicom_door_is_published_and_answers_c_echo(stack: EmbeddedStack) -> None:
    endpoints = read_endpoints(stack.data_dir)
    assert endpoints is not None
    assert endpoints.dicom == DicomEndpoint(ae_title="HILUM", host="127.0.0.1", port=stack.settings.dicom.port)
    assert echo(endpoints.dicom.host, endpoints.dicom.port, endpoints.dicom.ae_title)
    echoscu = require_tool("echoscu")
    done = subprocess.run([echoscu, "-aet", CALLING, "-aec", endpoints.dicom.ae_title, endpoints.dicom.host,
                           str(endpoints.dicom.port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_study_sent_with_storescu_is_reported(stack: EmbeddedStack, tmp_path: Path) -> None:
    storescu = require_tool("storescu")
    path = write_study(dataclasses.replace(SAMPLE_STUDIES[2], rows=640, columns=512), tmp_path)
    dicom = stack.settings.dicom
    done = subprocess.run([storescu, "-v", "-aet", CALLING, "-aec", dicom.ae_title, dicom.host, str(dicom.port),
                           str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Received Store Response (Success)" in done.stdout + done.stderr, (
        done.stdout + done.stderr)

    uid = pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID
    grpc = stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        status = client.wait_for([uid], timeout_s=240, check=stack.check_alive)[uid]
    assert status.state == study_state.REPORTED, status.error
    assert status.instance_count == 1
    assert Path(status.result.bundle_path).is_file()
