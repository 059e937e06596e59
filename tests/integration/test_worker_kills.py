"""Workers killed with SIGKILL mid-run, again and again: every accepted study still ends with exactly one report.

The embedded stack's Celery workers are killed at random while studies go through it, each started again at once,
as Kubernetes restarts a pod. A killed worker's task was taken but never acknowledged (acks_late): Redis hands it out
again once the visibility timeout has passed (short here), and every stage is idempotent per (study, model version),
so the work done twice stores nothing twice.

Bounded for CI: 12 studies, 6 kills. The larger run is this test with other numbers, e.g.
    HILUM_KILL_STUDIES=500 HILUM_KILL_ROUNDS=20 .venv/bin/python -m pytest -s tests/integration/test_worker_kills.py
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hilum.common import study_state
from hilum.common.connections import open_sessions
from hilum.common.db.models import DeadLetterRow, FindingsRow, ReportRow
from hilum.common.db.session import upgrade_database
from hilum.common.settings import QueueSection
from hilum.ingestion.client import IngestionClient
from hilum.runtime.ports import loopback_settings
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from tests.integration.conftest import server_venv

pytestmark = pytest.mark.integration

STUDIES = int(os.environ.get("HILUM_KILL_STUDIES", "12"))
ROUNDS = int(os.environ.get("HILUM_KILL_ROUNDS", "6"))
# The workers that have work when studies come through the gRPC door (the ingestion worker serves the queue door).
VICTIMS = ("inference-worker", "priors-publishing-worker", "reporting-worker")
STAGES = ("inference", "priors", "reporting")
# A taken task comes back this long after its worker died (it must exceed the longest task: a second or two here).
VISIBILITY_TIMEOUT_S = 12


@pytest.fixture
def stack(tmp_path: Path, demo_model_repository: Path) -> Iterator[EmbeddedStack]:
    settings = loopback_settings(tmp_path / "stack", demo_model_repository, server_venv())
    settings = settings.model_copy(update={"queue": QueueSection(visibility_timeout_s=VISIBILITY_TIMEOUT_S,
                                                                 task_time_limit_s=VISIBILITY_TIMEOUT_S - 2)})
    upgrade_database(settings.database_url)
    with EmbeddedStack(settings) as running:
        yield running


def test_workers_killed_mid_run_lose_no_study_and_report_none_twice(stack: EmbeddedStack, tmp_path: Path) -> None:
    files = [write_study(dataclasses.replace(SAMPLE_STUDIES[n % len(SAMPLE_STUDIES)], rows=256, columns=200,
                                             patient_id=f"SYN-KILL-{n}", seed=90_000 + n, label=f"kill-{n}"),
                         tmp_path / "in" / str(n))
             for n in range(STUDIES)]
    workers = [child for child in stack.children if child.name in VICTIMS]
    chance = random.Random(20261207)
    kills: Counter[str] = Counter()
    done = threading.Event()

    def kill_at_random() -> None:
        for _ in range(ROUNDS):
            if done.wait(chance.uniform(0.3, 1.5)):
                return
            victim = chance.choice(workers)
            victim.kill()  # SIGKILL to its process group: the worker and any pool process, mid-task
            victim.start()
            kills[victim.name] += 1

    killer = threading.Thread(target=kill_at_random, name="killer")
    grpc = stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        killer.start()
        try:
            accepted = [result.study_instance_uid for result in client.submit_each(files) if result.accepted]
            assert len(accepted) == STUDIES
            killer.join()
            finished = client.wait_for(accepted, timeout_s=240 + 2 * STUDIES)
        finally:
            done.set()
            killer.join()
    assert sum(kills.values()) == ROUNDS
    failed = {uid: status.error for uid, status in finished.items() if status.state != study_state.REPORTED}
    with open_sessions(stack.settings)() as session:
        reports = dict(session.execute(select(ReportRow.study_instance_uid, func.count())
                                       .group_by(ReportRow.study_instance_uid)).all())
        findings = dict(session.execute(select(FindingsRow.study_instance_uid, func.count())
                                        .group_by(FindingsRow.study_instance_uid)).all())
        dead_letters = session.scalar(select(func.count()).select_from(DeadLetterRow))
    duplicates = sum(count - 1 for count in reports.values()) + sum(count - 1 for count in findings.values())
    # Tasks taken more than once: handed out again after their worker was killed (or retried).
    taken = {stage: sum(_task_receipts(path, stage) for path in stack.log_dir.glob("*-worker.log"))
             for stage in STAGES}
    again = {stage: count - STUDIES for stage, count in taken.items()}
    print(f"\n{STUDIES} studies accepted; {ROUNDS} workers killed ({dict(sorted(kills.items()))}); tasks taken "
          f"more than once {again}; {len(reports)} reported; {len(failed)} failed; {duplicates} duplicates; "
          f"{dead_letters} dead letters")
    assert not failed
    assert set(reports) == set(accepted) and set(reports.values()) == {1}
    assert set(findings) == set(accepted) and set(findings.values()) == {1}
    assert dead_letters == 0


def _task_receipts(log: Path, stage: str) -> int:
    """How many of stage's tasks the worker logging to log took ("Task hilum.<stage>.run[<id>] received")."""
    return sum(1 for line in log.read_text(errors="replace").splitlines()
               if f"hilum.{stage}.run[" in line and "received" in line)
