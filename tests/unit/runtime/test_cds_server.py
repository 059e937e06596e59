"""`hilum serve cds`: the app built from the process's settings, and served by several worker processes."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from hilum.cds.services import Hook, service_id
from hilum.common.cds_view import write_view
from hilum.common.db.session import upgrade_database
from hilum.common.polling import wait_until
from hilum.common.settings import HilumSettings, settings_env
from hilum.runtime.cds_server import build_app, listening_socket
from hilum.runtime.local_issuer import LocalIssuer
from hilum.runtime.ports import free_port
from hilum.runtime.processes import ManagedProcess
from tests.unit.conftest import make_view

MRN_SYSTEM = "urn:oid:1.2.36.146.595.217.0.1"
PATIENT_VIEW = f"/cds-services/{service_id(Hook.PATIENT_VIEW)}"


def patient_view_body(mrn: str) -> dict[str, object]:
    return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/1", "patientId": "ehr-1"},
            "prefetch": {"patient": {"resourceType": "Patient", "id": "ehr-1",
                                     "identifier": [{"system": MRN_SYSTEM, "value": mrn}]}}}


def cds_env(settings: HilumSettings, redis_url: str, issuer: LocalIssuer, workers: int) -> dict[str, str]:
    """The environment `hilum serve cds` reads: this Redis, this issuer trusted, this MRN system."""
    settings.redis.url = redis_url
    settings.cds.trusted_issuers = [issuer.trusted_issuer]
    settings.cds.workers = workers
    settings.fhir.patient_identifier_system = MRN_SYSTEM
    return settings_env(settings)


def test_the_app_is_built_from_the_environment(settings: HilumSettings, redis_client: redis.Redis,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url = "redis://{host}:{port}/0".format(**redis_client.connection_pool.connection_kwargs)
    with LocalIssuer() as issuer:
        for name, value in cds_env(settings, url, issuer, workers=1).items():
            monkeypatch.setenv(name, value)
        app = build_app()
        verifier = app.state.jwt_verifier
        assert [i.iss for i in verifier.issuers.values()] == [issuer.iss]
        assert verifier.public_url == settings.cds.base_url
        assert app.state.cds.mrn_system == MRN_SYSTEM
        assert app.state.cds.redis.connection_pool.connection_kwargs["socket_timeout"] == 2.0
        assert "/dicomweb/studies" in app.openapi()["paths"]  # the STOW-RS door rides along


def test_several_workers_serve_signed_calls(settings: HilumSettings, redis_client: redis.Redis,
                                            tmp_path: Path) -> None:
    url = "redis://{host}:{port}/0".format(**redis_client.connection_pool.connection_kwargs)
    write_view(redis_client, make_view(patient_id="MRN-7", patient_system=MRN_SYSTEM))
    upgrade_database(settings.database_url)  # each call is recorded in the audit trail there
    base = settings.cds.base_url
    with LocalIssuer() as issuer:
        env = {**os.environ, **cds_env(settings, url, issuer, workers=2)}
        process = ManagedProcess("cds", [sys.executable, "-m", "hilum.cli", "serve", "cds"], tmp_path / "cds.log",
                                 env=env)
        process.start()
        try:
            wait_until(lambda: _answers(base), timeout_s=60, interval_s=0.2, what="the CDS service")
            for _ in range(6):  # more calls than workers: whichever worker answers, each call is verified
                response = httpx.post(f"{base}{PATIENT_VIEW}", json=patient_view_body("MRN-7"), timeout=10,
                                      headers={"Authorization": f"Bearer {issuer.token(base + PATIENT_VIEW)}"})
                assert response.status_code == 200, response.text
                assert len(response.json()["cards"]) == 1
            assert httpx.post(f"{base}{PATIENT_VIEW}", json=patient_view_body("MRN-7"), timeout=10).status_code == 401
        finally:
            process.stop()
        assert process.log_tail(200).count("Started server process") == 2


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/cds-services", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_connections_on_the_shared_socket_have_nagle_off() -> None:
    """asyncio sets TCP_NODELAY on accepted connections only when the listening socket says IPPROTO_TCP; without
    it each small response would wait for the client's delayed ACK."""
    sock = listening_socket("127.0.0.1", free_port())
    nodelay: list[int] = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            nodelay.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(Recorder, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        await wait_for_async(lambda: bool(nodelay))
        writer.close()
        server.close()

    asyncio.run(accept_one())
    assert nodelay == [1]


async def wait_for_async(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "no connection was accepted"
        await asyncio.sleep(0.01)
