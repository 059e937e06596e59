"""The CDS Hooks 2.0 request models: each hook's required context, the draft orders Bundle, the prefetched
Patient, and what else an EHR may send."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hilum.cds.hooks import (
    DraftOrders,
    EncounterDischargeRequest,
    HookRequest,
    OrderSelectRequest,
    OrderSignRequest,
    PatientViewRequest,
)
from hilum.cds.services import Hook
from tests.unit.cds.hook_bodies import (
    EHR_PATIENT_ID,
    IMAGING,
    MRN_SYSTEM,
    bundle,
    hook_request,
    prefetched,
    service_request,
)

MODELS: dict[Hook, type[HookRequest]] = {
    Hook.PATIENT_VIEW: PatientViewRequest,
    Hook.ORDER_SELECT: OrderSelectRequest,
    Hook.ORDER_SIGN: OrderSignRequest,
    Hook.ENCOUNTER_DISCHARGE: EncounterDischargeRequest,
}


def refused_at(model: type[HookRequest], body: dict[str, Any]) -> set[str]:
    """The dotted locations of what `model` refuses in `body` (fails the test if it accepts it)."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {".".join(str(part) for part in error["loc"]) for error in caught.value.errors()}


@pytest.mark.parametrize("hook", list(Hook))
def test_each_hooks_minimal_request_is_accepted(hook: Hook) -> None:
    request = MODELS[hook].model_validate(hook_request(hook))
    assert request.hook is hook
    assert request.context.patientId == EHR_PATIENT_ID
    assert request.prefetched_patient() is None


@pytest.mark.parametrize("hook", list(Hook))
def test_every_hook_needs_a_patient_id(hook: Hook) -> None:
    body = hook_request(hook)
    del body["context"]["patientId"]
    assert "context.patientId" in refused_at(MODELS[hook], body)
    assert "context.patientId" in refused_at(MODELS[hook], hook_request(hook, patient_id=""))


@pytest.mark.parametrize("missing", ["selections", "draftOrders"])
def test_order_select_needs_selections_and_draft_orders(missing: str) -> None:
    body = hook_request(Hook.ORDER_SELECT)
    del body["context"][missing]
    assert f"context.{missing}" in refused_at(OrderSelectRequest, body)


def test_order_select_needs_at_least_one_selection() -> None:
    assert "context.selections" in refused_at(OrderSelectRequest,
                                              hook_request(Hook.ORDER_SELECT, context={"selections": []}))


def test_order_sign_needs_draft_orders_but_no_selections() -> None:
    body = hook_request(Hook.ORDER_SIGN)
    assert "selections" not in body["context"]
    assert OrderSignRequest.model_validate(body).context.draftOrders.resources()
    del body["context"]["draftOrders"]
    assert "context.draftOrders" in refused_at(OrderSignRequest, body)


def test_encounter_discharge_needs_an_encounter_id() -> None:
    body = hook_request(Hook.ENCOUNTER_DISCHARGE)
    assert EncounterDischargeRequest.model_validate(body).context.encounterId == "enc-1"
    del body["context"]["encounterId"]
    assert "context.encounterId" in refused_at(EncounterDischargeRequest, body)
    assert "context.encounterId" in refused_at(
        EncounterDischargeRequest, hook_request(Hook.ENCOUNTER_DISCHARGE, context={"encounterId": ""}))


@pytest.mark.parametrize("hook", [Hook.ORDER_SELECT, Hook.ORDER_SIGN])
@pytest.mark.parametrize(
    "draft_orders",
    [
        {"resourceType": "Patient", "id": "p"},
        {"type": "collection", "entry": []},
        [{"resource": service_request("sr-1")}],
        {"resourceType": "Bundle", "entry": [{"resource": "ServiceRequest/sr-1"}]},
    ],
    ids=["another resource", "no resourceType", "a bare list", "entry resource not an object"],
)
def test_draft_orders_must_be_a_bundle(hook: Hook, draft_orders: Any) -> None:
    locations = refused_at(MODELS[hook], hook_request(hook, context={"draftOrders": draft_orders}))
    assert any(location.startswith("context.draftOrders") for location in locations)


def test_draft_orders_resources_are_the_entries_resources_in_order() -> None:
    first, second = service_request("sr-1", category=IMAGING), {"resourceType": "MedicationRequest", "id": "m-1"}
    orders = DraftOrders.model_validate({**bundle(first, second), "id": "b-1"})
    assert orders.resources() == [first, second]


