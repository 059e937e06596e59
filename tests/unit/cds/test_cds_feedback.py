"""Card feedback: stored once per item however often the EHR repeats it, readable for monitoring, and what
acknowledges a card."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from hilum import cli
from hilum.cds.cards import OVERRIDE_REASONS
from hilum.cds.feedback import (
    ACKNOWLEDGED_KEY,
    FEEDBACK_KEY,
    FeedbackRequest,
    acknowledged,
    item_digest,
    outcome_counts,
    read_feedback,
    store_feedback,
)
from hilum.cds.services import Hook, service_id
from hilum.runtime.local_issuer import LocalIssuer
from tests.unit.cds.hook_bodies import PUBLIC_URL, service_url

FEEDBACK_URL = f"{service_url(Hook.PATIENT_VIEW)}/feedback"
ACKNOWLEDGED = OVERRIDE_REASONS[0].model_dump(exclude_none=True)
RECEIVED = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)


def accepted(card: str, at: str = "2024-03-05T09:45:00Z") -> dict[str, Any]:
    return {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": str(uuid.uuid4())}],
            "outcomeTimestamp": at}


def overridden(card: str, at: str = "2024-03-05T09:46:00Z", **reason: Any) -> dict[str, Any]:
    return {"card": card, "outcome": "overridden", "outcomeTimestamp": at, **reason}


def test_feedback_is_stored_in_arrival_order(client: TestClient, redis_client: redis.Redis) -> None:
    card = str(uuid.uuid4())
    body = {"feedback": [accepted(card), overridden(card, overrideReason={
        "reason": ACKNOWLEDGED, "userComment": "Known, chest drain planned"})]}
    response = client.post(FEEDBACK_URL, json=body)
    assert response.status_code == 200
    assert response.json() == {"stored": 2, "repeated": 0}
    stored = [json.loads(item) for item in redis_client.lrange(FEEDBACK_KEY, 0, -1)]
    assert [s["feedback"]["outcome"] for s in stored] == ["accepted", "overridden"]
    assert all(s["feedback"]["card"] == card and s["service"] == service_id(Hook.PATIENT_VIEW) for s in stored)
    assert stored[0]["received_at"].startswith("2024-03-05T10:00:00")
    assert stored[1]["feedback"]["overrideReason"]["reason"]["code"] == "acknowledged"


def test_a_repeated_batch_is_not_stored_twice(client: TestClient, redis_client: redis.Redis) -> None:
    card = str(uuid.uuid4())
    body = {"feedback": [accepted(card), overridden(card)]}
    assert client.post(FEEDBACK_URL, json=body).json() == {"stored": 2, "repeated": 0}
    assert client.post(FEEDBACK_URL, json=body).json() == {"stored": 0, "repeated": 2}
    body["feedback"].append(overridden(card, at="2024-03-05T11:00:00Z"))  # a later outcome is new
    assert client.post(FEEDBACK_URL, json=body).json() == {"stored": 1, "repeated": 2}
    assert redis_client.llen(FEEDBACK_KEY) == 3


def test_one_instant_written_in_two_zones_is_one_item(redis_client: redis.Redis) -> None:
    card = str(uuid.uuid4())
    first = FeedbackRequest.model_validate({"feedback": [overridden(card, at="2024-03-05T09:46:00Z")]})
    again = FeedbackRequest.model_validate({"feedback": [overridden(card, at="2024-03-05T10:46:00+01:00")]})
    assert item_digest("s", first.feedback[0]) == item_digest("s", again.feedback[0])
    assert store_feedback(redis_client, "s", first, RECEIVED).stored == 1
    assert store_feedback(redis_client, "s", again, RECEIVED).repeated == 1


def test_the_same_item_for_another_service_is_another_item() -> None:
    item = FeedbackRequest.model_validate({"feedback": [overridden(str(uuid.uuid4()))]}).feedback[0]
    assert item_digest("a", item) != item_digest("b", item)


@pytest.mark.parametrize("body", [
    {"feedback": []},
    {"feedback": [accepted("not-a-uuid")]},
    {"feedback": [{**overridden(str(uuid.uuid4())), "outcome": "ignored"}]},
    {"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden"}]},  # no outcomeTimestamp
    {"feedback": [overridden(str(uuid.uuid4()), at="2024-03-05T09:46:00")]},  # no time zone
    {"feedback": [{**accepted(str(uuid.uuid4())), "acceptedSuggestions": []}]},  # accepted what?
    {"feedback": [{**overridden(str(uuid.uuid4())), "acceptedSuggestions": [{"id": "s"}]}]},
    {"feedback": [overridden(str(uuid.uuid4()), overrideReason={
        "reason": {"system": "https://elsewhere.example/reasons", "code": "acknowledged"}})]},  # not declared
    {"feedback": [overridden(str(uuid.uuid4()), overrideReason={"userComment": ""})]},
])
def test_bad_feedback_is_400_and_nothing_is_stored(
    client: TestClient, redis_client: redis.Redis, body: dict[str, Any]
) -> None:
    response = client.post(FEEDBACK_URL, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid CDS Hooks request"
    assert redis_client.llen(FEEDBACK_KEY) == 0


@pytest.mark.parametrize("hook", list(Hook))
def test_every_service_has_a_feedback_endpoint(client: TestClient, redis_client: redis.Redis, hook: Hook) -> None:
    response = client.post(f"{service_url(hook)}/feedback", json={"feedback": [overridden(str(uuid.uuid4()))]})
    assert response.json() == {"stored": 1, "repeated": 0}
    assert read_feedback(redis_client)[0].service == service_id(hook)


def test_feedback_signed_for_the_feedback_url_is_accepted(client: TestClient, issuer: LocalIssuer) -> None:
    token = issuer.token(f"{PUBLIC_URL}{FEEDBACK_URL}")
    response = client.post(FEEDBACK_URL, json={"feedback": [overridden(str(uuid.uuid4()))]},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_feedback_signed_for_another_service_is_refused(client: TestClient, issuer: LocalIssuer) -> None:
    token = issuer.token(f"{PUBLIC_URL}{service_url(Hook.ORDER_SIGN)}")
    response = client.post(FEEDBACK_URL, json={"feedback": [overridden(str(uuid.uuid4()))]},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_feedback_on_a_card_acknowledges_that_card_only(redis_client: redis.Redis) -> None:
    card, other = str(uuid.uuid4()), str(uuid.uuid4())
    assert not acknowledged(redis_client, [card, other])
    store_feedback(redis_client, "s", FeedbackRequest.model_validate({"feedback": [overridden(card)]}), RECEIVED)
    assert acknowledged(redis_client, [other, card])
    assert not acknowledged(redis_client, [other])
    assert redis_client.smembers(ACKNOWLEDGED_KEY) == {card.encode()}


def test_monitoring_reads_counts_and_the_latest_records(redis_client: redis.Redis) -> None:
    card = str(uuid.uuid4())
    items = [accepted(card), overridden(card, overrideReason={"reason": ACKNOWLEDGED}),
             overridden(card, at="2024-03-05T12:00:00Z", overrideReason={"reason": ACKNOWLEDGED}),
             overridden(card, at="2024-03-05T13:00:00Z", overrideReason={"userComment": "not now"})]
    store_feedback(redis_client, "svc", FeedbackRequest.model_validate({"feedback": items}), RECEIVED)
    assert outcome_counts(read_feedback(redis_client)) == {
        ("svc", "accepted", "-"): 1, ("svc", "overridden", "acknowledged"): 2, ("svc", "overridden", "-"): 1}
    latest = read_feedback(redis_client, last=1)
    assert [r.feedback.overrideReason.userComment for r in latest if r.feedback.overrideReason] == ["not now"]


def test_the_cli_prints_the_counts(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    where = redis_client.connection_pool.connection_kwargs
    monkeypatch.setenv("HILUM_REDIS__URL", f"redis://{where['host']}:{where['port']}/{where.get('db', 0)}")
    assert cli.main(["cds", "feedback"]) == 0
    assert capsys.readouterr().out == "no CDS card feedback stored\n"
    card = str(uuid.uuid4())
    store_feedback(redis_client, "svc", FeedbackRequest.model_validate({"feedback": [accepted(card)]}), RECEIVED)
    assert cli.main(["cds", "feedback", "--last", "1"]) == 0
    first, record = capsys.readouterr().out.splitlines()
    assert first.split() == ["1", "svc", "accepted", "-"]
    assert json.loads(record)["feedback"]["card"] == card
