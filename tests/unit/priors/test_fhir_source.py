"""Priors from a real FHIR server (Medplum): the latest earlier chest radiograph of the patient with this MRN and its
report, pages followed, and each failure (refused token, 5xx, timeout, ...) raised as the type a retry needs,
through a fault-injecting proxy that also plays the SMART token endpoint.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.errors import PermanentError, TransientError
from hilum.common.fhir.identifiers import AI_ASSERTED_CODE, DICOM_DCM, V3_OBSERVATION_VALUE
from hilum.common.reported_findings import reported_findings
from hilum.common.settings import PriorsFhirServer
from hilum.common.study import PatientInfo, StudyInfo
from hilum.priors.fhir_source import (
    FhirServerSource,
    of_the_chest,
    parse_fhir_date_time,
    plain_text,
    refers_to,
    refers_to_study,
    search_instant,
)
from hilum.priors.service import Priors
from hilum.priors.sources import StoreSource
from hilum.reporting.draft import draft_report
from hilum.runtime.fhir_peer import FhirPeer
from hilum.runtime.ports import free_port
from hilum.v1 import messages_pb2
from tests.fault_proxy import DROP, Fault, FaultProxy, delay, respond
from tests.helpers import MRN_SYSTEM, record_study

OTHER_SYSTEM = "urn:oid:9.9.9.9"  # another hospital's MRNs: the same value there is another patient
MRN = f"PR-{uuid.uuid4().hex[:8]}"
NOW = datetime(2026, 11, 30, 10, 0)  # the current study, naive local time as DICOM gives it
CHEST = {"system": "http://snomed.info/sct", "code": "51185008", "display": "Thoracic structure"}
HAND = {"system": "http://snomed.info/sct", "code": "85562004", "display": "Hand structure"}
REPORT_TEXT = "FINDINGS: Small left pleural effusion.\nIMPRESSION: Small left effusion."
DIRECT = httpx.Client(timeout=10.0)  # straight to the peer, past the proxy: loading the records


@dataclass(frozen=True)
class Uids:
    """The Study Instance UIDs of the loaded ImagingStudies."""

    current: str
    hand: str
    prior: str
    older: str
    other_patient: str


def _create(peer: FhirPeer, resource: dict[str, Any]) -> str:
    response = DIRECT.post(f"{peer.base_url}/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return f"{resource['resourceType']}/{response.json()['id']}"


def _study(peer: FhirPeer, patient: str, uid: str, started: str, modality: str, site: dict[str, str]) -> str:
    dcm = {"system": DICOM_DCM, "code": modality}
    return _create(peer, {
        "resourceType": "ImagingStudy", "status": "available", "subject": {"reference": patient},
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}], "started": started,
        "modality": [dcm], "series": [{"uid": f"{uid}.1", "modality": dcm, "bodySite": site}]})


def _report(peer: FhirPeer, patient: str, study: str, effective: str, value: str, status: str = "final",
            ai: bool = False) -> None:
    _create(peer, {
        "resourceType": "DiagnosticReport", "status": status, "subject": {"reference": patient},
        "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]}, "effectiveDateTime": effective,
        "identifier": [{"system": "urn:test:report", "value": value}], "imagingStudy": [{"reference": study}],
        "conclusion": f"{value}: small left effusion.",
        "presentedForm": [{"contentType": "text/plain; charset=utf-8",
                           "data": base64.b64encode(f"{value} {REPORT_TEXT}".encode()).decode()}],
        **({"meta": {"security": [{"system": V3_OBSERVATION_VALUE, "code": AI_ASSERTED_CODE}]}} if ai else {})})


@pytest.fixture(scope="module")
def uids(fhir_peer: FhirPeer) -> Uids:
    """Two patients with the same MRN value in two systems; the first has, newest first: a study after the current
    one, the current one (the server has its start a minute earlier than DICOM), a hand radiograph, a CT, the
    prior, an older CR. The prior has a withdrawn report, one of Hilum's AI drafts and the radiologist's report.
    """
    uid = f"2.25.{uuid.uuid4().int}"
    ids = Uids(current=f"{uid}.1", hand=f"{uid}.2", prior=f"{uid}.3", older=f"{uid}.4", other_patient=f"{uid}.5")
    jane = _create(fhir_peer, {"resourceType": "Patient", "identifier": [{"system": MRN_SYSTEM, "value": MRN}],
                               "name": [{"family": "Doe", "given": ["Jane"]}]})
    john = _create(fhir_peer, {"resourceType": "Patient", "identifier": [{"system": OTHER_SYSTEM, "value": MRN}],
                               "name": [{"family": "Doe", "given": ["Jane"]}]})  # the same name: never matched on
    _study(fhir_peer, jane, f"{uid}.6", "2026-12-05T09:00:00Z", "DX", CHEST)
    _study(fhir_peer, jane, ids.current, "2026-11-30T09:59:00Z", "DX", CHEST)
    _study(fhir_peer, jane, ids.hand, "2026-08-01T09:00:00Z", "DX", HAND)
    _study(fhir_peer, jane, f"{uid}.7", "2026-07-01T09:00:00Z", "CT", CHEST)
    prior = _study(fhir_peer, jane, ids.prior, "2026-06-01T09:00:00Z", "DX", CHEST)
    older = _study(fhir_peer, jane, ids.older, "2025-01-10T08:00:00Z", "CR", CHEST)
    other = _study(fhir_peer, john, ids.other_patient, "2026-10-01T09:00:00Z", "DX", CHEST)
    _report(fhir_peer, jane, prior, "2026-06-03T08:00:00Z", "R-withdrawn", status="entered-in-error")
    _report(fhir_peer, jane, prior, "2026-06-01T12:00:00Z", "R-hilum-draft", status="preliminary", ai=True)
    _report(fhir_peer, jane, prior, "2026-06-01T11:00:00Z", "R-prior")
    _report(fhir_peer, jane, older, "2025-01-10T10:00:00Z", "R-older")
    _report(fhir_peer, john, other, "2026-10-01T10:00:00Z", "R-other")
    return ids


def _current(uids: Uids, started: datetime | None = NOW, issuer: str = "HOSP") -> StudyInfo:
    patient = PatientInfo(patient_id=MRN, issuer=issuer, name="DOE^JANE", birth_date=None, sex="F")
    return StudyInfo(study_instance_uid=uids.current, patient=patient, started=started, accession_number="",
                     description="")


def test_the_latest_earlier_chest_radiograph_is_the_prior_with_the_radiologists_report(
    fhir_peer: FhirPeer, uids: Uids
) -> None:
    prior = FhirServerSource(PriorsFhirServer(url=fhir_peer.base_url), MRN_SYSTEM).find_prior(_current(uids))

    assert prior is not None
    assert (prior.study_instance_uid, prior.started, prior.modality, prior.source) == (
        uids.prior, datetime(2026, 6, 1, 9, 0, tzinfo=UTC), "DX", "fhir")
    assert prior.reason == ("most recent CR/DX ImagingStudy before 2026-11-30T10:00:00 of the Patient with the "
                            f"study's MRN in {MRN_SYSTEM}, on {fhir_peer.base_url}")
    assert MRN not in prior.reason  # the reason travels with the comparison: no identifier in it
    assert prior.report is not None
    assert prior.report.identifier == "urn:test:report|R-prior" and prior.report.status == "final"
    assert prior.report.conclusion == "R-prior: small left effusion."
    assert prior.report.text == f"R-prior {REPORT_TEXT}"


def test_the_mrn_is_matched_in_its_own_system(fhir_peer: FhirPeer, uids: Uids) -> None:
    prior = FhirServerSource(PriorsFhirServer(url=fhir_peer.base_url), OTHER_SYSTEM).find_prior(_current(uids))
    assert prior is not None and prior.study_instance_uid == uids.other_patient
    assert prior.report is not None and prior.report.identifier == "urn:test:report|R-other"


def test_an_issuer_maps_to_its_system_and_an_unmapped_issuer_is_not_searched(fhir_peer: FhirPeer, uids: Uids) -> None:
    server = PriorsFhirServer(url=fhir_peer.base_url, issuer_systems={"HOSP": MRN_SYSTEM, "CLINIC": OTHER_SYSTEM})
    source = FhirServerSource(server, "urn:unused")
    found = [source.find_prior(_current(uids, issuer=issuer)) for issuer in ("HOSP", "CLINIC", "ELSEWHERE")]
    assert [prior.study_instance_uid if prior else None for prior in found] == [uids.prior, uids.other_patient, None]


def test_pages_are_followed_up_to_the_bound(fhir_peer: FhirPeer, uids: Uids) -> None:
    # One study a page: the current study, then the hand radiograph, then the prior (and the report on page 3).
    def find(max_pages: int) -> str | None:
        server = PriorsFhirServer(url=fhir_peer.base_url, page_size=1, max_pages=max_pages)
        prior = FhirServerSource(server, MRN_SYSTEM).find_prior(_current(uids))
        assert prior is None or (prior.report is not None and prior.report.identifier.endswith("R-prior"))
        return prior.study_instance_uid if prior else None

    assert find(max_pages=3) == uids.prior
    assert find(max_pages=2) is None


def test_no_earlier_study_no_patient_or_no_start_time_is_no_prior(fhir_peer: FhirPeer, uids: Uids) -> None:
    source = FhirServerSource(PriorsFhirServer(url=fhir_peer.base_url), MRN_SYSTEM)
    assert source.find_prior(_current(uids, started=datetime(2025, 1, 1, 8, 0))) is None
    assert source.find_prior(_current(uids, started=None)) is None
    stranger = StudyInfo(study_instance_uid="2.25.9", patient=PatientInfo("NOBODY-1", "", "DOE^JANE", None, ""),
                         started=NOW, accession_number="", description="")
    assert source.find_prior(stranger) is None


def test_a_study_before_the_prior_gets_the_older_one(fhir_peer: FhirPeer, uids: Uids) -> None:
    prior = FhirServerSource(PriorsFhirServer(url=fhir_peer.base_url), MRN_SYSTEM).find_prior(
        _current(uids, started=datetime(2026, 6, 1, 8, 0)))
    assert prior is not None and prior.study_instance_uid == uids.older and prior.modality == "CR"
    assert prior.report is not None and prior.report.identifier == "urn:test:report|R-older"


@pytest.fixture
def proxy(fhir_peer: FhirPeer) -> Iterator[FaultProxy]:
    with FaultProxy(fhir_peer.base_url) as faults:
        yield faults


def outcome_naming_the_mrn() -> bytes:
    return json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": f"unknown identifier {MRN}"}]}).encode()


@pytest.mark.parametrize(("fault", "error", "message"), [
    (respond(503), TransientError, "Patient search failed: HTTP 503"),
    (respond(429), TransientError, "Patient search failed: HTTP 429"),
    (DROP, TransientError, "Patient search dropped the connection without answering"),
    (delay(1.5), TransientError, "Patient search did not answer within 0.3 s"),
    (respond(400, outcome_naming_the_mrn()), PermanentError, "Patient search was refused: HTTP 400"),
    (respond(401), PermanentError, r"Patient search was refused: HTTP 401 \(credentials not accepted\)"),
])
def test_each_failure_is_raised_as_its_kind_without_the_mrn(
    proxy: FaultProxy, uids: Uids, fault: Fault, error: type[Exception], message: str
) -> None:
    proxy.script(fault)
    source = FhirServerSource(PriorsFhirServer(url=proxy.base_url, bearer_token="static", timeout_s=0.3), MRN_SYSTEM)
    with pytest.raises(error, match=message) as raised:
        source.find_prior(_current(uids))
    assert MRN not in str(raised.value) and type(raised.value) is error


def test_an_unreachable_server_is_transient(uids: Uids) -> None:
    source = FhirServerSource(PriorsFhirServer(url=f"http://127.0.0.1:{free_port()}/fhir/R4"), MRN_SYSTEM)
    with pytest.raises(TransientError, match=r"Patient search could not be reached: "):
        source.find_prior(_current(uids))


def test_a_failure_on_a_later_search_is_raised_too(proxy: FaultProxy, uids: Uids) -> None:
    proxy.script(Fault("pass"), respond(502))
    with pytest.raises(TransientError, match="ImagingStudy search failed: HTTP 502"):
        FhirServerSource(PriorsFhirServer(url=proxy.base_url), MRN_SYSTEM).find_prior(_current(uids))


def test_a_next_link_to_another_server_is_not_followed(proxy: FaultProxy, uids: Uids) -> None:
    # Through the proxy, the peer's next links name the peer itself: another host and port than the configured one.
    source = FhirServerSource(PriorsFhirServer(url=proxy.base_url, page_size=1), MRN_SYSTEM)
    with pytest.raises(PermanentError, match="next page link points at another server"):
        source.find_prior(_current(uids))


def token(value: str) -> Fault:
    """The token endpoint's answer with an access token valid for 5 minutes."""
    body = json.dumps({"access_token": value, "token_type": "bearer", "expires_in": 300}).encode()
    return respond(200, body, {"Content-Type": "application/json"})


