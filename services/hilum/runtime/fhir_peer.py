"""A private in-memory FHIR R4 server (Medplum's router and repository on Node.js) as a plain process.

It is the real FHIR peer that publishing is tested and benchmarked against; scripts/setup.sh --dev installs it
into scripts/fhir-peer/node_modules. Nothing it stores outlives the process.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import httpx

from hilum.runtime.ports import free_port, is_free
from hilum.runtime.processes import LoopbackServer, ProcessFailed

LOOPBACK = "127.0.0.1"
BASE_PATH = "/fhir/R4"
PEER_DIR = Path(__file__).resolve().parents[3] / "scripts" / "fhir-peer"
INSTALL_HINT = "run scripts/setup.sh --dev (it needs Node.js >= 20.19 with npm)"


class FhirPeerNotInstalled(ProcessFailed):
    """Node.js or the FHIR peer's packages (scripts/fhir-peer/node_modules) are missing."""


class FhirPeer(LoopbackServer):
    """One Medplum FHIR server process on a loopback port, its log in work_dir; start, stop, or `with`.

    atomic_transactions=False makes the peer process transaction bundles entry by entry: Medplum refuses an
    atomic transaction of more than 8 entries once any entry is conditional.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        port: int | None = None,
        atomic_transactions: bool = True,
        peer_dir: Path = PEER_DIR,
    ) -> None:
        super().__init__("the FHIR peer", "fhir-peer", work_dir / "fhir-peer.log")
        self.work_dir = work_dir
        self.port = port if port is not None else free_port()
        self.atomic_transactions = atomic_transactions
        self.peer_dir = peer_dir
        # GET /healthcheck names the server, so start() never mistakes another peer on the port for this one.
        self.name = f"hilum-fhir-peer-{secrets.token_hex(4)}"

    @property
    def url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:8103."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def base_url(self) -> str:
        """The FHIR base URL (transactions are POSTed here), e.g. http://127.0.0.1:8103/fhir/R4."""
        return f"{self.url}{BASE_PATH}"

    def command(self) -> list[str]:
        """The node command line; raises FhirPeerNotInstalled when Node.js or the packages are missing."""
        node = shutil.which("node")
        if node is None:
            raise FhirPeerNotInstalled(f"Node.js is not installed; {INSTALL_HINT}")
        if not (self.peer_dir / "node_modules" / "@medplum" / "fhir-router").is_dir():
            raise FhirPeerNotInstalled(
                f"the FHIR peer is not installed in {self.peer_dir}/node_modules; {INSTALL_HINT}")
        return [node, str(self.peer_dir / "server.mjs"), str(self.port)]

    def start(self, timeout_s: float = 30.0) -> None:
        """Launch the server and wait until GET /healthcheck answers; raises ProcessFailed with the log tail."""
        self._refuse_if_running()
        argv = self.command()
        if not is_free(LOOPBACK, self.port):
            raise ProcessFailed(f"the FHIR peer cannot start: port {self.port} is already in use")
        env = {**os.environ, "FHIR_PEER_NAME": self.name,
               "FHIR_PEER_TRANSACTIONS": "on" if self.atomic_transactions else "off"}
        self._launch(argv, env, timeout_s, f"the FHIR peer on {self.url} to answer")

    def answers(self) -> bool:
        """Whether this peer (not another on the same port) answers GET /healthcheck now."""
        try:
            response = httpx.get(f"{self.url}/healthcheck", timeout=1.0)
            return response.status_code == 200 and response.json().get("name") == self.name
        except (httpx.HTTPError, ValueError):
            return False
