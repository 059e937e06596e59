"""MLLP client: sends one HL7 v2 message to an interface engine (optionally over TLS) and reads its ACK.

Anything short of an accepting ACK for this very message raises TransientError, so the caller retries with
backoff and dead-letters after its last attempt. Message content is never logged (it holds PHI).
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from dataclasses import dataclass
from enum import StrEnum

from hilum.common.errors import PermanentError, TransientError
from hilum.common.settings import MllpDestination

log = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
# An ACK is a few hundred bytes; a peer sending more than this is not answering with an ACK.
MAX_REPLY_BYTES = 1 << 20


class AckCode(StrEnum):
    """MSA-1 acknowledgment code (HL7 table 0008): original (A*) and enhanced-mode commit (C*) codes."""

    APPLICATION_ACCEPT = "AA"
    APPLICATION_ERROR = "AE"
    APPLICATION_REJECT = "AR"
    COMMIT_ACCEPT = "CA"
    COMMIT_ERROR = "CE"
    COMMIT_REJECT = "CR"


_ACCEPTED = frozenset({AckCode.APPLICATION_ACCEPT, AckCode.COMMIT_ACCEPT})


@dataclass(frozen=True)
class MllpAck:
    """An accepting ACK: the control id it acknowledges (MSA-2, equal to the sent MSH-10) and its code."""

    control_id: str
    code: AckCode


def frame(message: str) -> bytes:
    """The message as one MLLP block: 0x0B, the UTF-8 bytes, 0x1C 0x0D."""
    return START_BLOCK + message.encode("utf-8") + END_BLOCK


def control_id_of(message: str) -> str:
    """MSH-10 of an ER7 message; "" when the message has no MSH or no control id."""
    first = message.split("\r", 1)[0]
    if not first.startswith("MSH") or len(first) < 4:
        return ""
    fields = first.split(first[3])
    return fields[9].strip() if len(fields) > 9 else ""


def _tls_context(destination: MllpDestination) -> ssl.SSLContext:
    """A client context trusting the destination's CA, presenting a client certificate when one is set."""
    context = ssl.create_default_context(cafile=str(destination.tls_ca_file))
    if destination.tls_cert_file is not None:
        key = str(destination.tls_key_file) if destination.tls_key_file is not None else None
        context.load_cert_chain(str(destination.tls_cert_file), key)
    return context


def _read_block(connection: socket.socket, deadline: float) -> bytes:
    """The payload of one MLLP block read from the connection before the deadline (time.monotonic())."""
    received = b""
    while END_BLOCK not in received:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        connection.settimeout(remaining)
        chunk = connection.recv(4096)
        if not chunk:
            reason = "no reply" if not received else "an incomplete MLLP block"
            raise TransientError(f"MLLP peer closed the connection after {reason}")
        received += chunk
        if not received.startswith(START_BLOCK):
            raise TransientError("MLLP reply is not framed (does not start with 0x0B)")
        if len(received) > MAX_REPLY_BYTES:
            raise TransientError(f"MLLP reply exceeds {MAX_REPLY_BYTES} bytes without an end block")
    return received[len(START_BLOCK):received.index(END_BLOCK)]


def _exchange(payload: bytes, destination: MllpDestination) -> bytes:
    """Sends one framed message and returns the reply block's payload; socket errors propagate."""
    deadline = time.monotonic() + destination.timeout_s
    address = (destination.host, destination.port)
    with socket.create_connection(address, timeout=destination.timeout_s) as raw:
        if destination.tls_ca_file is None:
            raw.sendall(payload)
            return _read_block(raw, deadline)
        raw.settimeout(max(deadline - time.monotonic(), 0.001))  # the handshake counts against the deadline
        with _tls_context(destination).wrap_socket(raw, server_hostname=destination.host) as secure:
            secure.sendall(payload)
            return _read_block(secure, deadline)


def parse_ack(reply: bytes, control_id: str) -> MllpAck:
    """The accepting ACK in a reply block's payload for the message with `control_id`; TransientError otherwise."""
    try:
        text = reply.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TransientError("ACK is not valid UTF-8") from error
    segments = [s for s in text.replace("\n", "\r").split("\r") if s.strip()]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 4:
        raise TransientError("ACK is not an HL7 v2 message (no MSH segment)")
    separator = segments[0][3]
    msa = next((s.split(separator) for s in segments if s.startswith("MSA" + separator)), None)
    if msa is None:
        raise TransientError("ACK has no MSA segment")
    code_text = msa[1].strip() if len(msa) > 1 else ""
    acknowledged = msa[2].strip() if len(msa) > 2 else ""
    detail = msa[3].strip() if len(msa) > 3 else ""
    try:
        code = AckCode(code_text)
    except ValueError as error:
        raise TransientError(f"ACK has an unknown MSA-1 code {code_text!r}") from error
    if acknowledged != control_id:
        raise TransientError(f"ACK acknowledges control id {acknowledged!r}, not the sent {control_id!r}")
    if code not in _ACCEPTED:
        raise TransientError(f"message not accepted: MSA {code.value}: {detail or 'no text'}")
    return MllpAck(control_id=acknowledged, code=code)


def send_message(message: str, destination: MllpDestination) -> MllpAck:
    """Sends an ER7 message over MLLP (TLS when `tls_ca_file` is set) and returns the peer's accepting ACK.

    Raises TransientError on a timeout (`timeout_s` for the whole exchange), a refused or dropped
    connection, a TLS failure, an unframed or unparsable reply, a NAK (AE/AR/CE/CR) or an ACK for another
    control id; PermanentError when there is no destination or the message cannot be sent at all.
    """
    if not destination.host:
        raise PermanentError("no MLLP destination host is configured")
    control_id = control_id_of(message)
    if not control_id:
        raise PermanentError("message has no MSH-10 control id")
    if "\x0b" in message or "\x1c" in message:
        raise PermanentError("message contains an MLLP framing character")
    where = f"{destination.host}:{destination.port}"
    try:
        reply = _exchange(frame(message), destination)
    except TimeoutError as error:
        raise TransientError(f"no ACK from {where} within {destination.timeout_s:g} s") from error
    except ConnectionRefusedError as error:
        raise TransientError(f"MLLP connection to {where} refused") from error
    except ssl.SSLError as error:
        raise TransientError(f"TLS with {where} failed: {error.reason or error}") from error
    except OSError as error:
        raise TransientError(f"MLLP connection to {where} failed: {error.strerror or error}") from error
    ack = parse_ack(reply, control_id)
    log.info("HL7 message accepted by %s with %s", where, ack.code.value, extra={"code": ack.code.value})
    return ack
