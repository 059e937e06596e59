"""The inference worker under load, for real: studies queued before it starts are taken by its threads together,
reach Triton's dynamic batcher as batches (Triton's own counters say so), and each gets its own findings."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis as redis_lib
from sqlalchemy import select

from hilum.common.connections import open_object_store, open_sessions
from hilum.common.db.models import FindingsRow
from hilum.common.db.session import upgrade_database
from hilum.common.model_inputs import model_inputs_key
from hilum.common.polling import wait_until
from hilum.common.queue import Stage, create_celery_app, enqueue
from hilum.common.settings import (
    HilumSettings,
    IngestionSection,
    QueueSection,
    RedisSection,
    StorageSection,
    TritonSection,
    settings_env,
)
from hilum.inference.engine import FindingsEngine
from hilum.inference.labels import load_label_map
from hilum.ingestion.assembly import Assembler
from hilum.ingestion.service import IncomingInstance
from hilum.ingestion.wiring import build as build_ingestion
from hilum.runtime.processes import ManagedProcess
from hilum.runtime.redis_server import RedisServer
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import messages_pb2

pytestmark = pytest.mark.integration

# Twice the worker's threads: while Triton runs one batch, the next requests queue up for the one after.
STUDIES = 16
THREADS = 8
MODEL = "cxr_findings"


def triton_counts(section: TritonSection) -> tuple[int, int]:
    """Triton's (inferences, executions) of the findings model so far, summed over versions: an execution of a
    batch of n images counts n inferences."""
    text = httpx.get(f"http://127.0.0.1:{section.metrics_port}/metrics", timeout=10.0).text
    totals = {"nv_inference_count": 0, "nv_inference_exec_count": 0}
    for line in text.splitlines():
        name = line.split("{", 1)[0]
        if name in totals and f'model="{MODEL}"' in line:
            totals[name] += int(float(line.rsplit(" ", 1)[1]))
    return totals["nv_inference_count"], totals["nv_inference_exec_count"]


def queue_studies(settings: HilumSettings, folder: Path) -> dict[str, messages_pb2.StudyReference]:
    """STUDIES distinct sample studies accepted by ingestion and handed to the inference queue by the assembler, as
    the pipeline does; their references by Study Instance UID."""
    ingestion = build_ingestion(settings)
    for number in range(STUDIES):
        spec = dataclasses.replace(SAMPLE_STUDIES[number % len(SAMPLE_STUDIES)], seed=7100 + number,
                                   label=f"batched-{number}", rows=320, columns=256)
        path = write_study(spec, folder)
        response = ingestion.accept([IncomingInstance(label=path.name, content=path.read_bytes())])
        assert not response.results[0].HasField("rejection"), response.results[0].rejection.reason
    app = create_celery_app(settings, name="batching-test")
    queued: dict[str, messages_pb2.StudyReference] = {}

    def hand_on(reference: messages_pb2.StudyReference) -> None:
        enqueue(app, Stage.INFERENCE, reference)
        queued[reference.study_instance_uid] = reference

    assert Assembler(open_sessions(settings), hand_on).hand_on_due() == STUDIES
    return queued


def test_studies_in_flight_together_are_batched_and_each_gets_its_own_findings(
    redis_server: RedisServer, redis_client: redis_lib.Redis, triton_server: TritonSection, tmp_path: Path
) -> None:
    settings = HilumSettings(
        redis=RedisSection(url=redis_server.url), triton=triton_server,
        storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"),
        ingestion=IngestionSection(stability_window_s=0.0),
        queue=QueueSection(inference_concurrency=THREADS),
    )
    upgrade_database(settings.database_url)
    references = queue_studies(settings, tmp_path / "studies")
    assert redis_client.llen(Stage.INFERENCE.value) == STUDIES  # all waiting before the worker starts
    store = open_object_store(settings)
    # The door kept each frontal image's model inputs from its own decode; inference takes them instead of decoding.
    assert all(store.exists(model_inputs_key(r.frontal_object_key)) for r in references.values())
    inferences_before, executions_before = triton_counts(triton_server)

    sessions = open_sessions(settings)

    def stored() -> list[FindingsRow]:
        with sessions() as session:
            return list(session.scalars(select(FindingsRow)).all())

    worker = ManagedProcess("inference-worker", [sys.executable, "-m", "hilum.cli", "worker", "inference"],
                            tmp_path / "inference-worker.log", env={**os.environ, **settings_env(settings)})
    worker.start()
    try:
        wait_until(lambda: len(stored()) >= STUDIES and redis_client.llen(Stage.PRIORS.value) == STUDIES,
                   timeout_s=60, interval_s=0.2, what="findings of every queued study, handed on to priors")
        assert worker.running, worker.log_tail()
    finally:
        worker.stop()
    inferences, executions = (after - before for after, before in
                              zip(triton_counts(triton_server), (inferences_before, executions_before), strict=True))

    assert inferences == STUDIES
    assert executions < inferences, "every request ran alone: no dynamic batch was formed"
    rows = stored()
    assert sorted(row.study_instance_uid for row in rows) == sorted(references)  # one row per study
    for row in rows:
        findings = messages_pb2.StudyFindings.FromString(row.payload)
        assert findings.study.study_instance_uid == row.study_instance_uid
        assert findings.analysed_object_key == references[row.study_instance_uid].frontal_object_key
    assert_each_answer_is_its_own_image(settings, references, rows)
    assert not any(store.exists(model_inputs_key(r.frontal_object_key)) for r in references.values())  # used up


def assert_each_answer_is_its_own_image(settings: HilumSettings, references: dict[str, messages_pb2.StudyReference],
                                        rows: list[FindingsRow]) -> None:
    """Each study's batched probabilities are those of its own image scored alone, and the images' differ (so that
    an answer handed to the wrong request would show)."""
    triton, store = settings.triton, open_object_store(settings)
    engine = FindingsEngine(triton.grpc_url, MODEL, load_label_map(triton.model_repository / MODEL),
                            triton.request_timeout_s)
    try:
        alone = np.array([[f.probability for f in engine.analyse(store.path(
            references[row.study_instance_uid].frontal_object_key)).findings] for row in rows])
    finally:
        engine.close()
    batched = np.array([[f.probability for f in messages_pb2.StudyFindings.FromString(row.payload).findings]
                        for row in rows])
    np.testing.assert_allclose(batched, alone, atol=1e-4)
    apart = np.abs(alone[:, np.newaxis, :] - alone[np.newaxis, :, :]).max(axis=2)
    assert (apart + np.eye(len(rows)) > 1e-3).all(), "two images score alike: the check above proves nothing"
