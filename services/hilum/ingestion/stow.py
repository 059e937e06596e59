"""The DICOMweb STOW-RS door (PS3.18 10.5, Studies Store Transaction): `POST {base}/studies[/{study}]`.

The request is `multipart/related; type="application/dicom"`, one DICOM Part 10 instance per part. Each
part goes through Ingestion exactly as the other doors' instances do (stored durably, or quarantined with
its reason), one part at a time, so a part that fails never stops the others. The answer is a Store
Instances Response Module (PS3.18 Annex I) in DICOM JSON: ReferencedSOPSequence for the stored
instances, FailedSOPSequence with each failure's FailureReason (door_status, the C-STORE codes). It
names instances by their UIDs only, never by patient data; logs carry only counts and codes.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from pydicom.dataset import Dataset
from starlette.concurrency import run_in_threadpool

from hilum.common.dicom.header import NotDicom, dataset_uid, parse_dataset
from hilum.common.multipart import MultipartError, Part, content_type_parameter, media_type, parse_multipart
from hilum.ingestion import door_status
from hilum.ingestion.service import Door, IncomingInstance, Ingestion
from hilum.v1 import ingestion_pb2

log = logging.getLogger(__name__)

# Where the DICOMweb door is mounted on the HTTP app: STOW-RS is `POST {DICOMWEB_PREFIX}/studies`.
DICOMWEB_PREFIX = "/dicomweb"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
# A request larger than this is refused (413) before it is parsed; a few radiographs fit many times over.
DEFAULT_MAX_REQUEST_BYTES = 256 * 1024 * 1024

_UID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_UID_MAX_LENGTH = 64
# The {study} segment of a request path, as an access log would write it.
_STUDY_IN_PATH = re.compile(r"(/studies/)[^/?#\s]+")


class StudyUidRedaction(logging.Filter):
    """Writes `/studies/{study}` for the Study Instance UID in a request path a log record quotes (uvicorn's
    access log quotes each request's path), as a UID can identify a patient.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_STUDY_IN_PATH.sub(r"\1{study}", arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        return True


@dataclass(frozen=True)
class StoredInstance:
    """An instance Hilum holds after this request (also when it held it already); warning: a WarningReason."""

    sop_class_uid: str
    sop_instance_uid: str
    warning: int | None = None


@dataclass(frozen=True)
class FailedInstance:
    """A part Hilum did not store: its UIDs where they could be read ("" otherwise) and its FailureReason."""

    sop_class_uid: str
    sop_instance_uid: str
    failure_reason: int


@dataclass(frozen=True)
class StoreOutcome:
    """What one STOW-RS request did to each of its parts."""

    stored: tuple[StoredInstance, ...]
    failed: tuple[FailedInstance, ...]

    @property
    def http_status(self) -> int:
        """PS3.18 Table 10.5.3-1: 200 all stored; 202 some stored, with failures or warnings; 409 none stored."""
        if not self.stored:
            return 409
        if self.failed or any(instance.warning is not None for instance in self.stored):
            return 202
        return 200

    def response(self) -> Dataset:
        """The Store Instances Response Module (PS3.18 Table I.1-1).

        Retrieve URL (Type 2) is present and empty, for the study and for each instance: Hilum offers no
        Studies Retrieve Transaction. A failure's SOP Class and Instance UIDs are left out when the part
        could not be read as DICOM.
        """
        dataset = Dataset()
        dataset.RetrieveURL = None
        if self.failed:
            dataset.FailedSOPSequence = [_failed_item(instance) for instance in self.failed]
        if self.stored:
            dataset.ReferencedSOPSequence = [_stored_item(instance) for instance in self.stored]
        return dataset


@dataclass(frozen=True)
class _Identity:
    """The UIDs a part names, read without judging it; "" for each that is absent or unreadable."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""


def store_parts(ingestion: Ingestion, parts: Sequence[Part], labels: Sequence[str],
                study_instance_uid: str | None = None, address: str = "") -> StoreOutcome:
    """Store each part through ingestion, labelled labels[i], sent from `address` (the client's, for the audit
    trail); the outcome names each part by its UIDs.

    A part whose own Content-Type is not application/dicom fails with Cannot understand; with
    study_instance_uid (the `/studies/{study}` resource), an instance of another study fails with
    door_status.STUDY_MISMATCH. Neither is offered to ingestion. Every other part is, on its own: what ingestion
    refuses fails with door_status's code for the reason; a part ingestion could not store (database or
    disk down) fails with Out of Resources, so the sender sends it again.
    """
    stored: list[StoredInstance] = []
    failed: list[FailedInstance] = []
    for part, label in zip(parts, labels, strict=True):
        identity = _identify(part.content)
        if part.content_type not in ("", DICOM):
            failed.append(_failure(identity, door_status.CANNOT_UNDERSTAND))
            log.info("part refused: not application/dicom", extra={"door": Door.STOW.value})
            continue
        if study_instance_uid is not None and identity.study_instance_uid not in ("", study_instance_uid):
            failed.append(_failure(identity, door_status.STUDY_MISMATCH))
            log.info("instance refused: another study than the request's", extra={"door": Door.STOW.value})
            continue
        try:
            incoming = IncomingInstance(label=label, content=part.content, door=Door.STOW, address=address)
            result = ingestion.accept([incoming]).results[0]
        except Exception as exc:  # never the message: a database error quotes its parameters (UIDs)
            log.error("instance not stored; answered Out of Resources",
                      extra={"door": Door.STOW.value, "error_type": type(exc).__name__})
            failed.append(_failure(identity, door_status.OUT_OF_RESOURCES))
            continue
        if result.accepted:
            stored.append(_stored(identity, result))
        else:
            failed.append(_failure(identity, door_status.failure_status(result.rejection.code)))
    return StoreOutcome(tuple(stored), tuple(failed))


def stow_router(ingestion: Ingestion, *, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> APIRouter:
    """The Studies Store Transaction on `POST /studies` and `POST /studies/{study}` (mount it at DICOMWEB_PREFIX).

    Answers 200, 202 or 409 with the Store Instances Response Module (StoreOutcome); 400 for a body that
    is not multipart or has no parts, or a {study} that is not a UID; 413 for a body over
    max_request_bytes; 415 for a Content-Type other than multipart/related, or a `type` other than
    application/dicom. Parts are labelled "stow-<n>", n counting this router's parts. uvicorn's access
    log gets a StudyUidRedaction, so the {study} of a request URL is never logged.
    """
    router = APIRouter()
    counter = itertools.count(1)
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, StudyUidRedaction) for existing in access_log.filters):
        access_log.addFilter(StudyUidRedaction())

    async def store(request: Request, study_instance_uid: str | None) -> Response:
        if study_instance_uid is not None and not _is_uid(study_instance_uid):
            return _refusal(400, "the Study Instance UID in the request URL is not a UID")
        content_type = request.headers.get("content-type", "")
        if media_type(content_type) != "multipart/related":
            return _refusal(415, 'STOW-RS takes multipart/related; type="application/dicom"')
        part_type = content_type_parameter(content_type, "type")
        if part_type is not None and media_type(part_type) != DICOM:
            return _refusal(415, "Hilum stores DICOM Part 10 instances only (type=application/dicom)")
        body = await _read_body(request, max_request_bytes)
        if body is None:
            return _refusal(413, f"the request is larger than {max_request_bytes} bytes")
        try:
            parts = parse_multipart(body, content_type)
        except MultipartError as error:
            return _refusal(400, str(error))
        if not parts:
            return _refusal(400, "the multipart body holds no parts")
        labels = [f"stow-{next(counter)}" for _ in parts]
        outcome = await run_in_threadpool(store_parts, ingestion, parts, labels, study_instance_uid,
                                          request.client.host if request.client else "")
        log.info("STOW-RS request answered",
                 extra={"door": Door.STOW.value, "count": len(parts), "code": outcome.http_status})
        return Response(json.dumps(outcome.response().to_json_dict()), status_code=outcome.http_status,
                        media_type=DICOM_JSON)

    @router.post("/studies")
    async def store_instances(request: Request) -> Response:
        """Store instances of any studies."""
        return await store(request, None)

    @router.post("/studies/{study}")
    async def store_study_instances(request: Request, study: str) -> Response:
        """Store instances of the study `study`; instances of another study fail."""
        return await store(request, study)

    return router


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed limit bytes (declared or as received)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _refusal(status: int, reason: str) -> Response:
    """A refusal of the whole request: its status and a one-line reason that quotes nothing it received."""
    log.info("STOW-RS request refused", extra={"door": Door.STOW.value, "code": status})
    return Response(reason + "\n", status_code=status, media_type="text/plain")


def _is_uid(value: str) -> bool:
    """Whether value is a UID as ingestion reads one (hilum.common.dicom.attributes.uid)."""
    return len(value) <= _UID_MAX_LENGTH and _UID.fullmatch(value) is not None


def _identify(content: bytes) -> _Identity:
    """The SOP Class, SOP Instance and Study Instance UIDs content names, if it can be read as DICOM."""
    try:
        ds = parse_dataset(content, stop_before_pixels=True)
    except NotDicom:  # ingestion says why
        return _Identity()
    return _Identity(dataset_uid(ds, "SOPClassUID"), dataset_uid(ds, "SOPInstanceUID"),
                     dataset_uid(ds, "StudyInstanceUID"))


def _stored(identity: _Identity, result: ingestion_pb2.InstanceResult) -> StoredInstance:
    warning = door_status.ACCEPTED_WITH_NOTES if result.notes else None
    return StoredInstance(identity.sop_class_uid, result.sop_instance_uid or identity.sop_instance_uid, warning)


def _failure(identity: _Identity, reason: int) -> FailedInstance:
    return FailedInstance(identity.sop_class_uid, identity.sop_instance_uid, reason)


def _reference(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    """The SOP Instance Reference Macro (PS3.3 Table 10-11), with what is known of it."""
    item = Dataset()
    if sop_class_uid:
        item.ReferencedSOPClassUID = sop_class_uid
    if sop_instance_uid:
        item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def _failed_item(instance: FailedInstance) -> Dataset:
    item = _reference(instance.sop_class_uid, instance.sop_instance_uid)
    item.FailureReason = instance.failure_reason
    return item


def _stored_item(instance: StoredInstance) -> Dataset:
    item = _reference(instance.sop_class_uid, instance.sop_instance_uid)
    item.RetrieveURL = None
    if instance.warning is not None:
        item.WarningReason = instance.warning
    return item
