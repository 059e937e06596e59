"""Nothing accepted is lost to a broker outage: with Redis stopped, instances are still accepted and
stored (the doors never need the broker); once Redis is back, every study is reported, once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hilum.common import study_state
from hilum.common.connections import open_sessions
from hilum.common.db.models import ReportRow
from hilum.ingestion.client import IngestionClient
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES

pytestmark = pytest.mark.integration


def test_a_redis_outage_delays_studies_but_loses_none(stack: EmbeddedStack, tmp_path: Path) -> None:
    files = []
    for index, spec in enumerate(SAMPLE_STUDIES):
        # Patients of their own, so that no study waits for another's prior.
        own = dataclasses.replace(spec, rows=256, columns=200, patient_id=f"SYN-OUTAGE-{index}")
        files.append(write_study(own, tmp_path / "in" / str(index)))
    grpc = stack.settings.grpc
    stack.redis.stop()
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        results = client.submit_files(files)  # accepted and stored with the broker down
        assert all(r.accepted for r in results), [r.rejection.reason for r in results]
        uids = [r.study_instance_uid for r in results]
        waiting = [client.status(uid).state for uid in uids]
        assert waiting == [study_state.RECEIVED] * len(uids)
        stack.redis.start()  # same port, same append-only file
        done = client.wait_for(uids, timeout_s=240, check=stack.check_alive)
    assert {uid: status.state for uid, status in done.items()} == dict.fromkeys(uids, study_state.REPORTED)
    with open_sessions(stack.settings)() as session:
        count = select(func.count()).select_from(ReportRow).where(ReportRow.study_instance_uid.in_(uids))
        reports = session.scalar(count)
    assert reports == len(uids)
