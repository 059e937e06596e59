"""Inference's wiring: its queue takes study references and hands each one's findings to priors (a comparison-only
prior's to nobody); its worker runs threads."""

from __future__ import annotations

from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings, QueueSection
from hilum.inference.model_health import watch_models
from hilum.inference.service import Inference
from hilum.inference.wiring import WIRING, build
from hilum.v1 import messages_pb2


def test_shape_and_handoff() -> None:
    assert WIRING.stage == Stage.INFERENCE and WIRING.next_stage == Stage.PRIORS
    assert WIRING.task_input is messages_pb2.StudyReference and WIRING.settle is None
    findings = messages_pb2.StudyFindings(analysed_object_key="k")
    assert list(WIRING.handoff(findings)) == [findings]
    prior = messages_pb2.StudyFindings(study=messages_pb2.StudyReference(comparison_only=True))
    assert list(WIRING.handoff(prior)) == []  # a prior fetched for comparison is analysed, never compared
    assert WIRING.watch_health is watch_models  # its gRPC health follows Triton's models


def test_build_reads_the_label_map_of_the_configured_model(tmp_settings: HilumSettings) -> None:
    inference = build(tmp_settings)
    assert isinstance(inference, Inference)
    assert WIRING.task(inference) == inference.infer


def test_build_gives_the_engine_the_model_repository_for_weights_json(tmp_settings: HilumSettings) -> None:
    inference = build(tmp_settings)
    # Configs without provenance outputs (the stock image's) need it to say which weights ran.
    assert inference._engine.model_repository == tmp_settings.triton.model_repository


def test_the_worker_runs_inference_concurrency_threads() -> None:
    """Threads, so that studies in flight together reach Triton's dynamic batcher as one batch."""
    settings = HilumSettings(queue=QueueSection(worker_concurrency=2, inference_concurrency=6))
    assert WIRING.worker_pool(settings) == ("threads", 6)
