"""The CDS services Hilum offers: one per hook, each prefetching the Patient."""

from __future__ import annotations

from hilum.cds.services import DISCOVERY, PATIENT_PREFETCH, SERVICES, Hook, service_id


def test_there_is_a_service_per_hook() -> None:
    assert set(SERVICES) == set(Hook)
    assert [s.hook for s in DISCOVERY.services] == list(SERVICES)
    for hook, definition in SERVICES.items():
        assert definition.hook == hook


def test_service_ids_are_unique() -> None:
    ids = [definition.id for definition in DISCOVERY.services]
    assert len(ids) == len(set(ids)) == len(Hook)


def test_each_service_prefetches_the_patient() -> None:
    for definition in SERVICES.values():
        assert definition.prefetch == {"patient": "Patient/{{context.patientId}}"}
    assert PATIENT_PREFETCH == {"patient": "Patient/{{context.patientId}}"}


def test_each_service_has_its_own_prefetch_dict() -> None:
    """A change to one service's prefetch must not leak into another's (or into PATIENT_PREFETCH)."""
    prefetches = [definition.prefetch for definition in SERVICES.values()]
    assert len({id(p) for p in prefetches}) == len(prefetches)
    assert all(p is not PATIENT_PREFETCH for p in prefetches)


def test_service_id_names_the_hooks_service() -> None:
    assert service_id(Hook.PATIENT_VIEW) == "hilum-cxr-patient-view"
    for hook in Hook:
        assert service_id(hook) == SERVICES[hook].id
        assert hook.value in service_id(hook)


def test_each_service_describes_itself() -> None:
    for definition in SERVICES.values():
        assert definition.title.strip() and definition.description.strip()
        assert definition.usageRequirements and "TRUSTED_ISSUERS" in definition.usageRequirements


def test_discovery_serialises_every_field_of_every_service() -> None:
    for service in DISCOVERY.model_dump(mode="json", exclude_none=True)["services"]:
        assert set(service) == {"hook", "title", "description", "id", "prefetch", "usageRequirements"}
