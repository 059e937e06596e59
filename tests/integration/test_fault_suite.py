"""The fault suite: the stack is hurt mid-run, the way production hurts it, and every accepted study still ends with
exactly one report, with nothing dead-lettered.

- Workers killed with SIGKILL at random and started again at once (as Kubernetes restarts a pod). A killed worker's
  task was taken but never acknowledged (acks_late): Redis hands it out again once the visibility timeout (short
  here) has passed, and every stage is idempotent per (study, model version), so work done twice is stored once.
  A worker killed in the instant between popping a message and recording it as taken loses the message (kombu's
  Redis transport): the assembler finds the study stalled (queue.stalled_after_s, short here) and hands it on again.
- Redis killed with SIGKILL while studies are queued and taken, then started again on its append-only file
  (appendfsync always): no queued message is lost, the workers reconnect and the taken ones come back.
- PostgreSQL drops every Hilum connection, again and again (pg_terminate_backend): the pool's pre-ping replaces
  them, a stage that meets a dropped one retries, and a sender whose instance was refused sends it again.

Each prints what it did (studies, kills or drops, tasks taken more than once, reports, duplicates, dead letters).
Bounded for CI (a dozen studies each). The larger run is the first test with other numbers, e.g.
    HILUM_KILL_STUDIES=500 HILUM_KILL_ROUNDS=20 HILUM_KILL_GAP_S=9 HILUM_FAULT_STALLED_AFTER_S=240 \\
        .venv/bin/python -m pytest -s tests/integration/test_fault_suite.py -k workers_killed
Triton stopped mid-run: test_triton_outage.py; Redis down before studies arrive: test_broker_outage.py; the FHIR
server answering 5xx and timing out: test_publish_to_fhir_peer.py.
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, func, select, text

from hilum.common import study_state
from hilum.common.connections import open_sessions
from hilum.common.db.models import DeadLetterRow, FindingsRow, ReportRow
from hilum.common.db.session import upgrade_database
from hilum.common.settings import HilumSettings, QueueSection
from hilum.ingestion.client import IngestionClient
from hilum.runtime.ports import loopback_settings
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import ingestion_pb2
from tests.helpers import new_database
from tests.integration.conftest import server_venv

pytestmark = pytest.mark.integration

STUDIES = int(os.environ.get("HILUM_KILL_STUDIES", "12"))
ROUNDS = int(os.environ.get("HILUM_KILL_ROUNDS", "6"))
# Kills come 0.3 s to this many seconds apart: spread them over a longer run.
KILL_GAP_S = float(os.environ.get("HILUM_KILL_GAP_S", "1.5"))
# The workers that have work when studies come through the gRPC door.
VICTIMS = ("inference-worker", "ingestion-priors-publishing-worker", "reporting-worker")
STAGES = ("inference", "priors", "reporting")
# A taken task comes back this long after its worker died (it must exceed the longest task: a second or two here).
VISIBILITY_TIMEOUT_S = 12
# A study no stage moved for this long is handed on again (a message lost between a worker's taking it and its
# recording it, when the worker dies in between). Above the longest queue wait of the run: raise it for large runs.
STALLED_AFTER_S = int(os.environ.get("HILUM_FAULT_STALLED_AFTER_S", "25"))


def _settings(root: Path, model_repository: Path, database_url: str = "") -> HilumSettings:
    settings = loopback_settings(root, model_repository, server_venv(), database_url)
    queue = QueueSection(visibility_timeout_s=VISIBILITY_TIMEOUT_S, task_time_limit_s=VISIBILITY_TIMEOUT_S - 2,
                         stalled_after_s=STALLED_AFTER_S)
    return settings.model_copy(update={"queue": queue})


@pytest.fixture
def stack(tmp_path: Path, demo_model_repository: Path) -> Iterator[EmbeddedStack]:
    settings = _settings(tmp_path / "stack", demo_model_repository)
    upgrade_database(settings.database_url)
    with EmbeddedStack(settings) as running:
        yield running


@pytest.fixture
def postgres_stack(tmp_path: Path, demo_model_repository: Path, postgres_server: str) -> Iterator[EmbeddedStack]:
    settings = _settings(tmp_path / "stack", demo_model_repository, new_database(postgres_server))
    upgrade_database(settings.database_url)
    with EmbeddedStack(settings) as running:
        yield running


def _studies(out: Path, prefix: str, count: int) -> list[Path]:
    """count small single-image studies, each of a patient of its own (no study waits for another's prior)."""
    return [write_study(dataclasses.replace(SAMPLE_STUDIES[n % len(SAMPLE_STUDIES)], rows=256, columns=200,
                                            patient_id=f"SYN-{prefix}-{n}", seed=sum(map(ord, prefix)) * 1000 + n,
                                            label=f"{prefix.lower()}-{n}"), out / str(n))
            for n in range(count)]


def _client(stack: EmbeddedStack) -> IngestionClient:
    return IngestionClient(stack.settings.grpc.address(stack.settings.grpc.ingestion_port))


def _exactly_once(stack: EmbeddedStack, accepted: list[str], finished: dict[str, ingestion_pb2.StudyStatus],
                  hurt: str) -> None:
    """Every accepted study reported, with one findings row and one report, and no dead letter; prints the tally."""
    failed = [uid for uid, status in finished.items() if status.state != study_state.REPORTED]
    with open_sessions(stack.settings)() as session:
        reports = dict(session.execute(select(ReportRow.study_instance_uid, func.count())
                                       .group_by(ReportRow.study_instance_uid)).all())
        findings = dict(session.execute(select(FindingsRow.study_instance_uid, func.count())
                                        .group_by(FindingsRow.study_instance_uid)).all())
        dead_letters = session.scalar(select(func.count()).select_from(DeadLetterRow))
    duplicates = sum(n - 1 for n in reports.values()) + sum(n - 1 for n in findings.values())
    # Tasks taken more than once: handed out again after their worker was killed or lost Redis, or retried.
    taken = {stage: sum(_task_receipts(path, stage) for path in stack.log_dir.glob("*-worker.log")) - len(accepted)
             for stage in STAGES}
    print(f"\n{hurt}: {len(accepted)} studies accepted; tasks taken more than once {taken}; {len(reports)} reported; "
          f"{len(failed)} failed; {duplicates} duplicates; {dead_letters} dead letters")
    assert not failed
    assert set(reports) == set(accepted) and set(reports.values()) == {1}
    assert set(findings) == set(accepted) and set(findings.values()) == {1}
    assert dead_letters == 0


def _task_receipts(log: Path, stage: str) -> int:
    """How many of stage's tasks the worker logging to log took ("Task hilum.<stage>.run[<id>] received")."""
    return sum(1 for line in log.read_text(errors="replace").splitlines()
               if f"hilum.{stage}.run[" in line and "received" in line)


def test_workers_killed_mid_run_lose_no_study_and_report_none_twice(stack: EmbeddedStack, tmp_path: Path) -> None:
    files = _studies(tmp_path / "in", "KILL", STUDIES)
    workers = [child for child in stack.children if child.name in VICTIMS]
    chance = random.Random(20261207)
    kills: Counter[str] = Counter()
    done = threading.Event()

    def kill_at_random() -> None:
        for _ in range(ROUNDS):
            if done.wait(chance.uniform(0.3, KILL_GAP_S)):
                return
            victim = chance.choice(workers)
            victim.kill()  # SIGKILL to its process group: the worker and any pool process, mid-task
            victim.start()
            kills[victim.name] += 1

    killer = threading.Thread(target=kill_at_random, name="killer")
    with _client(stack) as client:
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
    _exactly_once(stack, accepted, finished, f"{ROUNDS} workers killed ({dict(sorted(kills.items()))})")


def test_redis_killed_mid_run_and_restarted_on_its_append_only_file(stack: EmbeddedStack, tmp_path: Path) -> None:
    with _client(stack) as client:
        accepted = [r.study_instance_uid for r in client.submit_each(_studies(tmp_path / "in", "REDIS", 12))
                    if r.accepted]
        assert len(accepted) == 12
        time.sleep(0.5)  # studies queued at every stage, some taken by workers
        stack.redis.kill()
        time.sleep(2.0)  # the workers and the assembler meet a broker that is gone
        stack.redis.start()  # same port, same append-only file
        finished = client.wait_for(accepted, timeout_s=240)
    _exactly_once(stack, accepted, finished, "Redis killed once mid-run")


def test_database_connections_dropped_mid_run(postgres_stack: EmbeddedStack, tmp_path: Path) -> None:
    database = create_engine(postgres_stack.settings.database_url, isolation_level="AUTOCOMMIT")
    drops = 0

    def drop_every_connection() -> None:
        nonlocal drops
        with database.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        drops += 1

    accepted = []
    with _client(postgres_stack) as client:
        for number, path in enumerate(_studies(tmp_path / "in", "PG", 12)):
            if number % 3 == 0:
                drop_every_connection()
            for attempt in range(3):  # a sender whose instance was refused (the door lost its connection) resends
                try:
                    [result] = client.submit_files([path])
                    break
                except grpc.RpcError:
                    if attempt == 2:
                        raise
            assert result.accepted, result.rejection.reason
            accepted.append(result.study_instance_uid)
        drop_every_connection()
        finished = client.wait_for(accepted, timeout_s=240)
    database.dispose()
    _exactly_once(postgres_stack, accepted, finished, f"every database connection dropped {drops} times")
