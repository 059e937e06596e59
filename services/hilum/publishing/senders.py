"""One Sender per configured destination: how a published report becomes each destination's message.

FHIR server: the stored transaction bundle (status changes by a versioned PUT). HL7 v2: an ORU^R01 over
MLLP whose control id is stable per (study, model version, event), so an engine can drop a repeat.
PACS: a DICOM Comprehensive SR of the analysed images, with UIDs stable per (study, model version).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from hilum.common.destinations import DeliveryEvent, Destination
from hilum.common.fhir.identifiers import resource_uuid
from hilum.common.settings import FhirSection, HilumSettings, MllpDestination
from hilum.publishing.mllp import send_message
from hilum.publishing.oru import OruOptions, ResultStatus, build_oru
from hilum.publishing.service import PublishedReport, Sender

# OBR-25 of each event: the preliminary draft, a corrected (amended) result, a cancelled one.
RESULT_STATUS = {
    DeliveryEvent.PRELIMINARY: ResultStatus.PRELIMINARY,
    DeliveryEvent.AMENDED: ResultStatus.CORRECTED,
    DeliveryEvent.CANCELLED: ResultStatus.CANCELLED,
}


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
        control_id=oru_control_id(uid, version, event), result_status=RESULT_STATUS[event], message_datetime=now,
        patient_id_system=fhir.patient_identifier_system,
    )
    return build_oru(report.study, report.reported, report.draft, options)


def mllp_sender(mllp: MllpDestination, fhir: FhirSection, clock: Callable[[], datetime]) -> Sender:
    """Sends the ORU^R01 and waits for its ACK; the receipt is the acknowledged control id."""

    def send(report: PublishedReport, event: DeliveryEvent) -> str:
        ack = send_message(oru_of(report, event, mllp, fhir, clock()), mllp)
        return f"{ack.code.value} {ack.control_id}"

    return send


def configured_senders(
    settings: HilumSettings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> dict[Destination, Sender]:
    """A sender for each destination configured in settings.publish."""
    publish = settings.publish
    senders: dict[Destination, Sender] = {}
    if publish.mllp.host:
        senders[Destination.MLLP] = mllp_sender(publish.mllp, settings.fhir, clock)
    return senders
