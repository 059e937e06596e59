"""Runs the embedded Triton server: the tritonserver binary shipped in the nvidia-pytriton wheel.

The wheel lives in its own virtual environment (TritonSection.server_venv) because it pins numpy<2,
which the python-backend stub also needs: the stub's embedded Python is that environment's, so
onnxruntime is installed there too. The server binds to loopback and serves HTTP, gRPC and metrics.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType

import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from hilum.common.polling import wait_until
from hilum.common.settings import TritonSection
from hilum.runtime.processes import ManagedProcess, ProcessFailed

BIND_ADDRESS = "127.0.0.1"
LOG_TAIL_LINES = 40
POLL_INTERVAL_S = 0.25
STUB_NAME = "triton_python_backend_stub"
SETUP_HINT = "run the setup script, which creates it with nvidia-pytriton and onnxruntime"


class TritonNotInstalled(ProcessFailed):
    """The server virtual environment, or the tritonserver binary inside it, is missing."""


class TritonStartError(ProcessFailed):
    """tritonserver exited, or did not get the model ready, during start-up; carries the log tail."""


class TritonServer:
    """One tritonserver process over a model repository; start, wait_ready, stop, or use `with`.

    work_dir holds the prepared python backend; log_file receives the server's stdout and stderr. exit_on_error=False
    keeps the server up when a model fails to load, as a Triton run by others may be: that model is then unavailable,
    with Triton's reason in its repository index.
    """

    def __init__(
        self, settings: TritonSection, work_dir: Path, log_file: Path, startup_timeout_s: float = 120.0,
        exit_on_error: bool = True,
    ) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.log_file = log_file
        self.startup_timeout_s = startup_timeout_s
        self.exit_on_error = exit_on_error
        self._process: ManagedProcess | None = None

    @property
    def grpc_port(self) -> int:
        """The port of settings.grpc_url ("host:port")."""
        return grpc_port(self.settings)

    def start(self) -> None:
        """Launches tritonserver in its own process group; returns without waiting for readiness."""
        if self.running:
            raise RuntimeError("tritonserver is already running")
        pytriton_dir, python_version = self._locate_pytriton()
        backends_dir = self._prepare_backends(pytriton_dir, python_version)
        command = [
            str(pytriton_dir / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.settings.model_repository.resolve()}",
            f"--backend-directory={backends_dir}",
            "--model-control-mode=none",
            "--strict-readiness=true",
            f"--exit-on-error={str(self.exit_on_error).lower()}",
            f"--http-address={BIND_ADDRESS}",
            f"--http-port={self.settings.http_port}",
            f"--grpc-address={BIND_ADDRESS}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={BIND_ADDRESS}",
            f"--metrics-port={self.settings.metrics_port}",
            "--allow-gpu-metrics=false",
        ]
        # Its own process group (with its stubs), so stop() can end them all.
        self._process = ManagedProcess("tritonserver", command, self.log_file, self._environment(pytriton_dir))
        self._process.start()

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Blocks until the server and the findings model report ready over gRPC.

        Raises TritonStartError with the log tail when the process exits or timeout_s passes.
        """
        process = self._process
        if process is None:
            raise RuntimeError("tritonserver was not started")

        def raise_if_exited() -> None:
            code = process.exited()
            if code is not None:
                raise TritonStartError(f"tritonserver exited with code {code} during start-up\n{self.log_tail()}")

        model = self.settings.findings_model
        client = triton_grpc.InferenceServerClient(self.settings.grpc_url)
        try:
            wait_until(lambda: _model_ready(client, model), self.startup_timeout_s if timeout_s is None else timeout_s,
                       POLL_INTERVAL_S, f"tritonserver to get {model} ready", on_poll=raise_if_exited)
        except TimeoutError as exc:
            raise TritonStartError(f"{exc}\n{self.log_tail()}") from exc
        finally:
            client.close()

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM to the server (it stops its stubs), then SIGKILL to its process group after grace_s."""
        process, self._process = self._process, None
        if process is not None:
            process.stop(grace_s)

    @property
    def running(self) -> bool:
        """True while the tritonserver process is alive."""
        return self._process is not None and self._process.running

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the server log, for error messages; its ASCII status tables are left out."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_file})"
        messages = [line for line in text.splitlines() if line.strip() and not line.startswith(("+", "|"))]
        return "\n".join(messages[-lines:])

    def __enter__(self) -> TritonServer:
        """Starts the server and waits until it is ready; stops it again if start-up fails."""
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stops the server."""
        self.stop()

    def _locate_pytriton(self) -> tuple[Path, str]:
        """The pytriton package folder inside the server venv and that venv's Python version ("3.11")."""
        venv = self.settings.server_venv.resolve()
        if not (venv / "pyvenv.cfg").is_file():
            raise TritonNotInstalled(f"no Triton server environment at {venv}: {SETUP_HINT}")
        candidates = sorted(venv.glob("lib/python3.*/site-packages/pytriton/tritonserver/bin/tritonserver"))
        if not candidates:
            raise TritonNotInstalled(f"{venv} has no nvidia-pytriton tritonserver binary: {SETUP_HINT}")
        pytriton_dir = candidates[0].parents[2]
        python_version = pytriton_dir.parents[1].name.removeprefix("python")
        return pytriton_dir, python_version

    def _prepare_backends(self, pytriton_dir: Path, python_version: str) -> Path:
        """A private backend directory: the wheel's python backend plus the stub for the venv's Python."""
        server_dir = pytriton_dir / "tritonserver"
        stub = server_dir / "python_backend_stubs" / python_version / STUB_NAME
        if not stub.is_file():
            raise TritonNotInstalled(
                f"nvidia-pytriton has no python-backend stub for Python {python_version}"
            )
        python_backend = self.work_dir / "backends" / "python"
        python_backend.mkdir(parents=True, exist_ok=True)
        for source in (*sorted((server_dir / "backends" / "python").glob("*.*")), stub):
            shutil.copy2(source, python_backend / source.name)
        return python_backend.parent

    def _environment(self, pytriton_dir: Path) -> dict[str, str]:
        """Process environment: the wheel's bundled libraries, and the server venv first on PATH so the
        stub's embedded Python is that venv (numpy<2, onnxruntime).
        """
        venv = self.settings.server_venv.resolve()
        library_dirs = [str(pytriton_dir.parent / "nvidia_pytriton.libs")]
        base_lib = _base_python_lib(venv)
        if base_lib is not None:
            library_dirs.append(str(base_lib))  # libpython3.X.so of the venv's own interpreter
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [*library_dirs, env.get("LD_LIBRARY_PATH")]))
        env["PATH"] = os.pathsep.join(filter(None, [str(venv / "bin"), env.get("PATH")]))
        env.pop("PYTHONHOME", None)
        env.pop("PYTHONPATH", None)
        return env


def grpc_port(settings: TritonSection) -> int:
    """The port of settings.grpc_url ("host:port")."""
    return int(settings.grpc_url.rsplit(":", 1)[1])


def is_ready(settings: TritonSection) -> bool:
    """Whether the server at settings.grpc_url answers and has the findings model ready, now."""
    client = triton_grpc.InferenceServerClient(settings.grpc_url)
    try:
        return _model_ready(client, settings.findings_model)
    finally:
        client.close()


def _model_ready(client: triton_grpc.InferenceServerClient, model: str) -> bool:
    """Whether the server is ready and has loaded model; False while it cannot answer."""
    try:
        return bool(client.is_server_ready(client_timeout=1.0) and client.is_model_ready(model, client_timeout=1.0))
    except InferenceServerException:
        return False


def _base_python_lib(venv: Path) -> Path | None:
    """The lib folder of the interpreter a venv was made from (pyvenv.cfg "home" is its bin), if any."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            lib = Path(value.strip()).parent / "lib"
            return lib if lib.is_dir() else None
    return None
