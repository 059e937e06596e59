"""Ports: a taken port is named with the setting that moves it, before anything starts; free ports are free."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hilum.runtime.entrypoints import STAGE_NAMES
from hilum.runtime.ports import (
    Port,
    PortInUse,
    PortsClash,
    PortUnavailable,
    ensure_free,
    free_port,
    is_free,
    loopback_settings,
)


@pytest.fixture
def listening() -> Iterator[int]:
    """A free loopback port that a real socket then listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield sock.getsockname()[1]


def _cds(number: int) -> Port:
    return Port("127.0.0.1", number, "HILUM_CDS__PORT", "the CDS Hooks service")


def test_a_port_something_listens_on_is_named_with_its_setting(listening: int) -> None:
    with pytest.raises(PortInUse) as taken:
        ensure_free([Port("127.0.0.1", free_port(), "HILUM_GRPC__PRIORS_PORT", "the priors gRPC service"),
                     _cds(listening)])
    assert str(taken.value) == (
        f"port {listening} is already in use (set HILUM_CDS__PORT to move the CDS Hooks service)"
    )
    assert taken.value.port == _cds(listening)
    assert not is_free("127.0.0.1", listening)


def test_free_ports_pass_and_stay_free() -> None:
    ports = [_cds(free_port()), Port("127.0.0.1", free_port(), "HILUM_TRITON__HTTP_PORT", "Triton's HTTP endpoint")]
    ensure_free(ports)
    assert all(is_free(port.host, port.number) for port in ports)


def test_a_port_whose_server_stopped_is_free_while_its_last_connection_lingers() -> None:
    number = free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", number))
        server.listen()
        with socket.create_connection(("127.0.0.1", number)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server closes first: its side of the connection waits in TIME_WAIT
            client.recv(1)
        assert not is_free("127.0.0.1", number)
    assert is_free("127.0.0.1", number)  # as for a restarted stack, whose servers set SO_REUSEADDR too
    ensure_free([_cds(number)])


def test_two_settings_on_one_port_are_refused_before_looking() -> None:
    number = free_port()
    grpc = Port("127.0.0.1", number, "HILUM_GRPC__INGESTION_PORT", "the ingestion gRPC service")
    with pytest.raises(PortsClash, match=(
        f"^port {number} is set for both the CDS Hooks service \\(HILUM_CDS__PORT\\) and the ingestion gRPC "
        "service \\(HILUM_GRPC__INGESTION_PORT\\); give each its own$"
    )):
        ensure_free([_cds(number), grpc])


def test_an_address_not_on_this_host_is_unavailable_with_its_setting() -> None:
    with pytest.raises(PortUnavailable, match=r"^cannot listen on 192\.0\.2\.1:\d+ \(.*; set HILUM_CDS__PORT to move"):
        ensure_free([Port("192.0.2.1", free_port(), "HILUM_CDS__PORT", "the CDS Hooks service")])


def test_loopback_settings_put_every_part_on_its_own_free_port(tmp_path: Path) -> None:
    settings = loopback_settings(tmp_path, tmp_path / "models", tmp_path / "venv")
    ports = [settings.cds.port, settings.triton.http_port, settings.triton.metrics_port,
             int(settings.triton.grpc_url.rsplit(":", 1)[1]), int(settings.redis.url.rsplit(":", 1)[1].split("/")[0]),
             *(settings.grpc.port_for(name) for name in STAGE_NAMES),
             settings.dicom.port, *settings.metrics.process_ports.values()]
    assert len(set(ports)) == 11 + 4  # 11 doors, 4 metrics ports (one per Hilum process but the CDS app)
    assert all(is_free("127.0.0.1", number) for number in ports)
    assert settings.storage.data_dir == tmp_path / "data" and settings.storage.output_dir == tmp_path / "out"


def test_free_port_never_hands_out_the_same_port_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
