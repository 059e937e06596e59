"""Every CDS Hooks call that reads a patient's result is an AuditEvent (the EHR, the patient, the hook, the report
shown), pushed onto the audit spool before the cards are answered and moved into the database by the drain; a call
whose record cannot be pushed is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.spool import SPOOL_KEY, drain_spool
from hilum.audit.trail import AuditTrail
from hilum.cds.app import create_app
from hilum.cds.services import Hook
from hilum.common.cds_view import CdsView, write_view
from hilum.runtime.local_issuer import LocalIssuer
from tests.helpers import audit_events, audited_patient_ids
from tests.unit.cds.conftest import SignedByEhr
from tests.unit.cds.hook_bodies import (
    EHR_PATIENT_ID,
    MRN_SYSTEM,
    NOW,
    PUBLIC_URL,
    hook_request,
    prefetched,
    service_url,
)


@pytest.fixture
def audited(redis_client: redis.Redis, issuer: LocalIssuer,
            sqlite_sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    redis_client.delete(SPOOL_KEY)
    app = create_app(redis_client, clock=lambda: NOW, patient_identifier_system=MRN_SYSTEM,
                     trusted_issuers=[issuer.trusted_issuer], public_url=PUBLIC_URL, sessions=sqlite_sessions,
                     audit=AuditTrail("cds", patient_system=MRN_SYSTEM))
    with TestClient(app) as test_client:
        test_client.auth = SignedByEhr(issuer)
        yield test_client


def test_a_call_that_shows_a_result_names_the_ehr_patient_hook_and_report(
        audited: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView],
        sqlite_sessions: sessionmaker[Session], issuer: LocalIssuer) -> None:
    view = view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM)
    write_view(redis_client, view)
    body = hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0042")))
    assert audited.post(service_url(Hook.PATIENT_VIEW), json=body).json()["cards"]
    assert audited.post(service_url(Hook.PATIENT_VIEW),
                        json=hook_request(prefetch=prefetched((MRN_SYSTEM, "MRN-0099")))).json() == {"cards": []}
    assert redis_client.llen(SPOOL_KEY) == 2  # recorded before the answers
    assert drain_spool(redis_client, sqlite_sessions, AuditTrail("audit")) == 2
    shown, none = audit_events(sqlite_sessions, "110110")
    assert shown["agent"][0]["who"]["identifier"]["value"] == issuer.iss and shown["agent"][0]["requestor"]
    assert shown["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert audited_patient_ids(shown) == ["MRN-0042"] and audited_patient_ids(none) == ["MRN-0099"]
    entities = [entity.get("what") for entity in shown["entity"]]
    assert {"reference": f"DiagnosticReport/{view.diagnostic_report_id}"} in entities
    details = {d["type"]: d["valueString"] for d in shown["entity"][-1]["detail"]}
    assert details == {"hook": "hilum-cxr-patient-view", "ehr-patient-id": EHR_PATIENT_ID, "result": "shown"}
    assert {d["type"]: d["valueString"] for d in none["entity"][-1]["detail"]}["result"] == "none"


def test_a_call_that_reads_no_patient_is_not_audited(audited: TestClient, redis_client: redis.Redis) -> None:
    unrelated = hook_request(Hook.ORDER_SELECT, context={"draftOrders": {"resourceType": "Bundle", "entry": []}})
    assert audited.post(service_url(Hook.ORDER_SELECT), json=unrelated).status_code == 200
    assert redis_client.llen(SPOOL_KEY) == 0


def test_a_call_whose_audit_record_cannot_be_pushed_gets_no_cards(
        audited: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView]) -> None:
    write_view(redis_client, view_factory(patient_id="MRN-0042", patient_system=MRN_SYSTEM))
    redis_client.config_set("maxmemory", "1")  # Redis refuses every write (noeviction), still answers reads
    try:
        refused = audited.post(service_url(Hook.PATIENT_VIEW), json=hook_request(prefetch=prefetched(
            (MRN_SYSTEM, "MRN-0042"))))
    finally:
        redis_client.config_set("maxmemory", "0")
    assert refused.status_code == 503 and "cards" not in refused.json()
    assert redis_client.llen(SPOOL_KEY) == 0