@pytest.fixture
def smart_server(proxy: FaultProxy, tmp_path: Path) -> PriorsFhirServer:
    """The FHIR server behind the proxy, with SMART Backend Services whose token endpoint the proxy plays."""
    pem = tmp_path / "hilum.pem"
    pem.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return PriorsFhirServer(url=proxy.base_url, token_url=f"{proxy.base_url}/auth/token", client_id="hilum",
                            private_key_file=pem, timeout_s=2.0)


def test_a_refused_token_is_renewed_once_and_then_kept(
    proxy: FaultProxy, smart_server: PriorsFhirServer, uids: Uids
) -> None:
    source = FhirServerSource(smart_server, MRN_SYSTEM)
    proxy.script(token("first"), respond(401), token("second"))
    seen = proxy.requests_seen
    prior = source.find_prior(_current(uids))
    assert prior is not None and prior.study_instance_uid == uids.prior
    assert proxy.requests_seen - seen == 6  # token, 401, token, then Patient, ImagingStudy, DiagnosticReport
    seen = proxy.requests_seen
    assert source.find_prior(_current(uids)) == prior
    assert proxy.requests_seen - seen == 3  # the token is kept


def test_a_401_with_a_fresh_token_is_permanent(proxy: FaultProxy, smart_server: PriorsFhirServer, uids: Uids) -> None:
    proxy.script(token("first"), respond(401), token("second"), respond(401))
    with pytest.raises(PermanentError, match="HTTP 401 .*even with a fresh token"):
        FhirServerSource(smart_server, MRN_SYSTEM).find_prior(_current(uids))
    assert proxy.pending() == 0