def test_draft_orders_entries_without_a_resource_are_skipped() -> None:
    orders = DraftOrders.model_validate({"resourceType": "Bundle", "entry": [
        {"fullUrl": "urn:uuid:1"}, {"resource": None}, {"resource": {"resourceType": "ServiceRequest"}}]})
    assert orders.resources() == [{"resourceType": "ServiceRequest"}]
    assert DraftOrders.model_validate({"resourceType": "Bundle"}).resources() == []


def test_a_prefetched_patient_is_read_as_a_fhir_patient() -> None:
    request = PatientViewRequest.model_validate(hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042"))))
    fetched = request.prefetched_patient()
    assert fetched is not None and fetched.id == EHR_PATIENT_ID
    assert [(i.system, i.value) for i in fetched.identifier or []] == [(MRN_SYSTEM, "MRN-0042")]


def test_a_null_prefetch_patient_means_none_was_prefetched() -> None:
    """CDS Hooks lets the EHR send null for a prefetch it could not fulfil."""
    request = PatientViewRequest.model_validate(hook_request(prefetch={"patient": None}))
    assert request.prefetched_patient() is None


@pytest.mark.parametrize(
    "not_a_patient",
    [
        {"resourceType": "Observation", "id": "o-1", "status": "final", "code": {"text": "x"}},
        {"resourceType": "Patient", "id": "ehr-123", "identifier": "MRN-0042"},
        {"resourceType": "Patient", "id": "ehr-123", "birthDate": "yesterday"},
        "Patient/ehr-123",
    ],
    ids=["an Observation", "identifier not a list", "invalid birthDate", "a reference string"],
)
def test_prefetch_patient_must_be_a_fhir_patient(not_a_patient: Any) -> None:
    assert "prefetch.patient" in refused_at(PatientViewRequest, hook_request(prefetch={"patient": not_a_patient}))


def test_prefetch_patient_without_a_resource_type_is_refused() -> None:
    """FHIR JSON must name its resourceType: an object without one is not a FHIR Patient."""
    untyped = {"id": EHR_PATIENT_ID, "identifier": [{"system": MRN_SYSTEM, "value": "MRN-0042"}]}
    assert "prefetch.patient" in refused_at(PatientViewRequest, hook_request(prefetch={"patient": untyped}))


def test_unknown_context_and_prefetch_fields_are_accepted() -> None:
    body = hook_request(Hook.ORDER_SIGN, context={"encounterId": "enc-9", "vendorExtension": {"a": 1}},
                        prefetch={**prefetched((MRN_SYSTEM, "MRN-0042")), "encounter": {"resourceType": "Encounter"}},
                        extension={"com.example.flag": True})
    request = OrderSignRequest.model_validate(body)
    assert request.context.model_extra == {"vendorExtension": {"a": 1}}
    assert request.context.encounterId == "enc-9"
    assert request.prefetch is not None and request.prefetch.model_extra == {"encounter": {"resourceType": "Encounter"}}


@pytest.mark.parametrize("model_hook", list(Hook))
@pytest.mark.parametrize("sent_hook", list(Hook))
def test_the_hook_must_match_the_model(model_hook: Hook, sent_hook: Hook) -> None:
    """A body valid for one hook is refused, at "hook", by every other hook's model."""
    body = hook_request(sent_hook)
    if model_hook is sent_hook:
        assert MODELS[model_hook].model_validate(body).hook is sent_hook
    else:
        assert "hook" in refused_at(MODELS[model_hook], body)


@pytest.mark.parametrize(("field", "value"), [("hookInstance", "not-a-uuid"), ("fhirServer", "")])
def test_top_level_fields_are_checked(field: str, value: str) -> None:
    assert field in refused_at(PatientViewRequest, hook_request(**{field: value}))


def test_fhir_authorization_is_kept_for_the_fetch() -> None:
    auth = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
            "scope": "patient/Patient.read", "subject": "hilum"}
    request = PatientViewRequest.model_validate(hook_request(fhirServer="https://ehr.example/fhir",
                                                             fhirAuthorization=auth))
    assert request.fhirAuthorization == auth and request.fhirServer == "https://ehr.example/fhir"

