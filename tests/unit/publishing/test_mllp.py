"""MLLP client against a real loopback listener: ACK, NAKs, silence, wrong control id, dropped connection, TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hilum.common.errors import PermanentError, TransientError
from hilum.common.settings import MllpDestination
from hilum.publishing.mllp import AckCode, MllpAck, control_id_of, frame, parse_ack, send_message

MESSAGE = "\r".join((
    "MSH|^~\\&|HILUM|HILUM|RIS|HOSP|20240305093000+0000||ORU^R01^ORU_R01|CTL-1|P|2.5.1",
    "PID|1||MRN-0042^^^HOSP-A^MR||DOE^JANE",
    "OBX|1|TX|18782-3^Radiology Study observation (narrative)^LN|1|DEMO — not for clinical use||||||P",
))

# What the listener answers to a received message: raw bytes to send, or None to stay silent.
Responder = Callable[[bytes], bytes | None]


def ack(code: str, control_id: str = "CTL-1", text: str = "") -> bytes:
    """A framed ACK with MSA code, control id and text."""
    msa = "|".join(("MSA", code, control_id, text)).rstrip("|")
    return frame(f"MSH|^~\\&|RIS|HOSP|HILUM|HILUM|20240305093001||ACK^R01^ACK|A-1|P|2.5.1\r{msa}")


class Listener:
    """A one-thread MLLP server on loopback that records what it receives and answers through `respond`."""

    def __init__(self, respond: Responder | None, tls: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.tls = tls
        self.received: list[bytes] = []
        self.release = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        """Accepts one connection, reads one block, then answers, stays silent or hangs up."""
        try:
            connection, _ = self.server.accept()
        except OSError:
            return
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
            data = b""
            while b"\x1c\x0d" not in data:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.received.append(data)
            if self.respond is None:
                return  # hang up without a reply
            reply = self.respond(data)
            if reply is None:
                self.release.wait(5)
            else:
                connection.sendall(reply)
        except OSError:
            return
        finally:
            connection.close()

    def close(self) -> None:
        """Lets a silent connection go and stops the server."""
        self.release.set()
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    """Starts listeners for a test and closes them after it."""
    started: list[Listener] = []

    def start(respond: Responder | None, tls: ssl.SSLContext | None = None) -> Listener:
        listener = Listener(respond, tls)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.close()


def destination(port: int, timeout_s: float = 2.0, tls_ca_file: Path | None = None) -> MllpDestination:
    """Loopback destination on `port`, TLS when a CA file is given."""
    return MllpDestination(host="127.0.0.1", port=port, timeout_s=timeout_s, tls_ca_file=tls_ca_file)


def test_accepted_message_returns_the_ack_and_was_framed(listen: Callable[..., Listener]) -> None:
    listener = listen(lambda _data: ack("AA"))
    result = send_message(MESSAGE, destination(listener.port))
    assert result == MllpAck(control_id="CTL-1", code=AckCode.APPLICATION_ACCEPT)
    listener.thread.join(5)
    assert listener.received == [b"\x0b" + MESSAGE.encode("utf-8") + b"\x1c\x0d"]


def test_commit_accept_is_accepted(listen: Callable[..., Listener]) -> None:
    listener = listen(lambda _data: ack("CA"))
    assert send_message(MESSAGE, destination(listener.port)).code == AckCode.COMMIT_ACCEPT


@pytest.mark.parametrize("code", ["AE", "AR", "CE", "CR"])
def test_negative_ack_is_transient_with_its_text(listen: Callable[..., Listener], code: str) -> None:
    listener = listen(lambda _data: ack(code, text="Unknown patient"))
    with pytest.raises(TransientError, match=f"MSA {code}: Unknown patient"):
        send_message(MESSAGE, destination(listener.port))


def test_silence_times_out(listen: Callable[..., Listener]) -> None:
    listener = listen(lambda _data: None)
    with pytest.raises(TransientError, match="no ACK .* within 0.3 s"):
        send_message(MESSAGE, destination(listener.port, timeout_s=0.3))


def test_ack_for_another_control_id_is_transient(listen: Callable[..., Listener]) -> None:
    listener = listen(lambda _data: ack("AA", control_id="CTL-0"))
    with pytest.raises(TransientError, match="control id 'CTL-0', not the sent 'CTL-1'"):
        send_message(MESSAGE, destination(listener.port))


def test_dropped_connection_is_transient(listen: Callable[..., Listener]) -> None:
    listener = listen(None)
    with pytest.raises(TransientError, match="closed the connection"):
        send_message(MESSAGE, destination(listener.port))


def test_refused_connection_is_transient() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    with pytest.raises(TransientError, match="refused"):
        send_message(MESSAGE, destination(port))


def test_unframed_reply_is_transient(listen: Callable[..., Listener]) -> None:
    listener = listen(lambda _data: ack("AA")[1:])
    with pytest.raises(TransientError, match="not framed"):
        send_message(MESSAGE, destination(listener.port))


def test_unparsable_replies_are_transient() -> None:
    with pytest.raises(TransientError, match="no MSH"):
        parse_ack(b"hello", "CTL-1")
    with pytest.raises(TransientError, match="no MSA"):
        parse_ack(b"MSH|^~\\&|RIS|HOSP\rPID|1", "CTL-1")
    with pytest.raises(TransientError, match="unknown MSA-1 code 'ZZ'"):
        parse_ack(b"MSH|^~\\&|RIS|HOSP\rMSA|ZZ|CTL-1", "CTL-1")
    with pytest.raises(TransientError, match="UTF-8"):
        parse_ack(b"MSH|^~\\&|\xff\rMSA|AA|CTL-1", "CTL-1")


def test_messages_that_cannot_be_sent_are_permanent() -> None:
    with pytest.raises(PermanentError, match="MSH-10"):
        send_message("PID|1", destination(9))
    with pytest.raises(PermanentError, match="framing"):
        send_message(MESSAGE + "\x1c", destination(9))
    with pytest.raises(PermanentError, match="host"):
        send_message(MESSAGE, MllpDestination())
    assert control_id_of(MESSAGE) == "CTL-1"


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return cert_file, key_file


def _server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS server context presenting the certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def test_tls_exchange(listen: Callable[..., Listener], tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path, "mllp-server")
    listener = listen(lambda _data: ack("AA"), _server_context(cert_file, key_file))
    result = send_message(MESSAGE, destination(listener.port, tls_ca_file=cert_file))
    assert result.code == AckCode.APPLICATION_ACCEPT
    listener.thread.join(5)
    assert listener.received == [frame(MESSAGE)]


def test_tls_with_an_untrusted_server_is_transient(listen: Callable[..., Listener], tmp_path: Path) -> None:
    cert_file, key_file = _self_signed(tmp_path, "mllp-server")
    other_ca, _ = _self_signed(tmp_path, "other")
    listener = listen(lambda _data: ack("AA"), _server_context(cert_file, key_file))
    with pytest.raises(TransientError, match="TLS .* failed"):
        send_message(MESSAGE, destination(listener.port, tls_ca_file=other_ca))


def test_tls_with_a_client_certificate(listen: Callable[..., Listener], tmp_path: Path) -> None:
    server_cert, server_key = _self_signed(tmp_path, "mllp-server")
    client_cert, client_key = _self_signed(tmp_path, "hilum-client")
    context = _server_context(server_cert, server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_cert)
    listener = listen(lambda _data: ack("AA"), context)
    target = MllpDestination(host="127.0.0.1", port=listener.port, timeout_s=2.0, tls_ca_file=server_cert,
                             tls_cert_file=client_cert, tls_key_file=client_key)
    assert send_message(MESSAGE, target).code == AckCode.APPLICATION_ACCEPT
