"""A loopback audit record repository for tests: it receives RFC 5424 syslog over TCP (octet-counted), TLS (RFC 5425,
optionally asking for a client certificate) or UDP (RFC 5426), and parses every message strictly, so a test sees what
a SIEM would: the header fields and the DICOM audit message XML."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from xml.etree import ElementTree

# RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA SP MSG
HEADER = re.compile(rb"<(\d{1,3})>1 (\S{1,48}) (\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) (-|\[.*?\]) ")
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class SyslogMessage:
    """One received message: its header fields and its payload (the BOM removed) parsed as XML."""

    pri: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    payload: bytes

    @property
    def audit_message(self) -> ElementTree.Element:
        return ElementTree.fromstring(self.payload)


def parse_message(raw: bytes) -> SyslogMessage:
    """A message as RFC 5424 lays it out; AssertionError for anything else."""
    match = HEADER.match(raw)
    assert match is not None, raw[:120]
    body = raw[match.end():]
    assert body.startswith(BOM), "MSG is not BOM-prefixed UTF-8"
    body.decode("utf-8")
    pri, timestamp, hostname, app_name, procid, msgid, _ = match.groups()
    return SyslogMessage(int(pri), timestamp.decode(), hostname.decode(), app_name.decode(), procid.decode(),
                         msgid.decode(), body[len(BOM):])


class SyslogReceiver:
    """Listens on 127.0.0.1 (a free port) with `transport` "tcp", "tls" or "udp"; `messages` grows as they arrive.
    With tls, `cert`/`key` are the server's and `client_ca` (if given) is required of clients. Until start() (or
    `with`), the port is reserved but nothing listens: a repository that is down. What could not be parsed is in
    `errors`."""

    def __init__(self, transport: str = "tcp", cert: Path | None = None, key: Path | None = None,
                 client_ca: Path | None = None) -> None:
        self.transport = transport
        self.messages: list[SyslogMessage] = []
        self.errors: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        if transport == "tls":
            assert cert is not None and key is not None
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(str(cert), str(key))
            if client_ca is not None:
                self._tls.load_verify_locations(str(client_ca))
                self._tls.verify_mode = ssl.CERT_REQUIRED
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self._socket = socket.socket(socket.AF_INET, kind)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"{self.transport}://127.0.0.1:{self.port}"

    def start(self) -> SyslogReceiver:
        if self.transport != "udp":
            self._socket.listen(8)
        self._socket.settimeout(0.2)
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __enter__(self) -> SyslogReceiver:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._socket.close()

    def received(self) -> list[SyslogMessage]:
        with self._lock:
            return list(self.messages)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if self.transport == "udp":
                    datagram, _ = self._socket.recvfrom(70000)
                    self._keep(datagram)
                    continue
                connection, _ = self._socket.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._read_stream, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read_stream(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        try:
            stream = self._tls.wrap_socket(connection, server_side=True) if self._tls else connection
        except (ssl.SSLError, OSError):
            connection.close()
            return
        with self._lock:
            self.connections += 1
        buffer = b""
        with stream:
            while not self._stop.is_set():
                try:
                    chunk = stream.recv(65536)
                except (TimeoutError, OSError):
                    break
                if not chunk:
                    break
                buffer += chunk
                while b" " in buffer:  # octet counting: LEN SP MSG
                    length_text, _, rest = buffer.partition(b" ")
                    if not length_text.isdigit():
                        self._error(f"not octet-counted: {buffer[:40]!r}")
                        return
                    length = int(length_text)
                    if len(rest) < length:
                        break
                    self._keep(rest[:length])
                    buffer = rest[length:]
        if buffer:
            self._error("a frame was cut short")

    def _keep(self, raw: bytes) -> None:
        try:
            message = parse_message(raw)
        except (AssertionError, UnicodeDecodeError) as exc:
            self._error(f"not RFC 5424: {exc}")
            return
        with self._lock:
            self.messages.append(message)

    def _error(self, what: str) -> None:
        with self._lock:
            self.errors.append(what)
