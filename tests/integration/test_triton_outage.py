"""A Triton outage delays studies but fails none and reports none twice: Triton is stopped mid-run, the waiting
studies are retried behind the inference worker's circuit breaker without using up their retries (the queue here
allows one), and once Triton is started again every study is reported, once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hilum.common import study_state
from hilum.common.connections import open_sessions
from hilum.common.db.models import DeadLetterRow, FindingsRow, ReportRow
from hilum.common.db.session import upgrade_database
from hilum.common.polling import wait_until
from hilum.common.settings import QueueSection
from hilum.ingestion.client import IngestionClient
from hilum.runtime.ports import loopback_settings
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from tests.integration.conftest import server_venv

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(tmp_path: Path, demo_model_repository: Path) -> Iterator[EmbeddedStack]:
    """A stack whose queue gives up after one retry: a study that counted Triton's absence would fail in seconds."""
    settings = loopback_settings(tmp_path / "stack", demo_model_repository, server_venv())
    settings = settings.model_copy(update={"queue": QueueSection(max_retries=1, retry_backoff_max_s=1)})
    upgrade_database(settings.database_url)
    with EmbeddedStack(settings) as running:
        yield running


def test_a_triton_outage_mid_run_delays_studies_but_fails_none_and_reports_none_twice(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    files = [write_study(dataclasses.replace(spec, rows=256, columns=200, patient_id=f"SYN-TRITON-{index}"),
                         tmp_path / "in" / str(index))
             for index, spec in enumerate(SAMPLE_STUDIES)]
    worker_log = stack.log_dir / "inference-worker.log"
    grpc = stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        before = client.submit_files(files[:1])[0].study_instance_uid
        assert client.wait_for([before], timeout_s=120, check=stack.check_alive)[before].state == study_state.REPORTED
        stack.triton.stop()
        results = client.submit_files(files[1:])
        assert all(r.accepted for r in results), [r.rejection.reason for r in results]
        during = [r.study_instance_uid for r in results]
        # The worker has met the outage, and its breaker has opened (three failures in a row) ...
        wait_until(lambda: worker_log.read_text().count("Triton unavailable; the study waits") >= 4, timeout_s=60,
                   interval_s=0.2, what="the inference worker to meet the outage")
        # ... and long enough has passed for a counted retry (one allowed, backoff of a second) to have failed them.
        wait_until(lambda: worker_log.read_text().count("Triton unavailable; the study waits") >= 8, timeout_s=60,
                   interval_s=0.2, what="the waiting studies to be asked about again")
        assert [client.status(uid).state for uid in during] == [study_state.RECEIVED] * len(during)
        stack.triton.start()
        stack.triton.wait_ready()
        done = client.wait_for(during, timeout_s=240, check=stack.check_alive)
    assert {uid: status.state for uid, status in done.items()} == dict.fromkeys(during, study_state.REPORTED)
    uids = [before, *during]
    with open_sessions(stack.settings)() as session:
        for table in (FindingsRow, ReportRow):
            counted = session.execute(select(table.study_instance_uid, func.count()).where(
                table.study_instance_uid.in_(uids)).group_by(table.study_instance_uid)).all()
            assert dict(counted) == dict.fromkeys(uids, 1), table.__tablename__
        assert session.scalar(select(func.count()).select_from(DeadLetterRow)) == 0
