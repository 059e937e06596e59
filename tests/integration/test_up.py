"""`hilum up` as an operator runs it: in the foreground, its doors in endpoints.json, stopped by SIGTERM.

One stack start, on free loopback ports, over the demo-weights model repository; the pipeline itself is
tested in test_pipeline.py, so this only needs the stack to come up and its doors to answer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis as redis_lib

from hilum.common.grpc_server import is_serving
from hilum.common.polling import wait_until
from hilum.common.settings import HilumSettings, settings_env
from hilum.runtime.endpoints import Endpoints, endpoints_path, live_endpoints, pid_alive, read_endpoints
from hilum.runtime.ports import is_free, loopback_settings
from hilum.runtime.stack import stack_doors
from hilum.v1 import ingestion_pb2
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 90.0
INGESTION_SERVICE = ingestion_pb2.DESCRIPTOR.services_by_name["IngestionService"].full_name


def _hilum_up(settings: HilumSettings, root: Path) -> subprocess.Popen[bytes]:
    """`hilum up` in its own process, configured only through HILUM_* variables; output to files in root."""
    env = {**os.environ, **settings_env(settings)}
    with (root / "up.out").open("wb") as out, (root / "up.err").open("wb") as err:
        return subprocess.Popen([sys.executable, "-m", "hilum.cli", "up"], cwd=root, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err)


def _children(pid: int) -> list[int]:
    """The ids of the processes whose parent is pid (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _redis_answers(url: str) -> bool:
    client = redis_lib.Redis.from_url(url)
    try:
        return bool(client.ping())
    finally:
        client.close()


def _accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return False
    return True


def _assert_every_door_answers(endpoints: Endpoints) -> None:
    """Call each door in the file the way its clients would."""
    assert endpoints.cds is not None and endpoints.ingestion_grpc is not None
    assert endpoints.grpc is not None and endpoints.triton is not None and endpoints.redis is not None
    discovery = httpx.get(f"{endpoints.cds}/cds-services", timeout=10.0)
    assert discovery.status_code == 200
    services = discovery.json()["services"]
    assert services and {"hook", "id", "description"} <= set(services[0])
    assert "hilum-cxr-patient-view" in {service["id"] for service in services}
    assert is_serving(endpoints.ingestion_grpc)
    assert is_serving(endpoints.ingestion_grpc, INGESTION_SERVICE)
    assert sorted(endpoints.grpc) == ["inference", "priors", "publishing", "reporting"]
    assert all(is_serving(address) for address in endpoints.grpc.values())
    assert httpx.get(f"{endpoints.triton.http}/v2/health/ready", timeout=10.0).status_code == 200
    assert "nv_inference_request_success" in httpx.get(endpoints.triton.metrics, timeout=10.0).text
    assert _redis_answers(endpoints.redis)
    assert endpoints.fhir == f"{endpoints.cds}/fhir"
    metadata = httpx.get(f"{endpoints.fhir}/metadata", timeout=10.0).json()
    assert metadata["resourceType"] == "CapabilityStatement" and metadata["fhirVersion"] == "4.0.1"
    search = httpx.get(f"{endpoints.fhir}/DiagnosticReport", timeout=10.0)  # open: the embedded stack, on loopback
    assert search.status_code == 200 and search.json()["type"] == "searchset"
    assert endpoints.metrics is not None
    inference_worker = httpx.get(endpoints.metrics["inference-worker"], timeout=10.0).text
    assert 'hilum_queue_messages{queue="inference"}' in inference_worker  # counted by the worker at scrape time
    # The CDS app's own /metrics, which counted the requests above.
    assert "hilum_http_request_duration_seconds" in httpx.get(endpoints.metrics["cds"], timeout=10.0).text


def test_up_publishes_its_doors_and_stops_everything_on_sigterm(tmp_path: Path, demo_model_repository: Path) -> None:
    settings = loopback_settings(tmp_path, demo_model_repository, REPO_ROOT / ".venv-triton")
    data_dir = settings.storage.data_dir
    ports = [door.port.number for door in stack_doors(settings)]
    up = _hilum_up(settings, tmp_path)
    children: list[int] = []

    def still_starting() -> None:
        if up.poll() is not None:
            raise AssertionError(f"hilum up exited with {up.returncode}:\n{(tmp_path / 'up.err').read_text()}")

    try:
        endpoints = wait_until(lambda: live_endpoints(data_dir), START_TIMEOUT_S, 0.2,
                               f"{endpoints_path(data_dir)}", on_poll=still_starting)
        assert endpoints.pid == up.pid
        assert endpoints_path(data_dir).stat().st_size > 0
        _assert_every_door_answers(endpoints)
        assert endpoints.metrics is not None
        assert sorted(endpoints.metrics) == sorted([*settings.metrics.process_ports, "cds"])  # every Hilum process
        assert (data_dir / "prometheus" / "inference-worker").is_dir()  # the worker's multiprocess folder
        children = _children(up.pid)
        # Redis, Triton, the gRPC servers with the DICOM SCP and the assembler (one process), three workers
        # (ingestion's queue door, priors and publishing share one), CDS
        assert len(children) == 7

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=STOP_TIMEOUT_S) == 0
    finally:
        if up.poll() is None:  # only after a failure above: stop it, and what it started, by id
            up.terminate()
            try:
                up.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                up.kill()
            for pid in children:
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)

    out = (tmp_path / "up.out").read_text()
    assert out.splitlines()[-1] == "Stopped (SIGTERM)."
    assert "Traceback" not in (tmp_path / "up.err").read_text()
    assert read_endpoints(data_dir) is None  # removed on the clean stop
    assert [pid for pid in children if pid_alive(pid)] == []
    assert [port for port in ports if _accepts_connections(port)] == []
    assert [port for port in ports if not is_free("127.0.0.1", port)] == []


def test_up_with_a_port_taken_says_which_in_one_line_and_starts_nothing(tmp_path: Path) -> None:
    settings = loopback_settings(tmp_path, tmp_path / "model_repository", REPO_ROOT / ".venv-triton")
    env = {**os.environ, **settings_env(settings)}
    port = settings.grpc.priors_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run([sys.executable, "-m", "hilum.cli", "up"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == (f"hilum up: port {port} is already in use "
                           "(set HILUM_GRPC__PRIORS_PORT to move the priors gRPC service)\n")
    assert done.stdout == ""
    assert not settings.storage.data_dir.exists()