@pytest.mark.parametrize(("answer", "error", "message"), [
    (respond(400, b'{"error": "invalid_client"}'), PermanentError, "refused Hilum: HTTP 400 invalid_client"),
    (respond(503), TransientError, "token endpoint answered HTTP 503"),
])
def test_a_token_endpoint_failure_is_raised_as_its_kind(
    proxy: FaultProxy, smart_server: PriorsFhirServer, uids: Uids, answer: Fault, error: type[Exception], message: str
) -> None:
    proxy.script(answer)
    with pytest.raises(error, match=message):
        FhirServerSource(smart_server, MRN_SYSTEM).find_prior(_current(uids))


def test_a_source_needs_a_server() -> None:
    with pytest.raises(ValueError, match="priors.fhir_server.url is empty"):
        FhirServerSource(PriorsFhirServer(), MRN_SYSTEM)


def test_the_search_instant_is_utc_when_the_offset_is_known_else_local() -> None:
    assert search_instant(datetime(2026, 11, 30, 10, 0)) == "2026-11-30T10:00:00"
    assert search_instant(datetime.fromisoformat("2026-11-30T10:00:00+01:00")) == "2026-11-30T09:00:00Z"


def test_fhir_dates_and_date_times_are_read_to_the_day_at_least() -> None:
    assert parse_fhir_date_time("2026-06-01") == date(2026, 6, 1)
    assert parse_fhir_date_time("2026-06-01T09:00:00.250+02:00") == datetime.fromisoformat(
        "2026-06-01T09:00:00.250+02:00")
    assert parse_fhir_date_time("2026-06") is None and parse_fhir_date_time("") is None


