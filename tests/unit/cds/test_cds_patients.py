"""Who a CDS call is about: the Patient's MRNs (system and value together), prefetched or fetched."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.patient import Patient

from hilum.cds.hooks import HookRequest, PatientViewRequest
from hilum.cds.patients import PatientUnavailable, fetch_patient, mrns, patient_of
from hilum.runtime.ports import free_port
from tests.unit.cds.conftest import EhrFhirServer
from tests.unit.cds.hook_bodies import EHR_PATIENT_ID, MRN_SYSTEM, hook_request, patient

OTHER_SYSTEM = "urn:oid:2.16.840.1.113883.4.1"
AUTH = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300, "scope": "patient/Patient.read",
        "subject": "hilum"}


def fhir_patient(*identifiers: tuple[str, str], fhir_id: str = EHR_PATIENT_ID) -> Patient:
    return Patient.model_validate(patient(*identifiers, fhir_id=fhir_id))


def request(patient_id: str = EHR_PATIENT_ID, **extra: Any) -> HookRequest:
    return PatientViewRequest.model_validate(hook_request(patient_id=patient_id, **extra))


class FakeGet:
    """Stands in for httpx.get: records what it was asked and answers `response` (or raises `error`)."""

    def __init__(self, status: int = 200, json_body: Any = None, content: bytes | None = None,
                 error: Exception | None = None) -> None:
        self.status, self.json_body, self.content, self.error = status, json_body, content, error
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, url: str, *, headers: dict[str, str], timeout: float) -> httpx.Response:
        self.calls.append((url, dict(headers)))
        if self.error is not None:
            raise self.error
        request = httpx.Request("GET", url)
        if self.content is not None:
            return httpx.Response(self.status, content=self.content, request=request)
        return httpx.Response(self.status, json=self.json_body, request=request)


@pytest.fixture
def fake_get(monkeypatch: pytest.MonkeyPatch) -> FakeGet:
    fake = FakeGet(json_body=patient((MRN_SYSTEM, "MRN-0042")))
    monkeypatch.setattr(httpx, "get", fake)
    return fake


# mrns


def test_mrns_are_the_values_in_the_system() -> None:
    found = fhir_patient((OTHER_SYSTEM, "SSN-1"), (MRN_SYSTEM, "MRN-0042"), (MRN_SYSTEM, "MRN-0007"))
    assert mrns(found, MRN_SYSTEM) == ["MRN-0042", "MRN-0007"]


def test_the_same_value_in_another_system_never_matches() -> None:
    assert mrns(fhir_patient((OTHER_SYSTEM, "MRN-0042")), MRN_SYSTEM) == []
    assert mrns(fhir_patient((MRN_SYSTEM, "MRN-0042")), OTHER_SYSTEM) == []


def test_an_identifier_without_a_system_never_matches() -> None:
    unsystemed = Patient.model_validate({"resourceType": "Patient", "id": EHR_PATIENT_ID,
                                         "identifier": [{"value": "MRN-0042"}, {"system": MRN_SYSTEM}]})
    assert mrns(unsystemed, MRN_SYSTEM) == []


def test_duplicate_mrns_are_listed_once_in_first_seen_order() -> None:
    found = fhir_patient((MRN_SYSTEM, "B"), (MRN_SYSTEM, "A"), (MRN_SYSTEM, "B"), (OTHER_SYSTEM, "A"))
    assert mrns(found, MRN_SYSTEM) == ["B", "A"]


def test_a_patient_without_identifiers_has_no_mrns() -> None:
    assert mrns(Patient.model_validate({"resourceType": "Patient", "id": EHR_PATIENT_ID}), MRN_SYSTEM) == []


# patient_of


def test_the_prefetched_patient_with_the_context_id_is_used(fake_get: FakeGet) -> None:
    body = request(prefetch={"patient": patient((MRN_SYSTEM, "PREFETCHED"))}, fhirServer="https://ehr.example/fhir",
                   fhirAuthorization=AUTH)
    assert mrns(patient_of(body), MRN_SYSTEM) == ["PREFETCHED"]
    assert fake_get.calls == []  # no FHIR call when the prefetch answers


def test_a_prefetched_patient_of_another_id_is_not_used_and_the_patient_is_fetched(ehr: EhrFhirServer) -> None:
    """The prefetched Patient would be another person's: its MRN must not be matched."""
    intruder = patient((MRN_SYSTEM, "SOMEONE-ELSE"), fhir_id="ehr-999")
    body = request(prefetch={"patient": intruder}, fhirServer=ehr.url, fhirAuthorization=AUTH)
    found = patient_of(body)
    assert found.id == EHR_PATIENT_ID and mrns(found, MRN_SYSTEM) == ["MRN-0042"]
    assert ehr.requests == [("/fhir/Patient/ehr-123", "Bearer secret-token")]


def test_a_prefetched_patient_of_another_id_without_a_fhir_server_is_unavailable() -> None:
    intruder = patient((MRN_SYSTEM, "SOMEONE-ELSE"), fhir_id="ehr-999")
    with pytest.raises(PatientUnavailable):
        patient_of(request(prefetch={"patient": intruder}))


def test_without_prefetch_the_patient_is_fetched(fake_get: FakeGet) -> None:
    found = patient_of(request(fhirServer="https://ehr.example/fhir", fhirAuthorization=AUTH))
    assert mrns(found, MRN_SYSTEM) == ["MRN-0042"]
    assert [url for url, _ in fake_get.calls] == ["https://ehr.example/fhir/Patient/ehr-123"]


def test_a_null_prefetch_patient_is_fetched(fake_get: FakeGet) -> None:
    found = patient_of(request(prefetch={"patient": None}, fhirServer="https://ehr.example/fhir"))
    assert found.id == EHR_PATIENT_ID and len(fake_get.calls) == 1


