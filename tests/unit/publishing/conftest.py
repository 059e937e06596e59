"""A study published by reporting with planned deliveries: what the publishing tests deliver."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.destinations import Destination
from hilum.common.settings import FhirSection
from hilum.common.study import PatientInfo
from hilum.reporting.service import Reporting
from hilum.v1 import messages_pb2
from tests.helpers import demo_comparison, record_study

PATIENT = PatientInfo(patient_id="P9", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")


@pytest.fixture
def publish_study(
    sqlite_sessions: sessionmaker[Session], tmp_path: Path, redis_client: redis_lib.Redis
) -> Callable[..., messages_pb2.PublishResult]:
    """Record and publish a study; its deliveries are planned for `destinations` (all three by default)."""

    def publish(uid: str, destinations: tuple[Destination, ...] = tuple(Destination)) -> messages_pb2.PublishResult:
        record_study(sqlite_sessions, uid, PATIENT, datetime(2025, 2, 18, 10, 5), view_positions=("PA",))
        reporting = Reporting(sqlite_sessions, tmp_path / "out", redis_client, FhirSection(), destinations,
                              clock=lambda: datetime(2025, 2, 18, 12, 0, tzinfo=UTC))
        return reporting.publish(demo_comparison(uid))

    return publish