def test_plain_text_is_decoded_in_its_charset_and_anything_else_is_empty() -> None:
    latin = base64.b64encode("Épanchement".encode("latin-1")).decode()
    assert plain_text({"contentType": "text/plain; charset=ISO-8859-1", "data": latin}) == "Épanchement"
    assert plain_text({"contentType": "text/plain", "data": base64.b64encode(b"FINDINGS").decode()}) == "FINDINGS"
    assert plain_text({"contentType": "text/html", "data": latin}) == ""
    assert plain_text({"contentType": "text/plain", "data": "not base64!"}) == ""
    assert plain_text({"contentType": "text/plain", "url": "https://fhir.example/Binary/1"}) == ""


def test_references_and_body_sites() -> None:
    assert refers_to("https://fhir.example/R4/Patient/7/_history/2", "Patient/7")
    assert not refers_to("Patient/77", "Patient/7")
    assert refers_to_study({"identifier": {"system": "urn:dicom:uid", "value": "urn:oid:2.25.3"}}, "ImagingStudy/x",
                           "2.25.3")
    assert of_the_chest({"series": [{"uid": "1"}]})  # no body site named: kept
    assert of_the_chest({"series": [{"bodySite": {"code": "CHEST"}}]})
    assert not of_the_chest({"series": [{"bodySite": HAND}]})


