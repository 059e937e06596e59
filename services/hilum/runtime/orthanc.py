"""A private Orthanc PACS as a plain process: the real DICOMweb and DIMSE peer that the pull door is tested against.

Orthanc (Debian packages `orthanc` and `orthanc-dicomweb`; scripts/setup.sh --dev installs them) runs from its
own JSON configuration in a work directory, with its own storage and index, the DICOMweb plugin, no
authentication and no compression, on ports of our choosing. Orthanc 1.10 cannot bind to one address:
it listens on every interface, so RemoteAccessAllowed=false refuses HTTP clients other than loopback, and
the DICOM port serves only the modalities it is configured with, from their configured hosts.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hilum.runtime.ports import free_port, is_free
from hilum.runtime.processes import LoopbackServer, ProcessFailed

LOOPBACK = "127.0.0.1"
BINARY_NAME = "Orthanc"
BINARY_FALLBACKS = (Path("/usr/sbin/Orthanc"), Path("/usr/local/sbin/Orthanc"), Path("/usr/local/bin/Orthanc"))
DICOMWEB_PLUGIN = "libOrthancDicomWeb.so"
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"), Path("/usr/local/share/orthanc/plugins"))
INSTALL_HINT = "run scripts/setup.sh --dev (it installs the orthanc and orthanc-dicomweb packages)"


class OrthancNotInstalled(ProcessFailed):
    """The Orthanc binary or its DICOMweb plugin is missing."""


@dataclass(frozen=True)
class DicomModality:
    """A DICOM application entity Orthanc knows: it may query and retrieve (C-FIND, C-GET, C-MOVE) and
    Orthanc can C-STORE to it (as a C-MOVE destination or on request) at host:port.
    """

    ae_title: str
    host: str
    port: int


def find_orthanc() -> str:
    """The path of the Orthanc binary (Debian puts it in /usr/sbin, which is often not on a user's PATH)."""
    found = shutil.which(BINARY_NAME) or next((str(p) for p in BINARY_FALLBACKS if p.is_file()), None)
    if found is None:
        raise OrthancNotInstalled(f"Orthanc is not installed; {INSTALL_HINT}")
    return found


def find_dicomweb_plugin() -> Path:
    """The path of Orthanc's DICOMweb plugin (libOrthancDicomWeb.so, possibly with a version suffix)."""
    for folder in PLUGIN_DIRS:
        candidates = sorted(folder.glob(f"{DICOMWEB_PLUGIN}*")) if folder.is_dir() else []
        if candidates:
            return candidates[0]  # the unversioned name sorts first
    raise OrthancNotInstalled(f"Orthanc's DICOMweb plugin ({DICOMWEB_PLUGIN}) is not installed; {INSTALL_HINT}")


class OrthancServer(LoopbackServer):
    """One Orthanc process with its configuration, storage, index and log in work_dir; start, stop, or `with`.

    http_port and dicom_port default to free loopback ports; ae_title is Orthanc's own AE title;
    modalities are the peers it serves over DICOM and stores to, by a symbolic name. sync_storage makes
    Orthanc fsync each stored file before it answers (a benchmark against a durable store wants that).
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        http_port: int | None = None,
        dicom_port: int | None = None,
        ae_title: str = "ORTHANC",
        modalities: Mapping[str, DicomModality] | None = None,
        sync_storage: bool = False,
    ) -> None:
        super().__init__("Orthanc", "orthanc", work_dir / "orthanc.log")
        self.work_dir = work_dir
        self.http_port = http_port if http_port is not None else free_port()
        self.dicom_port = dicom_port if dicom_port is not None else free_port()
        self.ae_title = ae_title
        self.modalities = dict(modalities or {})
        self.sync_storage = sync_storage
        self.config_path = work_dir / "orthanc.json"
        # GET /system names the server, so start() never mistakes another Orthanc on the port for this one.
        self.name = f"Hilum PACS {ae_title} {secrets.token_hex(4)}"

    @property
    def url(self) -> str:
        """The REST API's root, e.g. http://127.0.0.1:8042."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (QIDO-RS, WADO-RS, STOW-RS), e.g. http://127.0.0.1:8042/dicom-web."""
        return f"{self.url}/dicom-web"

    def config(self) -> dict[str, Any]:
        """Orthanc's configuration as written to config_path."""
        return {
            "Name": self.name,
            "StorageDirectory": str((self.work_dir / "storage").resolve()),
            "IndexDirectory": str((self.work_dir / "index").resolve()),
            # Files are kept as received, so what a retrieve returns is byte for byte what was stored.
            "StorageCompression": False,
            "OverwriteInstances": False,
            "Plugins": [str(find_dicomweb_plugin())],
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "SslEnabled": False,
            "HttpCompressionEnabled": False,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "MetricsEnabled": False,
            "ExecuteLuaEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            # Only the configured modalities, from their configured hosts, may do anything but C-ECHO.
            "DicomCheckModalityHost": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "DicomModalitiesInDatabase": False,
            "DicomModalities": {
                name: {"AET": peer.ae_title, "Host": peer.host, "Port": peer.port}
                for name, peer in self.modalities.items()
            },
            "DicomScuTimeout": 10,
            # Queries are answered from the index and the stored files (StudyDate, ModalitiesInStudy, counts).
            "StorageAccessOnFind": "Always",
            # A throw-away store in a work directory: no fsync per file unless asked. C-MOVE answers once
            # every sub-operation is done, so its counts are final.
            "SyncStorageArea": self.sync_storage,
            "SynchronousCMove": True,
            "SaveJobs": False,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "WadoRoot": "/wado"},
        }

    def write_config(self) -> Path:
        """Create the work directory and write the configuration file; return its path."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        return self.config_path

    def start(self, timeout_s: float = 30.0) -> None:
        """Launch Orthanc and wait until GET /system answers; raises ProcessFailed with the log tail."""
        self._refuse_if_running()
        binary = find_orthanc()
        for port, what in ((self.http_port, "HTTP"), (self.dicom_port, "DICOM")):
            if not is_free(LOOPBACK, port):
                raise ProcessFailed(f"Orthanc cannot start: its {what} port {port} is already in use")
        config = self.write_config()
        self._launch([binary, "--no-jobs", str(config)], None, timeout_s,
                     f"Orthanc on {self.url} to answer GET /system")

    def answers(self) -> bool:
        """Whether this Orthanc (not another on the same port) answers GET /system now."""
        try:
            response = httpx.get(f"{self.url}/system", timeout=1.0)
            return response.status_code == 200 and response.json().get("Name") == self.name
        except (httpx.HTTPError, ValueError):
            return False

    def upload(self, content: bytes, timeout_s: float = 30.0) -> str:
        """Store a DICOM Part 10 file through the REST API (POST /instances); return Orthanc's instance ID."""
        response = httpx.post(f"{self.url}/instances", content=content, timeout=timeout_s,
                              headers={"Content-Type": "application/dicom"})
        response.raise_for_status()
        instance_id: str = response.json()["ID"]
        return instance_id
