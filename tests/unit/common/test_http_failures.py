"""HTTP request failures as Hilum's errors, on real sockets: a refused connection, a dropped one, a slow server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from hilum.common.errors import TransientError
from hilum.common.http_failures import is_transient_status, transport_failure
from hilum.runtime.ports import free_port


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback socket that accepts connections and never answers (until closed)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


def _failure(url: str, timeout_s: float) -> TransientError:
    try:
        httpx.get(url, timeout=timeout_s)
    except httpx.TransportError as exc:
        return transport_failure(exc, "the test server's search", timeout_s)
    raise AssertionError("the request did not fail")


def test_no_answer_in_time_says_how_long_was_waited(listener: socket.socket) -> None:
    failure = _failure(f"http://127.0.0.1:{listener.getsockname()[1]}/x", 0.2)
    assert str(failure) == "the test server's search did not answer within 0.2 s"


def test_a_refused_connection_gives_the_os_reason_and_no_url() -> None:
    port = free_port()
    failure = _failure(f"http://127.0.0.1:{port}/Patient?identifier=urn:oid:1|MRN-1", 2.0)
    assert str(failure).startswith("the test server's search could not be reached: ")
    assert "MRN-1" not in str(failure) and str(port) not in str(failure)


def test_a_dropped_connection_is_said_so(listener: socket.socket) -> None:
    def drop() -> None:
        connection, _ = listener.accept()
        connection.recv(1024)
        connection.close()

    threading.Thread(target=drop, daemon=True).start()
    failure = _failure(f"http://127.0.0.1:{listener.getsockname()[1]}/x", 5.0)
    assert str(failure) == "the test server's search dropped the connection without answering"


@pytest.mark.parametrize(("status", "transient"), [
    (408, True), (429, True), (500, True), (503, True), (599, True), (400, False), (401, False), (404, False),
    (412, False), (422, False)])
def test_statuses_worth_a_retry(status: int, transient: bool) -> None:
    assert is_transient_status(status) is transient
