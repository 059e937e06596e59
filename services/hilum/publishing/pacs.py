"""Sending a DICOM SR to the PACS: by STOW-RS where a URL is configured, else by C-STORE.

Every failure is classified for the delivery's retry policy: what may pass (no connection, a timeout, a 5xx,
a transient association rejection, DIMSE "out of resources" 0xA7xx) is a TransientError; what the PACS will
refuse again (a 4xx, a refused SOP class, a permanent rejection, any other failure status) is a PermanentError.
Reasons name the peer and the status, never the dataset's patient or study.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from io import BytesIO
from typing import Any

import httpx
from pydicom import Dataset, dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association

from hilum.common.errors import PermanentError, TransientError
from hilum.common.logs import study_ref
from hilum.common.settings import PacsDestination

log = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
# PS3.18 attribute tags in DICOM JSON: Failed SOP Sequence, Failure Reason, Referenced SOP Sequence.
_FAILED_SOP_SEQUENCE = "00081198"
_FAILURE_REASON = "00081197"
_REFERENCED_SOP_SEQUENCE = "00081199"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
# HTTP statuses that are the server's momentary state, not the request's fault.
_TRANSIENT_HTTP = frozenset({408, 425, 429})
_STUDIES_PATH = re.compile(r"/studies(/[0-9.]+)?/?$")


def _is_out_of_resources(status: int) -> bool:
    """DIMSE / PS3.18 failure 0xA7xx: the peer is out of resources, so the same request may succeed later."""
    return status & 0xFF00 == 0xA700


def _is_success_or_warning(status: int) -> bool:
    """DIMSE C-STORE status 0x0000 (success) or a warning 0xB000, 0xB006, 0xB007 (stored with a coercion)."""
    return status == 0x0000 or status & 0xF000 == 0xB000


def part10_bytes(dataset: Dataset) -> bytes:
    """The dataset as a DICOM Part 10 file (its file meta information, explicit VR little endian by default)."""
    buffer = BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def stow_endpoint(stow_url: str) -> str:
    """The STOW-RS URL to POST to: stow_url itself when it ends in /studies[/{uid}], else stow_url + "/studies"."""
    return stow_url if _STUDIES_PATH.search(stow_url) else stow_url.rstrip("/") + "/studies"


def send_structured_report(dataset: Dataset, destination: PacsDestination) -> str:
    """Store the SR in the PACS: STOW-RS when destination.stow_url is set, else C-STORE; return its SOP Instance UID.

    Raises TransientError when a retry may succeed and PermanentError when it cannot; PermanentError also
    when the destination names neither a STOW-RS URL nor an AE title.
    """
    if destination.stow_url:
        door, code = "stow-rs", _stow(dataset, destination)
    elif destination.ae_title and destination.host:
        door, code = "c-store", _c_store(dataset, destination)
    else:
        raise PermanentError("the PACS destination names neither a STOW-RS URL nor an AE title and host")
    log.info("SR stored in the PACS", extra={"door": door, "code": code,
                                              "study_ref": study_ref(str(dataset.StudyInstanceUID))})
    return str(dataset.SOPInstanceUID)


def _stow(dataset: Dataset, destination: PacsDestination) -> str:
    """STOW-RS of one instance (multipart/related; type="application/dicom"); returns the HTTP status, e.g. "200".

    The PS3.18 response is checked: an error status or a Failed SOP Sequence naming the instance raises.
    """
    url = stow_endpoint(destination.stow_url)
    boundary = f"hilum-{secrets.token_hex(12)}"
    body = b"".join((
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii"),
        part10_bytes(dataset),
        f"\r\n--{boundary}--\r\n".encode("ascii"),
    ))
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": DICOM_JSON,
    }
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=destination.timeout_s)
    except httpx.TimeoutException as exc:
        raise TransientError(f"STOW-RS to {url} timed out after {destination.timeout_s:g} s") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"STOW-RS to {url} failed to connect: {type(exc).__name__}") from exc
    _check_stow_response(response, url, str(dataset.SOPInstanceUID))
    return str(response.status_code)


def _check_stow_response(response: httpx.Response, url: str, sop_instance_uid: str) -> None:
    """Raise for an HTTP error status or a Failed SOP Sequence naming the instance (PS3.18 10.5.3)."""
    status = response.status_code
    failure = _stow_failure_reason(response, sop_instance_uid)
    if status >= 500 or status in _TRANSIENT_HTTP:
        raise TransientError(f"STOW-RS to {url} answered HTTP {status}")
    if failure is not None and _is_out_of_resources(failure):
        raise TransientError(f"STOW-RS to {url} answered HTTP {status}: out of resources (0x{failure:04X})")
    if status >= 400:
        reason = f", failure reason 0x{failure:04X}" if failure is not None else ""
        raise PermanentError(f"STOW-RS to {url} refused the SR: HTTP {status}{reason}")
    if failure is not None:
        raise PermanentError(f"STOW-RS to {url} failed to store the SR: failure reason 0x{failure:04X}")
    if status not in (200, 202):
        raise PermanentError(f"STOW-RS to {url} answered an unexpected HTTP {status}")


def _stow_failure_reason(response: httpx.Response, sop_instance_uid: str) -> int | None:
    """The Failure Reason the response gives the instance (0x0110 where it gives none); None when not failed."""
    try:
        body: Any = response.json()
    except ValueError:
        return None  # no DICOM JSON body: the HTTP status alone decides
    if isinstance(body, list):
        body = body[0] if body else {}
    if not isinstance(body, dict):
        return None
    for item in body.get(_FAILED_SOP_SEQUENCE, {}).get("Value", []):
        uids = item.get(_REFERENCED_SOP_INSTANCE_UID, {}).get("Value", [])
        if uids and sop_instance_uid not in uids:
            continue
        reasons = item.get(_FAILURE_REASON, {}).get("Value", [])
        return int(reasons[0]) if reasons else 0x0110
    return None


def _c_store(dataset: Dataset, destination: PacsDestination) -> str:
    """C-STORE of one instance over one association as destination.calling_ae_title; returns the DIMSE status."""
    ae = AE(ae_title=destination.calling_ae_title)
    for attribute in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
        setattr(ae, attribute, destination.timeout_s)
    ae.add_requested_context(dataset.SOPClassUID, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    peer = f"{destination.ae_title}@{destination.host}:{destination.port}"
    assoc = _associate(ae, destination)
    if not assoc.is_established:
        raise _association_failure(assoc, peer)
    try:
        status_ds = assoc.send_c_store(dataset)
    except (ValueError, RuntimeError) as exc:
        raise PermanentError(f"C-STORE to {peer} could not be sent: {exc}") from exc
    finally:
        if assoc.is_established:
            assoc.release()
    if "Status" not in status_ds:
        raise TransientError(f"C-STORE to {peer} got no response (timeout or aborted association)")
    status = int(status_ds.Status)
    if _is_out_of_resources(status):
        raise TransientError(f"C-STORE to {peer} failed: out of resources (0x{status:04X})")
    if not _is_success_or_warning(status):
        raise PermanentError(f"C-STORE to {peer} failed with status 0x{status:04X}")
    return f"0x{status:04X}"


# A peer that rejects an association may close the connection right after its A-ASSOCIATE-RJ (Orthanc does);
# now and then the close is seen first and the attempt ends aborted. A negotiation aborted quickly is asked
# again at once, so that a rejection is told apart from a broken connection; one that ran into the timeout
# (an unreachable peer) is not, so it costs one timeout, not several.
NEGOTIATION_TRIES = 3


def _associate(ae: AE, destination: PacsDestination) -> Association:
    """An association with the destination, asking again (up to NEGOTIATION_TRIES) after a quick abort."""
    for _ in range(NEGOTIATION_TRIES - 1):
        began = time.monotonic()
        assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
        if not assoc.is_aborted or time.monotonic() - began >= destination.timeout_s / 2:
            return assoc
    return ae.associate(destination.host, destination.port, ae_title=destination.ae_title)


def _association_failure(assoc: Association, peer: str) -> TransientError | PermanentError:
    """Why no association was established with the peer, as the error to raise."""
    if assoc.is_rejected:
        response = assoc.acceptor.primitive
        result = getattr(response, "result", None)
        detail = f"{getattr(response, 'source_str', '?')}: {getattr(response, 'reason_str', '?')}"
        if result == 0x02:
            return TransientError(f"{peer} rejected the association transiently ({detail})")
        return PermanentError(f"{peer} rejected the association ({detail})")
    if assoc.rejected_contexts:
        return PermanentError(f"{peer} refused the SR's SOP class (no presentation context accepted)")
    return TransientError(f"no association with {peer}: connection refused, reset or timed out")
