"""Where a published result goes: the destinations an operator configured, and what is sent to them.

Each destination is delivered and retried on its own, so a PACS that is down never holds back the
FHIR server or the HL7 interface.
"""

from __future__ import annotations

from enum import StrEnum

from hilum.common.settings import PublishSection


class Destination(StrEnum):
    """A kind of system Hilum delivers results to."""

    FHIR_SERVER = "fhir_server"  # a FHIR R4 server, by transaction bundle
    MLLP = "mllp"  # an HL7 v2 interface engine, ORU^R01 over MLLP
    PACS = "pacs"  # the PACS, a DICOM Comprehensive SR by STOW-RS or C-STORE


class DeliveryEvent(StrEnum):
    """What a delivery sends: the preliminary result, or a later change of its status."""

    PRELIMINARY = "preliminary"
    AMENDED = "amended"
    CANCELLED = "cancelled"


class DeliveryState(StrEnum):
    """Where one delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # every attempt failed; kept until replayed


def configured_destinations(publish: PublishSection) -> tuple[Destination, ...]:
    """The destinations with an address in settings, in a fixed order."""
    configured = {
        Destination.FHIR_SERVER: bool(publish.fhir_server.url),
        Destination.MLLP: bool(publish.mllp.host),
        Destination.PACS: bool(publish.pacs.stow_url or publish.pacs.ae_title),
    }
    return tuple(destination for destination in Destination if configured[destination])


# Which destinations take which status change: a DICOM SR in the PACS is not retracted by Hilum.
DESTINATIONS_OF_EVENT = {
    DeliveryEvent.PRELIMINARY: frozenset(Destination),
    DeliveryEvent.AMENDED: frozenset({Destination.FHIR_SERVER, Destination.MLLP}),
    DeliveryEvent.CANCELLED: frozenset({Destination.FHIR_SERVER, Destination.MLLP}),
}
