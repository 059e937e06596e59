"""How a request to another system's HTTP API failed, in Hilum's two kinds: worth retrying, or not.

Shared by the clients of hospital systems (the FHIR server publishing delivers to, the one priors searches), so
that the same failure reads the same wherever it happens, and no message carries a URL, a query or a payload.
"""

from __future__ import annotations

import httpx

from hilum.common.errors import TransientError

MAX_CAUSE_CHARS = 300


def transport_failure(exc: httpx.TransportError, what: str, timeout_s: float) -> TransientError:
    """The request got no answer (timed out, not reached, connection dropped or failed): transient, named by `what`
    ("the FHIR server's Patient search") and the OS-level cause."""
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"{what} did not answer within {timeout_s:g} s")
    if isinstance(exc, httpx.ConnectError):
        return TransientError(f"{what} could not be reached: {os_cause(exc)}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransientError(f"{what} dropped the connection without answering")
    return TransientError(f"{what} connection failed: {os_cause(exc)}")


def is_transient_status(status: int) -> bool:
    """An HTTP status worth retrying later: 408, 429 and every 5xx."""
    return status in (408, 429) or status >= 500


def os_cause(exc: httpx.TransportError) -> str:
    """The OS-level reason of a transport error (e.g. "Connection refused"), without URLs or payloads."""
    cause: BaseException | None = exc
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(getattr(cause, "strerror", None) or cause or type(exc).__name__)
    return text[:MAX_CAUSE_CHARS]
