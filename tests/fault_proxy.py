"""A small threaded HTTP proxy on loopback that injects faults, for testing clients against a real upstream.

Each request takes the next fault from a script (then `PASS` once the script is used up): pass it on, answer
with a status and body, wait before passing it on, close the connection without answering, or reset it.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

import httpx

# Hop-by-hop headers a proxy does not pass on (plus those httpx sets itself).
HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                         "upgrade", "host", "content-length", "content-encoding"})


@dataclass(frozen=True)
class Fault:
    """What the proxy does with one request: "pass", "respond", "delay" (then pass), "drop" or "reset"."""

    kind: str
    status: int = 0
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    before: Callable[[], None] | None = field(default=None, compare=False)  # runs before a passed request


PASS = Fault("pass")
DROP = Fault("drop")
RESET = Fault("reset")


def respond(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Fault:
    """Answer with this status, body and headers instead of passing the request on."""
    return Fault("respond", status=status, body=body, headers=tuple((headers or {}).items()))


def delay(seconds: float) -> Fault:
    """Wait this long, then pass the request on (a client with a shorter timeout gives up first)."""
    return Fault("delay", delay_s=seconds)


def before(action: Callable[[], None]) -> Fault:
    """Run action (e.g. a concurrent write to the upstream), then pass the request on."""
    return Fault("pass", before=action)


class FaultProxy:
    """A proxy on a free loopback port in front of `upstream` (a base URL); `base_url` is the same base through it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        parts = urlsplit(self.upstream)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._path = parts.path
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self.requests_seen = 0
        self._upstream_client = httpx.Client(timeout=30.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fault-proxy",
                                        daemon=True)

    @property
    def base_url(self) -> str:
        """The upstream base URL as seen through the proxy."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self._path}"

    def script(self, *faults: Fault) -> None:
        """Queue faults for the next requests, in order."""
        with self._lock:
            self._faults.extend(faults)

    def pending(self) -> int:
        """How many scripted faults are not used yet."""
        with self._lock:
            return len(self._faults)

    def _next(self) -> Fault:
        with self._lock:
            self.requests_seen += 1
            return self._faults.popleft() if self._faults else PASS

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._upstream_client.close()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fault = proxy._next()
                if fault.kind == "drop":
                    self.close_connection = True  # nothing written: the client sees the connection closed
                    return
                if fault.kind == "reset":
                    # SO_LINGER with a zero timeout turns close() into a TCP RST.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if fault.kind == "respond":
                    self._answer(fault.status, fault.body, fault.headers)
                    return
                if fault.kind == "delay":
                    time.sleep(fault.delay_s)
                if fault.before is not None:
                    fault.before()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                upstream = proxy._upstream_client.request(self.command, proxy._origin + self.path, headers=headers,
                                                          content=body)
                passed = tuple((k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS)
                self._answer(upstream.status_code, upstream.content, passed)

            def _answer(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass  # quiet: requests may carry identifiers

        return Handler
