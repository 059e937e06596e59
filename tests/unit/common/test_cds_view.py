"""The CDS view cache in (real) Redis: hashed keys and latest-study-wins ordering."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time

import redis

from hilum.common.cds_view import (
    KEY_PREFIX,
    CdsFinding,
    CdsView,
    patient_key,
    read_latest,
    withdraw_view,
    write_view,
)
from hilum.common.reported_findings import (
    ChangeSincePrior,
    FindingStatus,
    Laterality,
    ModelProvenance,
    ReportedFinding,
)
from tests.helpers import REFERENCE_KEY

MRN_SYSTEM = "urn:oid:1.2.36.146.595.217.0.1"


def test_key_is_the_keyed_digest_of_system_and_patient_id() -> None:
    key = patient_key(MRN_SYSTEM, "MRN-0042")
    digest = hmac.new(REFERENCE_KEY.encode(), f"{MRN_SYSTEM}|MRN-0042".encode(), hashlib.sha256).hexdigest()
    assert key == KEY_PREFIX + digest  # without the key, no guessed MRN can be tested against it
    assert key != KEY_PREFIX + hashlib.sha256(f"{MRN_SYSTEM}|MRN-0042".encode()).hexdigest()
    assert "MRN-0042" not in key
    assert patient_key("urn:oid:9.9", "MRN-0042") != key  # the same value in another system: another patient


def test_round_trip(redis_client: redis.Redis, view_factory: Callable[..., CdsView]) -> None:
    view = view_factory()
    assert write_view(redis_client, view) is True
    assert read_latest(redis_client, MRN_SYSTEM, "MRN-0042") == view
    assert all(b"MRN-0042" not in key for key in redis_client.keys("*"))


def test_unknown_patient_has_no_view(redis_client: redis.Redis) -> None:
    assert read_latest(redis_client, MRN_SYSTEM, "nobody") is None


def test_late_report_of_an_older_study_does_not_replace_the_newer_study(
    redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    newer = view_factory(study_instance_uid="2.2", study_date=date(2024, 3, 5))
    older = view_factory(
        study_instance_uid="1.1", study_date=date(2024, 1, 1), published_at=datetime(2024, 3, 6, tzinfo=UTC)
    )
    assert write_view(redis_client, newer) is True
    assert write_view(redis_client, older) is False
    latest = read_latest(redis_client, MRN_SYSTEM, "MRN-0042")
    assert latest is not None and latest.study_instance_uid == "2.2"


def test_newer_study_replaces_the_older(
    redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    write_view(redis_client, view_factory(study_instance_uid="1.1", study_date=date(2024, 1, 1)))
    write_view(redis_client, view_factory(study_instance_uid="2.2", study_date=date(2024, 3, 5)))
    latest = read_latest(redis_client, MRN_SYSTEM, "MRN-0042")
    assert latest is not None and latest.study_instance_uid == "2.2"


def test_study_time_orders_studies_of_the_same_day(
    redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    afternoon = view_factory(study_instance_uid="2.2", study_time=time(15, 0))
    morning = view_factory(
        study_instance_uid="1.1", study_time=time(7, 0), published_at=datetime(2024, 3, 5, 16, 0, tzinfo=UTC)
    )
    write_view(redis_client, afternoon)
    assert write_view(redis_client, morning) is False
    latest = read_latest(redis_client, MRN_SYSTEM, "MRN-0042")
    assert latest is not None and latest.study_instance_uid == "2.2"


def test_republishing_the_same_study_replaces_its_view(
    redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    write_view(redis_client, view_factory(model_version="1.0.0"))
    later = view_factory(model_version="1.1.0", published_at=datetime(2024, 3, 6, tzinfo=UTC))
    assert write_view(redis_client, later) is True
    latest = read_latest(redis_client, MRN_SYSTEM, "MRN-0042")
    assert latest is not None and latest.model_version == "1.1.0"


def test_patients_do_not_share_views(redis_client: redis.Redis, view_factory: Callable[..., CdsView]) -> None:
    write_view(redis_client, view_factory(patient_id="A"))
    write_view(redis_client, view_factory(patient_id="B", study_instance_uid="9.9"))
    a, b = read_latest(redis_client, MRN_SYSTEM, "A"), read_latest(redis_client, MRN_SYSTEM, "B")
    assert a is not None and b is not None
    assert (a.study_instance_uid, b.study_instance_uid) == ("1.2.826.0.1.3680043.8.498.1001", "9.9")


def test_a_finding_carries_its_reported_status_and_change() -> None:
    reported = ReportedFinding(
        code="effusion",
        display="Pleural effusion",
        snomed_code="60046008",
        status=FindingStatus.UNCERTAIN,
        probability=0.45,
        threshold=0.5,
        laterality=Laterality.LEFT,
        change=ChangeSincePrior.NOT_COMPARED,
        model=ModelProvenance(name="cxr_findings", version="demo-untrained", demo_weights=True),
    )
    assert CdsFinding.of(reported) == CdsFinding(
        code="effusion",
        display="Pleural effusion (left)",
        status=FindingStatus.UNCERTAIN,
        probability=0.45,
        change=ChangeSincePrior.NOT_COMPARED,
    )


def test_a_view_stored_before_findings_had_a_status_reads_them_as_present(
    redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    stored = view_factory().model_dump(mode="json")
    for finding in stored["findings"]:
        del finding["status"]
    redis_client.hset(patient_key(MRN_SYSTEM, "MRN-0042"), mapping={"rank": "0", "view": json.dumps(stored)})
    latest = read_latest(redis_client, MRN_SYSTEM, "MRN-0042")
    assert latest is not None
    assert [f.status for f in latest.findings] == [FindingStatus.PRESENT, FindingStatus.PRESENT]


def test_a_cancelled_report_is_withdrawn_only_while_it_is_the_one_shown(
    redis_client: redis.Redis, view_factory: Callable[..., CdsView]
) -> None:
    view = view_factory(diagnostic_report_id="report-1")
    write_view(redis_client, view)
    assert not withdraw_view(redis_client, view.patient_system, view.patient_id, "report-0")  # an older report
    assert read_latest(redis_client, view.patient_system, view.patient_id) == view
    assert withdraw_view(redis_client, view.patient_system, view.patient_id, "report-1")
    assert read_latest(redis_client, view.patient_system, view.patient_id) is None
    assert not withdraw_view(redis_client, view.patient_system, view.patient_id, "report-1")
