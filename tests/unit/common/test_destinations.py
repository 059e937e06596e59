"""Which destinations are configured, and which take status changes."""

from __future__ import annotations

from hilum.common.destinations import DESTINATIONS_OF_EVENT, DeliveryEvent, Destination, configured_destinations
from hilum.common.settings import FhirDestination, MllpDestination, PacsDestination, PublishSection


def test_nothing_is_configured_by_default() -> None:
    assert configured_destinations(PublishSection()) == ()


def test_each_destination_is_configured_by_its_address() -> None:
    publish = PublishSection(fhir_server=FhirDestination(url="http://ehr/fhir"), mllp=MllpDestination(host="engine"),
                             pacs=PacsDestination(ae_title="PACS", host="pacs"))
    assert configured_destinations(publish) == (Destination.FHIR_SERVER, Destination.MLLP, Destination.PACS)
    assert configured_destinations(PublishSection(pacs=PacsDestination(stow_url="http://pacs/studies"))) == (
        Destination.PACS,)


def test_status_changes_do_not_go_to_the_pacs() -> None:
    assert Destination.PACS in DESTINATIONS_OF_EVENT[DeliveryEvent.PRELIMINARY]
    assert Destination.PACS not in DESTINATIONS_OF_EVENT[DeliveryEvent.AMENDED]
    assert Destination.PACS not in DESTINATIONS_OF_EVENT[DeliveryEvent.CANCELLED]
