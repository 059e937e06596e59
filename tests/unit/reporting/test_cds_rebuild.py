"""`hilum cds rebuild` over a real (SQLite) store and a real Redis: the views reporting wrote come back as they were,
and a withdrawn report's does not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.cds_view import KEY_PREFIX, read_latest
from hilum.common.settings import FhirSection
from hilum.common.study import PatientInfo
from hilum.fhir_api.store import set_status
from hilum.reporting.cds_rebuild import rebuild_views
from hilum.reporting.service import Reporting
from tests.helpers import demo_comparison, record_study

SYSTEM = FhirSection().patient_identifier_system
ANA, BEN, CID = (PatientInfo(patient_id=mrn, issuer="", name="", birth_date=None, sex="")
                 for mrn in ("R-ANA", "R-BEN", "R-CID"))


def test_the_cache_is_written_again_from_the_stored_reports(
        sqlite_sessions: sessionmaker[Session], redis_client: redis_lib.Redis, tmp_path: Path) -> None:
    reporting = Reporting(sqlite_sessions, tmp_path / "out", redis_client, FhirSection())
    for uid, patient, day in (("5.1", ANA, 1), ("5.2", ANA, 3), ("5.3", BEN, 2), ("5.4", CID, 2)):
        record_study(sqlite_sessions, uid, patient, datetime(2026, 11, day, 9, 0), view_positions=("PA",))
        published = reporting.publish(demo_comparison(uid))
    with sqlite_sessions.begin() as session:  # Cid's only report was withdrawn, and with it its view
        set_status(session, "DiagnosticReport", published.diagnostic_report_id, "cancelled",
                   datetime.now(UTC))
    before = {mrn: read_latest(redis_client, SYSTEM, mrn) for mrn in ("R-ANA", "R-BEN")}
    for key in redis_client.scan_iter(f"{KEY_PREFIX}*"):
        redis_client.delete(key)
    told: list[tuple[int, int]] = []

    assert rebuild_views(sqlite_sessions, redis_client, SYSTEM, lambda done, total: told.append((done, total))) == 3
    assert told[-1] == (4, 4)
    after = {mrn: read_latest(redis_client, SYSTEM, mrn) for mrn in ("R-ANA", "R-BEN")}
    assert after["R-ANA"] is not None and after["R-ANA"].study_instance_uid == "5.2"  # the newer study's, kept
    assert after == before
    assert read_latest(redis_client, SYSTEM, "R-CID") is None
