"""One Sender per configured destination: how a published report becomes each destination's message.

FHIR server: the stored transaction bundle (status changes by a versioned PUT). HL7 v2: an ORU^R01 over
MLLP whose control id is stable per (study, model version, event), so an engine can drop a repeat.
PACS: a DICOM Comprehensive SR of the analysed images, with UIDs stable per (study, model version).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from pydicom import Dataset, dcmread

from hilum.common.connections import open_object_store
from hilum.common.destinations import DeliveryEvent, Destination
from hilum.common.errors import PermanentError
from hilum.common.fhir.identifiers import RFC3986, report_identifier_value, resource_uuid
from hilum.common.object_store import ObjectStore
from hilum.common.settings import FhirDestination, FhirSection, HilumSettings, MllpDestination, PacsDestination
from hilum.common.smart_backend import smart_auth
from hilum.publishing.fhir_server import post_transaction, set_report_status
from hilum.publishing.mllp import send_message
from hilum.publishing.oru import OruOptions, ResultStatus, build_oru
from hilum.publishing.pacs import send_structured_report
from hilum.publishing.service import PublishedReport, Sender
from hilum.publishing.structured_report import build_structured_report
from hilum.publishing.transactions import post_in_parts

# OBR-25 of each event: the preliminary draft, a corrected (amended) result, a cancelled one.
RESULT_STATUS = {
    DeliveryEvent.PRELIMINARY: ResultStatus.PRELIMINARY,
    DeliveryEvent.AMENDED: ResultStatus.CORRECTED,
    DeliveryEvent.CANCELLED: ResultStatus.CANCELLED,
}


def result_status(report: PublishedReport, event: DeliveryEvent) -> ResultStatus:
    """OBR-25 of an event: its RESULT_STATUS, except that a report that supersedes the study's report of an earlier
    model version is a correction of the same order (C), which replaces that result at the receiver."""
    if event == DeliveryEvent.PRELIMINARY and report.amends:
        return ResultStatus.CORRECTED
    return RESULT_STATUS[event]


def oru_control_id(uid: str, model_version: str, event: DeliveryEvent) -> str:
    """MSH-10, stable per (study, model version, event) and at most 20 characters (ST 20)."""
    return resource_uuid("ORU", uid, model_version, event.value).replace("-", "")[:20].upper()


def oru_of(
    report: PublishedReport, event: DeliveryEvent, mllp: MllpDestination, fhir: FhirSection, now: datetime
) -> str:
    """The ORU^R01 of one event of a published report."""
    uid, version = report.study.study_instance_uid, report.reported.model.version
    options = OruOptions(
        sending_application=mllp.sending_application, sending_facility=mllp.sending_facility,
        receiving_application=mllp.receiving_application, receiving_facility=mllp.receiving_facility,
        control_id=oru_control_id(uid, version, event), result_status=result_status(report, event),
        message_datetime=now,
        patient_id_system=fhir.patient_identifier_system,
    )
    return build_oru(report.study, report.reported, report.draft, options)


def mllp_sender(mllp: MllpDestination, fhir: FhirSection, clock: Callable[[], datetime]) -> Sender:
    """Sends the ORU^R01 and waits for its ACK; the receipt is the acknowledged control id."""

    def send(report: PublishedReport, event: DeliveryEvent) -> str:
        ack = send_message(oru_of(report, event, mllp, fhir, clock()), mllp)
        return f"{ack.code.value} {ack.control_id}"

    return send


def fhir_sender(destination: FhirDestination) -> Sender:
    """Posts the report's transaction bundle (in parts where the server wants them), or sets its status with a
    versioned PUT; the receipt is the DiagnosticReport's location or new version.
    """
    client = httpx.Client(timeout=destination.timeout_s, auth=smart_auth(destination))

    def post(part: dict[str, Any]) -> tuple[str, ...]:
        return post_transaction(part, destination, client).locations

    def send(report: PublishedReport, event: DeliveryEvent) -> str:
        uid, version = report.study.study_instance_uid, report.reported.model.version
        if event != DeliveryEvent.PRELIMINARY:
            identifier = (RFC3986, report_identifier_value(uid, version))
            return f"DiagnosticReport version {set_report_status(identifier, event.value, destination, client)}"
        locations = post_in_parts(report.bundle, destination.max_entries_per_transaction, post)
        kinds = [entry["resource"]["resourceType"] for entry in report.bundle["entry"]]
        return locations[kinds.index("DiagnosticReport")]

    return send


def analysed_images(report: PublishedReport, store: ObjectStore) -> list[Dataset]:
    """The headers of the images the findings were computed on (frontal, and lateral where there is one)."""
    study = report.comparison.current.study
    keys = [key for key in (study.frontal_object_key, study.lateral_object_key) if key]
    if not keys:
        raise PermanentError("the result names no analysed image to refer the structured report to")
    try:
        return [dcmread(store.path(key), stop_before_pixels=True) for key in keys]
    except FileNotFoundError as missing:
        raise PermanentError("an analysed image is no longer in the object store") from missing


def pacs_sender(destination: PacsDestination, store: ObjectStore, clock: Callable[[], datetime]) -> Sender:
    """Sends the DICOM Comprehensive SR of the preliminary result; the receipt is its SOP Instance UID."""

    def send(report: PublishedReport, event: DeliveryEvent) -> str:
        if event != DeliveryEvent.PRELIMINARY:
            raise PermanentError(f"Hilum does not send {event.value} results to the PACS")
        sources = analysed_images(report, store)
        sr = build_structured_report(sources, report.reported, report.draft, now=clock(),
                                     predecessor_version=report.amends)
        return send_structured_report(sr, destination)

    return send


def configured_senders(
    settings: HilumSettings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> dict[Destination, Sender]:
    """A sender for each destination configured in settings.publish."""
    publish = settings.publish
    senders: dict[Destination, Sender] = {}
    if publish.fhir_server.url:
        senders[Destination.FHIR_SERVER] = fhir_sender(publish.fhir_server)
    if publish.mllp.host:
        senders[Destination.MLLP] = mllp_sender(publish.mllp, settings.fhir, clock)
    if publish.pacs.stow_url or publish.pacs.ae_title:
        senders[Destination.PACS] = pacs_sender(publish.pacs, open_object_store(settings), clock)
    return senders
