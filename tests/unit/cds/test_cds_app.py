"""The CDS Hooks HTTP service against a real Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import redis
from fastapi import HTTPException
from fastapi.testclient import TestClient

from hilum.cds.app import FEEDBACK_KEY, SERVICE_ID, authorize, create_app
from hilum.common.cds_view import CdsView, write_view

SERVICE_URL = f"/cds-services/{SERVICE_ID}"
NOW = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
def client(redis_client: redis.Redis) -> Iterator[TestClient]:
    with TestClient(create_app(redis_client, clock=lambda: NOW)) as test_client:
        yield test_client


def hook_request(patient_id: str = "ehr-123", **extra: Any) -> dict[str, Any]:
    """A minimal valid patient-view request."""
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": patient_id},
        **extra,
    }


def prefetched_patient(*identifier_values: str) -> dict[str, Any]:
    """prefetch with a FHIR Patient carrying these identifier values."""
    return {
        "patient": {
            "resourceType": "Patient",
            "id": "ehr-123",
            "identifier": [
                {"system": f"urn:oid:1.2.{i}", "value": v} for i, v in enumerate(identifier_values)
            ],
        }
    }


def test_discovery(client: TestClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    (service,) = response.json()["services"]
    assert service["id"] == SERVICE_ID
    assert service["hook"] == "patient-view"
    assert service["title"] and service["description"]
    assert service["prefetch"] == {"patient": "Patient/{{context.patientId}}"}


def test_no_result_gives_an_empty_card_list(client: TestClient) -> None:
    response = client.post(SERVICE_URL, json=hook_request())
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_card_for_the_context_patient(
    client: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    write_view(redis_client, view_factory(patient_id="ehr-123"))
    response = client.post(SERVICE_URL, json=hook_request())
    assert response.status_code == 200
    assert "null" not in response.text
    (card,) = response.json()["cards"]
    assert card["indicator"] == "critical"
    assert card["summary"].startswith("DEMO")
    assert uuid.UUID(card["uuid"])
    assert "suggestions" not in card and "links" not in card


def test_card_found_through_a_prefetched_patient_identifier(
    client: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    write_view(redis_client, view_factory(patient_id="MRN-0042"))
    body = hook_request(prefetch=prefetched_patient("SSN-x", "MRN-0042"))
    (card,) = client.post(SERVICE_URL, json=body).json()["cards"]
    assert "Pneumothorax" in card["summary"]


def test_the_most_recent_study_across_identifiers_wins(
    client: TestClient, redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    write_view(redis_client, view_factory(patient_id="ehr-123", study_date=date(2023, 1, 1), findings=[]))
    write_view(redis_client, view_factory(patient_id="MRN-0042", study_date=date(2024, 3, 5)))
    body = hook_request(prefetch=prefetched_patient("MRN-0042"))
    (card,) = client.post(SERVICE_URL, json=body).json()["cards"]
    assert "2024-03-05" in card["summary"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "context": {}}, "context.patientId"),
        ({"hook": "order-sign", "hookInstance": str(uuid.uuid4()), "context": {"patientId": "p"}}, "hook"),
        (
            {"hook": "patient-view", "hookInstance": "not-a-uuid", "context": {"patientId": "p"}},
            "hookInstance",
        ),
        (
            {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "context": {"patientId": "p"},
                "prefetch": {"patient": {"resourceType": "Observation"}},
            },
            "prefetch.patient",
        ),
    ],
)
def test_bad_request_is_400_with_a_clear_message(
    client: TestClient, body: dict[str, Any], where: str
) -> None:
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["error"] == "invalid CDS Hooks request"
    assert any(where in detail for detail in payload["details"])


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(SERVICE_URL, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_bad_request_does_not_echo_the_access_token(client: TestClient) -> None:
    body = hook_request(fhirAuthorization={"access_token": "secret-token-value"})
    body["context"].pop("patientId")
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 400
    assert "secret-token-value" not in response.text


def test_feedback_is_stored(client: TestClient, redis_client: redis.Redis) -> None:
    card = str(uuid.uuid4())
    body = {
        "feedback": [
            {"card": card, "outcome": "accepted", "outcomeTimestamp": "2024-03-05T09:45:00Z"},
            {
                "card": card,
                "outcome": "overridden",
                "outcomeTimestamp": "2024-03-05T09:46:00Z",
                "overrideReason": {
                    "reason": {"system": "https://hilum.dev/override", "code": "disagree"},
                    "userComment": "No pneumothorax on review",
                },
            },
        ]
    }
    response = client.post(f"{SERVICE_URL}/feedback", json=body)
    assert response.status_code == 200
    assert response.json() == {"stored": 2}
    stored = [json.loads(item) for item in redis_client.lrange(FEEDBACK_KEY, 0, -1)]
    assert [s["feedback"]["outcome"] for s in stored] == ["accepted", "overridden"]
    assert all(s["feedback"]["card"] == card and s["service"] == SERVICE_ID for s in stored)
    assert stored[0]["received_at"].startswith("2024-03-05T10:00:00")
    assert stored[1]["feedback"]["overrideReason"]["reason"]["code"] == "disagree"


@pytest.mark.parametrize(
    "body",
    [
        {"feedback": []},
        {
            "feedback": [
                {"card": "not-a-uuid", "outcome": "accepted", "outcomeTimestamp": "2024-03-05T09:45:00Z"}
            ]
        },
        {
            "feedback": [
                {"card": str(uuid.uuid4()), "outcome": "ignored", "outcomeTimestamp": "2024-03-05T09:45:00Z"}
            ]
        },
        {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted"}]},
    ],
)
def test_bad_feedback_is_400_and_nothing_is_stored(
    client: TestClient, redis_client: redis.Redis, body: dict[str, Any]
) -> None:
    assert client.post(f"{SERVICE_URL}/feedback", json=body).status_code == 400
    assert redis_client.llen(FEEDBACK_KEY) == 0


def test_authorize_guards_every_route(redis_client: redis.Redis) -> None:
    def deny() -> None:
        raise HTTPException(status_code=401, detail="unauthorized")

    app = create_app(redis_client)
    app.dependency_overrides[authorize] = deny
    with TestClient(app) as denied:
        assert denied.get("/cds-services").status_code == 401
        assert denied.post(SERVICE_URL, json=hook_request()).status_code == 401
