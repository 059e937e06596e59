"""A real Celery worker on a real Redis, wired the way every stage is: protobuf payloads, retries with
backoff, dead letters in the database, forwarding to the next queue, and settling after the handoff."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import redis as redis_lib
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select

from hilum.common.connections import open_sessions
from hilum.common.db.models import DeadLetterRow
from hilum.common.db.session import upgrade_database
from hilum.common.errors import PermanentError, TransientError
from hilum.common.polling import wait_until
from hilum.common.queue import Stage, create_celery_app, enqueue
from hilum.common.settings import HilumSettings, QueueSection, RedisSection, StorageSection
from hilum.common.stage_wiring import Forward, StageWiring
from hilum.runtime.redis_server import RedisServer
from hilum.v1 import messages_pb2

pytestmark = pytest.mark.integration


class FlakyInference:
    """A stage core that fails the way real ones do: transiently, permanently, or for good."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.settled: list[str] = []

    def infer(self, reference: messages_pb2.StudyReference) -> messages_pb2.StudyFindings:
        uid = reference.study_instance_uid
        self.attempts[uid] = self.attempts.get(uid, 0) + 1
        if uid == "1.1" and self.attempts[uid] < 3:
            raise TransientError("Triton restarting")
        if uid == "2.2":
            raise PermanentError("image unreadable")
        if uid == "3.3":
            raise TransientError("never recovers")
        return messages_pb2.StudyFindings(study=reference)

    def settle(self, reference: messages_pb2.StudyReference) -> None:
        self.settled.append(reference.study_instance_uid)


def _no_servicer(core: FlakyInference, forward: Forward[messages_pb2.StudyFindings], server: grpc.Server) -> None:
    """This test exercises the queue door only."""


@pytest.mark.parametrize("pool", ["solo", "threads"])  # threads: as the inference worker runs
def test_stage_task_retries_forwards_settles_and_dead_letters(
    pool: str, redis_server: RedisServer, redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    settings = HilumSettings(redis=RedisSection(url=redis_server.url),
                             storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"),
                             queue=QueueSection(max_retries=2, retry_backoff_max_s=1))
    upgrade_database(settings.database_url)
    core = FlakyInference()
    wiring = StageWiring(
        stage=Stage.INFERENCE, build=lambda _settings: core,
        add_servicer=_no_servicer, task_input=messages_pb2.StudyReference, task=lambda c: c.infer,
        next_stage=Stage.PRIORS, handoff=lambda findings: [findings], settle=FlakyInference.settle,
    )
    app = create_celery_app(settings, name="queue-test")
    wiring.register_task(app, settings)
    sessions = open_sessions(settings)

    def dead_letters() -> list[tuple[str, str]]:
        with sessions() as session:
            rows = session.scalars(select(DeadLetterRow)).all()
            return sorted((r.study_instance_uid, r.error) for r in rows)

    with start_worker(app, pool=pool, concurrency=3, perform_ping_check=False, queues=["inference"],
                      shutdown_timeout=10):
        for uid in ("1.1", "2.2", "3.3"):
            enqueue(app, Stage.INFERENCE, messages_pb2.StudyReference(study_instance_uid=uid))
        wait_until(lambda: len(dead_letters()) == 2 and redis_client.llen("priors") == 1,
                   timeout_s=30.0, interval_s=0.1, what="two dead letters and one forwarded message")

    assert core.attempts == {"1.1": 3, "2.2": 1, "3.3": 3}  # two retries after the first try
    assert dead_letters() == [("2.2", "image unreadable"), ("3.3", "retries exhausted: never recovers")]
    assert core.settled == ["1.1"]  # settled only once its result was handed on
    forwarded = redis_client.lrange("priors", 0, -1)
    assert len(forwarded) == 1 and b"hilum.priors.run" in forwarded[0]
