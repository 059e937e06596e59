"""An HL7 v2 interface engine for tests: an MLLP server on loopback that acknowledges every message it
receives with AA (or, while `naks` lasts, the scripted negative code), keeping what it received.
"""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType

START, END = b"\x0b", b"\x1c\x0d"


def control_id(message: bytes) -> str:
    """MSH-10 of an ER7 message."""
    return message.split(b"\r", 1)[0].split(b"|")[9].decode()


class MllpPeer:
    """A threaded MLLP server; `naks` is a list of MSA codes (e.g. ["AE", "AR"]) answered first, in order."""

    def __init__(self, naks: list[str] | None = None) -> None:
        self.received: list[bytes] = []
        self.naks = list(naks or [])
        peer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                data = b""
                while True:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                    while END in data:
                        block, data = data.split(END, 1)
                        self.request.sendall(peer.answer(block.removeprefix(START)))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, message: bytes) -> bytes:
        """Record the message and frame its ACK."""
        self.received.append(message)
        code = self.naks.pop(0) if self.naks else "AA"
        ack = f"MSH|^~\\&|ENGINE|HOSP|HILUM|HILUM|20250101000000||ACK^R01^ACK|ACK{len(self.received)}|P|2.5.1\r"
        ack += f"MSA|{code}|{control_id(message)}"
        return START + ack.encode() + END

    def __enter__(self) -> MllpPeer:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()