def _stage_findings(uid: str) -> messages_pb2.StudyFindings:
    """The current study's model findings: no effusion now, a pneumothorax the prior's report does not mention."""
    return messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=uid),
        model=messages_pb2.ModelInfo(name="cxr_findings", version="1.0.0"),
        findings=[
            messages_pb2.Finding(code="effusion", display="Effusion", state=messages_pb2.FINDING_STATE_ABSENT),
            messages_pb2.Finding(code="pneumothorax", display="Pneumothorax",
                                 state=messages_pb2.FINDING_STATE_PRESENT),
        ])


def test_the_priors_stage_compares_with_what_the_prior_report_in_the_fhir_server_says(
    fhir_peer: FhirPeer, uids: Uids, sqlite_sessions: sessionmaker[Session]
) -> None:
    patient = PatientInfo(patient_id=MRN, issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
    record_study(sqlite_sessions, uids.current, patient, NOW, view_positions=("PA",))
    sources = [StoreSource(sqlite_sessions), FhirServerSource(PriorsFhirServer(url=fhir_peer.base_url), MRN_SYSTEM)]
    comparison = Priors(sqlite_sessions, sources=sources).compare(_stage_findings(uids.current))
    # Hilum's store holds no earlier study of the patient: the FHIR server's prior, read from its report.
    prior = comparison.prior
    assert (prior.study_instance_uid, prior.study_date, prior.source, prior.from_report) == (
        uids.prior, "20260601", "fhir", True)
    assert [(f.code, f.state) for f in prior.findings] == [("effusion", messages_pb2.FINDING_STATE_PRESENT)]
    assert [(c.code, c.change) for c in comparison.changes] == [
        ("effusion", messages_pb2.CHANGE_RESOLVED), ("pneumothorax", messages_pb2.CHANGE_NOT_COMPARED)]
    draft = draft_report(reported_findings(comparison))
    assert draft.comparison == ("Chest radiograph of 2026-06-01, as its radiology report describes it; change is "
                                "stated against that report.")


def test_a_prior_source_that_fails_is_passed_over(
    uids: Uids, sqlite_sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)  # whatever level an earlier test (a Celery test worker) left the root at
    patient = PatientInfo(patient_id=MRN, issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
    record_study(sqlite_sessions, uids.current, patient, NOW, view_positions=("PA",))
    down = FhirServerSource(PriorsFhirServer(url=f"http://127.0.0.1:{free_port()}/fhir", timeout_s=2), MRN_SYSTEM)
    comparison = Priors(sqlite_sessions, sources=[down]).compare(_stage_findings(uids.current))
    assert not comparison.HasField("prior") and list(comparison.changes) == []
    (warning,) = [r for r in caplog.records if r.getMessage() == "prior source failed; compared without it"]
    assert (warning.prior_source, warning.error_type) == ("fhir", "TransientError")
    assert MRN not in caplog.text and uids.current not in caplog.text
