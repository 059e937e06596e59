"""OrthancServer: its configuration, and a real Orthanc started on free ports, fed over REST, queried over QIDO-RS."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest

from hilum.runtime.orthanc import DicomModality, OrthancServer, find_dicomweb_plugin, find_orthanc
from hilum.runtime.ports import is_free
from hilum.runtime.processes import ProcessFailed
from hilum.samples.dicom_files import write_sample_studies

HILUM = DicomModality("HILUM", "127.0.0.1", 11112)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """One Orthanc for the module's tests that need a running one."""
    with OrthancServer(tmp_path_factory.mktemp("orthanc"), ae_title="TESTPACS", modalities={"hilum": HILUM}) as server:
        yield server


def test_config_is_private_uncompressed_unauthenticated_and_knows_its_modalities(tmp_path: Path) -> None:
    server = OrthancServer(tmp_path / "pacs", http_port=18042, dicom_port=14242, ae_title="PACS1",
                           modalities={"hilum": HILUM})
    written = json.loads(server.write_config().read_text())
    assert written == server.config()
    assert written["HttpPort"] == 18042 and written["DicomPort"] == 14242 and written["DicomAet"] == "PACS1"
    assert written["RemoteAccessAllowed"] is False and written["AuthenticationEnabled"] is False
    assert written["StorageCompression"] is False
    assert written["SyncStorageArea"] is False  # a throw-away store; sync_storage=True fsyncs each file
    assert OrthancServer(tmp_path / "synced", sync_storage=True).config()["SyncStorageArea"] is True
    assert written["StorageDirectory"] == str((tmp_path / "pacs" / "storage").resolve())
    assert written["IndexDirectory"] == str((tmp_path / "pacs" / "index").resolve())
    assert written["Plugins"] == [str(find_dicomweb_plugin())]
    assert written["DicomWeb"]["Enable"] is True and written["DicomWeb"]["Root"] == "/dicom-web/"
    assert written["DicomModalities"] == {"hilum": {"AET": "HILUM", "Host": "127.0.0.1", "Port": 11112}}
    # Strangers may C-ECHO, nothing else.
    assert not any(written[f"DicomAlwaysAllow{what}"] for what in ("Store", "Find", "Get", "Move"))
    assert written["DicomCheckModalityHost"] is True
    assert server.url == "http://127.0.0.1:18042" and server.dicomweb_url == "http://127.0.0.1:18042/dicom-web"


def test_default_ports_are_free_and_distinct(tmp_path: Path) -> None:
    server = OrthancServer(tmp_path)
    assert server.http_port != server.dicom_port
    assert is_free("127.0.0.1", server.http_port) and is_free("127.0.0.1", server.dicom_port)


def test_the_binary_and_plugin_are_found() -> None:
    assert Path(find_orthanc()).name == "Orthanc"
    assert find_dicomweb_plugin().name.startswith("libOrthancDicomWeb.so")


def test_upload_then_qido_finds_the_study_and_wado_returns_the_same_bytes(orthanc: OrthancServer,
                                                                          tmp_path: Path) -> None:
    path = write_sample_studies(tmp_path, rows=160, columns=128)[0]
    header = pydicom.dcmread(path, stop_before_pixels=True)
    assert orthanc.upload(path.read_bytes())
    found = httpx.get(f"{orthanc.dicomweb_url}/studies", params={"StudyInstanceUID": header.StudyInstanceUID})
    assert found.status_code == 200 and found.headers["content-type"].startswith("application/dicom+json")
    [study] = found.json()
    assert study["0020000D"]["Value"] == [header.StudyInstanceUID]
    assert study["00080061"]["Value"] == ["DX"]
    instance = httpx.get(
        f"{orthanc.dicomweb_url}/studies/{header.StudyInstanceUID}/series/{header.SeriesInstanceUID}"
        f"/instances/{header.SOPInstanceUID}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert instance.status_code == 200
    assert path.read_bytes() in instance.content  # stored uncompressed, as sent


def test_start_writes_a_log_and_stop_frees_both_ports(tmp_path: Path) -> None:
    server = OrthancServer(tmp_path / "pacs")
    server.start()
    try:
        assert server.running and server.answers()
        assert httpx.get(f"{server.url}/system").json()["DicomAet"] == "ORTHANC"
        socket.create_connection(("127.0.0.1", server.dicom_port), timeout=2.0).close()
        assert "Orthanc has started" in server.log_tail()
    finally:
        server.stop()
    assert not server.running and not server.answers()
    assert is_free("127.0.0.1", server.http_port) and is_free("127.0.0.1", server.dicom_port)
    assert "Orthanc has stopped" in server.log_tail()


@pytest.mark.parametrize("taken", ["http", "dicom"])
def test_a_taken_port_fails_start_and_names_it(tmp_path: Path, orthanc: OrthancServer, taken: str) -> None:
    port = orthanc.http_port if taken == "http" else orthanc.dicom_port
    server = OrthancServer(tmp_path / "pacs", **{f"{taken}_port": port})
    with pytest.raises(ProcessFailed, match=f"{taken.upper()} port {port} is already in use"):
        server.start()
    assert not server.running
    assert orthanc.answers()  # the other one is untouched


def test_another_orthanc_on_the_port_is_not_taken_for_this_one(tmp_path: Path, orthanc: OrthancServer) -> None:
    impostor = OrthancServer(tmp_path / "pacs", http_port=orthanc.http_port)
    assert orthanc.answers() and not impostor.answers()


def test_an_orthanc_that_exits_during_start_fails_with_its_log_tail(tmp_path: Path) -> None:
    server = OrthancServer(tmp_path / "pacs")
    (tmp_path / "pacs").mkdir()
    (tmp_path / "pacs" / "index").write_text("a file where Orthanc needs its index folder")
    with pytest.raises(ProcessFailed, match="Orthanc exited") as raised:
        server.start()
    assert "Orthanc version" in str(raised.value)
    assert not server.running
