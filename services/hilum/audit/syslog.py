"""RFC 5424 syslog messages and the transports IHE ATNA names: TLS (RFC 5425) and plain TCP, both octet-counted, and
UDP (RFC 5426, one datagram per message)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

# IHE ATNA: facility 10 (security/authorization), severity 5 (notice), and the MSGID of a DICOM audit message.
FACILITY_AUTHPRIV = 10
SEVERITY_NOTICE = 5
ATNA_MSGID = "IHE+RFC-3881"
BOM = b"\xef\xbb\xbf"  # RFC 5424's MSG-UTF8 starts with it
DEFAULT_PORTS = {"tls": 6514, "tcp": 601, "udp": 514}
UDP_MAX_BYTES = 65507  # the largest UDP payload over IPv4


class SyslogError(OSError):
    """The audit repository could not be reached or refused the connection."""


def _header_field(value: str, limit: int) -> str:
    """A header field as RFC 5424 allows it: printable US-ASCII without spaces, at most `limit` characters; "-" (the
    NILVALUE) when nothing is left."""
    kept = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return kept or "-"


def syslog_message(payload: bytes, *, timestamp: str, hostname: str, app_name: str, procid: str,
                   msgid: str = ATNA_MSGID, facility: int = FACILITY_AUTHPRIV,
                   severity: int = SEVERITY_NOTICE) -> bytes:
    """One RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID -` then BOM and the UTF-8 payload.
    `timestamp` is an RFC 3339 instant (a FHIR instant is one)."""
    header = " ".join((f"<{facility * 8 + severity}>1", _header_field(timestamp, 48), _header_field(hostname, 255),
                       _header_field(app_name, 48), _header_field(procid, 128), _header_field(msgid, 32), "-"))
    return header.encode("ascii") + b" " + BOM + payload


def octet_counted(message: bytes) -> bytes:
    """A message framed for a stream transport (RFC 6587 / RFC 5425): its length in bytes, a space, the message."""
    return str(len(message)).encode("ascii") + b" " + message


# How long a TLS round listens for the repository's refusal after sending (it never sends anything else).
TLS_REFUSAL_WAIT_S = 0.2


def _refusal_check(stream: socket.socket) -> None:
    """Raise if the repository refuses the connection after the handshake: in TLS 1.3 the client's handshake is done
    before the server has checked the client certificate, so a refusal (an alert) arrives after the data was sent.
    Silence for TLS_REFUSAL_WAIT_S, or the repository closing the connection, means it took the round."""
    stream.settimeout(TLS_REFUSAL_WAIT_S)
    try:
        stream.recv(1)
    except TimeoutError:
        return


class SyslogSender:
    """Sends messages to the audit repository at `url` (tls://, tcp:// or udp://host[:port]): each round over a
    connection of its own, so that a connection the repository closed while idle never swallows a round."""

    def __init__(self, url: str, timeout_s: float = 10.0, ca_file: Path | None = None, cert_file: Path | None = None,
                 key_file: Path | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("the syslog URL must be tls://, tcp:// or udp:// with a host, e.g. tls://siem:6514")
        if (cert_file is None) != (key_file is None):
            raise ValueError("the syslog client certificate and key must be set together")
        self.transport = parts.scheme
        self.address = (parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])
        self._timeout_s = timeout_s
        self._tls: ssl.SSLContext | None = None
        if self.transport == "tls":
            self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if cert_file is not None and key_file is not None:
                self._tls.load_cert_chain(str(cert_file), str(key_file))

    def send(self, messages: Sequence[bytes]) -> int:
        """Send every message, in order; returns how many were sent. Over UDP, a message too large for a datagram is
        left out (not counted). Raises SyslogError when the repository cannot be reached (none may have arrived)."""
        try:
            if self.transport == "udp":
                return self._send_datagrams(messages)
            with self._connect() as stream:
                stream.sendall(b"".join(octet_counted(message) for message in messages))
                if self._tls is not None:
                    _refusal_check(stream)
            return len(messages)
        except OSError as exc:
            raise SyslogError(f"the audit repository at {self.transport}://{self.address[0]}:{self.address[1]} "
                              f"failed: {type(exc).__name__}") from exc

    def _send_datagrams(self, messages: Sequence[bytes]) -> int:
        sent = 0
        with socket.socket(socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self._timeout_s)
            for message in messages:
                if len(message) > UDP_MAX_BYTES:
                    continue
                sock.sendto(message, self.address)
                sent += 1
        return sent

    def _connect(self) -> socket.socket:
        stream = socket.create_connection(self.address, timeout=self._timeout_s)
        if self._tls is None:
            return stream
        try:
            return self._tls.wrap_socket(stream, server_hostname=self.address[0])
        except OSError:
            stream.close()
            raise
