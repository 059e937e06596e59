"""A private in-memory FHIR R4 server (Medplum's router and repository on Node.js) as a plain process.

It is the real FHIR peer that publishing is tested and benchmarked against; scripts/setup.sh --dev installs it
into scripts/fhir-peer/node_modules. Nothing it stores outlives the process.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType

import httpx

from hilum.common.polling import wait_until
from hilum.runtime.ports import free_port, is_free
from hilum.runtime.processes import ManagedProcess, ProcessFailed

LOOPBACK = "127.0.0.1"
BASE_PATH = "/fhir/R4"
POLL_INTERVAL_S = 0.1
LOG_TAIL_LINES = 40
PEER_DIR = Path(__file__).resolve().parents[3] / "scripts" / "fhir-peer"
INSTALL_HINT = "run scripts/setup.sh --dev (it needs Node.js >= 20.19 with npm)"


class FhirPeerNotInstalled(ProcessFailed):
    """Node.js or the FHIR peer's packages (scripts/fhir-peer/node_modules) are missing."""


class FhirPeer:
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
        self.work_dir = work_dir
        self.port = port if port is not None else free_port()
        self.atomic_transactions = atomic_transactions
        self.peer_dir = peer_dir
        self.log_path = work_dir / "fhir-peer.log"
        # GET /healthcheck names the server, so start() never mistakes another peer on the port for this one.
        self.name = f"hilum-fhir-peer-{secrets.token_hex(4)}"
        self._process: ManagedProcess | None = None

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
        if self.running:
            raise RuntimeError("the FHIR peer is already running")
        argv = self.command()
        if not is_free(LOOPBACK, self.port):
            raise ProcessFailed(f"the FHIR peer cannot start: port {self.port} is already in use")
        env = {**os.environ, "FHIR_PEER_NAME": self.name,
               "FHIR_PEER_TRANSACTIONS": "on" if self.atomic_transactions else "off"}
        self._process = ManagedProcess("fhir-peer", argv, self.log_path, env=env)
        self._process.start()
        try:
            wait_until(self.answers, timeout_s, POLL_INTERVAL_S, f"the FHIR peer on {self.url} to answer",
                       on_poll=self._raise_if_exited)
        except TimeoutError as exc:
            self.stop()
            raise ProcessFailed(f"{exc}:\n{self.log_tail()}") from exc

    def answers(self) -> bool:
        """Whether this peer (not another on the same port) answers GET /healthcheck now."""
        try:
            response = httpx.get(f"{self.url}/healthcheck", timeout=1.0)
            return response.status_code == 200 and response.json().get("name") == self.name
        except (httpx.HTTPError, ValueError):
            return False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return self._process.log_tail(lines) if self._process else ""

    def stop(self) -> None:
        """SIGTERM the server (by its pid) and wait for it to end; SIGKILL if it does not."""
        if self._process is not None:
            self._process.stop()

    def __enter__(self) -> FhirPeer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _raise_if_exited(self) -> None:
        if self._process is not None and self._process.exited() is not None:
            raise ProcessFailed(f"the FHIR peer exited with {self._process.exited()}:\n{self.log_tail()}")