def test_a_fetch_failure_is_patient_unavailable(ehr: EhrFhirServer) -> None:
    ehr.fail_with = 500
    with pytest.raises(PatientUnavailable, match="500"):
        patient_of(request(fhirServer=ehr.url, fhirAuthorization=AUTH))
    assert len(ehr.requests) == 1


# fetch_patient


def test_without_a_fhir_server_the_patient_is_unavailable(fake_get: FakeGet) -> None:
    with pytest.raises(PatientUnavailable, match="fhirServer"):
        fetch_patient(request(fhirAuthorization=AUTH))
    assert fake_get.calls == []


def test_the_bearer_token_is_sent(ehr: EhrFhirServer) -> None:
    found = fetch_patient(request(fhirServer=ehr.url, fhirAuthorization=AUTH))
    assert found.id == EHR_PATIENT_ID
    assert ehr.requests == [("/fhir/Patient/ehr-123", "Bearer secret-token")]


def test_without_fhir_authorization_no_authorization_header_is_sent(fake_get: FakeGet) -> None:
    fetch_patient(request(fhirServer="https://ehr.example/fhir/"))
    ((url, headers),) = fake_get.calls
    assert url == "https://ehr.example/fhir/Patient/ehr-123"
    assert "Authorization" not in headers and headers["Accept"] == "application/fhir+json"


def test_the_patient_id_is_quoted_into_one_path_segment(fake_get: FakeGet) -> None:
    """An id that is no FHIR id cannot reach another path on the EHR's server (whatever the answer is)."""
    with contextlib.suppress(PatientUnavailable):
        fetch_patient(request(patient_id="a/../b", fhirServer="https://ehr.example/fhir"))
    assert fake_get.calls[0][0] == "https://ehr.example/fhir/Patient/a%2F..%2Fb"


def test_a_fetched_patient_with_another_id_is_unavailable(fake_get: FakeGet) -> None:
    fake_get.json_body = patient((MRN_SYSTEM, "SOMEONE-ELSE"), fhir_id="ehr-999")
    with pytest.raises(PatientUnavailable, match="another Patient"):
        fetch_patient(request(fhirServer="https://ehr.example/fhir", fhirAuthorization=AUTH))


@pytest.mark.parametrize(
    "answer",
    [
        {"resourceType": "Observation", "id": EHR_PATIENT_ID, "status": "final", "code": {"text": "x"}},
        {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": patient((MRN_SYSTEM, "MRN-0042"))}]},
        [patient((MRN_SYSTEM, "MRN-0042"))],
        "Patient/ehr-123",
        {"resourceType": "Patient", "id": EHR_PATIENT_ID, "identifier": "MRN-0042"},
    ],
    ids=["an Observation", "a search Bundle", "a list", "a string", "a malformed Patient"],
)
def test_non_patient_json_is_unavailable(fake_get: FakeGet, answer: Any) -> None:
    fake_get.json_body = answer
    with pytest.raises(PatientUnavailable, match="not a FHIR Patient"):
        fetch_patient(request(fhirServer="https://ehr.example/fhir"))


def test_json_without_a_resource_type_is_not_a_patient(fake_get: FakeGet) -> None:
    """FHIR JSON must name its resourceType; an untyped object (here a bare {}) is not a Patient."""
    fake_get.json_body = {}
    with pytest.raises(PatientUnavailable):
        fetch_patient(request(fhirServer="https://ehr.example/fhir"))


def test_an_observation_from_the_ehr_server_is_unavailable(ehr: EhrFhirServer) -> None:
    ehr.patient_json = {"resourceType": "Observation", "id": EHR_PATIENT_ID, "status": "final", "code": {"text": "x"}}
    with pytest.raises(PatientUnavailable, match="not a FHIR Patient"):
        fetch_patient(request(fhirServer=ehr.url, fhirAuthorization=AUTH))
    assert len(ehr.requests) == 1


def test_a_body_that_is_not_json_is_unavailable(fake_get: FakeGet) -> None:
    fake_get.content = b"<html>login</html>"
    with pytest.raises(PatientUnavailable, match="not a FHIR Patient"):
        fetch_patient(request(fhirServer="https://ehr.example/fhir"))


@pytest.mark.parametrize("status", [301, 401, 404, 500])
def test_an_answer_other_than_200_is_unavailable(fake_get: FakeGet, status: int) -> None:
    fake_get.status = status
    with pytest.raises(PatientUnavailable, match=str(status)):
        fetch_patient(request(fhirServer="https://ehr.example/fhir"))


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
                         ids=["refused", "timeout"])
def test_a_transport_error_is_unavailable(fake_get: FakeGet, error: Exception) -> None:
    fake_get.error = error
    with pytest.raises(PatientUnavailable, match="could not be reached"):
        fetch_patient(request(fhirServer="https://ehr.example/fhir"))


@pytest.mark.parametrize("server", ["ftp://ehr.example/fhir", "not a url", "http://127.0.0.1:{port}/fhir"])
def test_an_unusable_fhir_server_is_unavailable(server: str) -> None:
    with pytest.raises(PatientUnavailable):
        fetch_patient(request(fhirServer=server.format(port=free_port()), fhirAuthorization=AUTH), timeout_s=2.0)


def test_the_token_is_not_in_the_unavailable_message(fake_get: FakeGet) -> None:
    fake_get.status = 401
    with pytest.raises(PatientUnavailable) as caught:
        fetch_patient(request(fhirServer="https://ehr.example/fhir", fhirAuthorization=AUTH))
    assert "secret-token" not in str(caught.value)
