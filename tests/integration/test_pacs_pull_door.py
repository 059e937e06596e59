"""A real Orthanc beside a running stack: `hilum pull` fetches studies from it, and it pushes one by C-STORE;
each ends REPORTED.

One embedded stack (SQLite, demo weights) and one Orthanc that knows the stack's DICOM door as "HILUM".
Each test puts a new study in Orthanc and pulls it one way: QIDO-RS + WADO-RS, C-FIND + C-GET, or
C-FIND + C-MOVE to the stack's DICOM door.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hilum.common import study_state
from hilum.common.settings import HilumSettings, PacsSection, settings_env
from hilum.ingestion.client import IngestionClient
from hilum.runtime.orthanc import DicomModality, OrthancServer
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES

pytestmark = pytest.mark.integration

PACS_AE = "TESTPACS"
REPORT_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory, stack: EmbeddedStack) -> Iterator[OrthancServer]:
    """An Orthanc that serves the stack's AE (C-FIND, C-GET) and can C-STORE to its DICOM door (C-MOVE)."""
    door = stack.settings.dicom
    hilum = DicomModality(door.ae_title, door.host, door.port)
    with OrthancServer(tmp_path_factory.mktemp("orthanc"), ae_title=PACS_AE, modalities={"hilum": hilum}) as server:
        yield server


def _new_study_in_pacs(orthanc: OrthancServer, tmp_path: Path, index: int, seed: int) -> str:
    """Upload a new study (a bundled sample's patient and date, new UIDs) to Orthanc; return its UID."""
    spec = dataclasses.replace(SAMPLE_STUDIES[index], seed=seed, label=f"pulled-{seed}", rows=320, columns=256)
    orthanc.upload(write_study(spec, tmp_path).read_bytes())
    return spec.study_instance_uid


def _hilum_pull(settings: HilumSettings, pacs: PacsSection, *args: str) -> subprocess.CompletedProcess[str]:
    """`hilum pull --since 2025-01-01` in its own process, configured only through HILUM_* variables."""
    env = {**os.environ, **settings_env(settings.model_copy(update={"pacs": pacs}))}
    return subprocess.run([sys.executable, "-m", "hilum.cli", "pull", "--since", "2025-01-01", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def _wait_reported(stack: EmbeddedStack, uid: str) -> None:
    grpc = stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        status = client.wait_for([uid], timeout_s=REPORT_TIMEOUT_S)[uid]
    assert status.state == study_state.REPORTED, status.error
    assert Path(status.result.bundle_path).is_file()


@pytest.mark.parametrize(("way", "index", "seed"), [("dicomweb", 1, 8101), ("c-get", 2, 8102), ("c-move", 3, 8103)])
def test_hilum_pull_brings_a_study_to_reported(stack: EmbeddedStack, orthanc: OrthancServer, tmp_path: Path,
                                               way: str, index: int, seed: int) -> None:
    uid = _new_study_in_pacs(orthanc, tmp_path, index, seed)
    if way == "dicomweb":
        pulled = _hilum_pull(stack.settings, PacsSection(dicomweb_url=orthanc.dicomweb_url))
    else:
        dimse = PacsSection(ae_title=PACS_AE, host="127.0.0.1", port=orthanc.dicom_port)
        move = ["--move-to", stack.settings.dicom.ae_title] if way == "c-move" else []
        pulled = _hilum_pull(stack.settings, dimse, *move)
    assert pulled.returncode == 0, pulled.stderr
    report = pulled.stdout.strip().splitlines()[-1]
    # Studies pulled by the earlier cases are held: found again, skipped.
    assert ", 1 pulled, " in report and ", 0 failed; 1 instances accepted, 0 rejected" in report, report
    _wait_reported(stack, uid)

    again = _hilum_pull(stack.settings, PacsSection(dicomweb_url=orthanc.dicomweb_url))
    assert again.returncode == 0 and ", 0 pulled, " in again.stdout, again.stdout


def test_hilum_pull_without_a_pacs_says_what_to_set(stack: EmbeddedStack) -> None:
    done = _hilum_pull(stack.settings, PacsSection())
    assert done.returncode == 1
    assert done.stderr.startswith("hilum pull: no PACS is configured: set HILUM_PACS__DICOMWEB_URL")


def test_orthanc_pushes_a_study_by_c_store_and_it_is_reported(stack: EmbeddedStack, orthanc: OrthancServer,
                                                              tmp_path: Path) -> None:
    """A PACS routing rule: Orthanc sends a study to Hilum's DICOM door with C-STORE (its /store job)."""
    uid = _new_study_in_pacs(orthanc, tmp_path, 0, 8104)
    [orthanc_study] = httpx.post(f"{orthanc.url}/tools/lookup", content=uid, timeout=30).json()
    pushed = httpx.post(f"{orthanc.url}/modalities/hilum/store",
                        json={"Resources": [orthanc_study["ID"]], "Synchronous": True}, timeout=120)
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["FailedInstancesCount"] == 0
    _wait_reported(stack, uid)
