"""Ingestion's wiring: its queue takes spooled instances, it hands ready studies to inference, then settles."""

from __future__ import annotations

from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.ingestion.service import Ingestion
from hilum.ingestion.wiring import WIRING, build, ready_studies
from hilum.v1 import ingestion_pb2, messages_pb2


def test_shape() -> None:
    assert WIRING.stage == Stage.INGESTION and WIRING.next_stage == Stage.INFERENCE
    assert WIRING.task_input is messages_pb2.SpooledInstances
    assert WIRING.settle is Ingestion.release_spool


def test_handoff_is_the_ready_studies() -> None:
    response = ingestion_pb2.SubmitInstancesResponse(ready_studies=[
        messages_pb2.StudyReference(study_instance_uid="1.1"), messages_pb2.StudyReference(study_instance_uid="2.2"),
    ])
    assert [r.study_instance_uid for r in ready_studies(response)] == ["1.1", "2.2"]
    assert list(WIRING.handoff(ingestion_pb2.SubmitInstancesResponse())) == []


def test_build_uses_the_configured_store(tmp_settings: HilumSettings) -> None:
    ingestion = build(tmp_settings)
    spool_key = "spool/a.dcm"
    ingestion_store = tmp_settings.storage.objects_dir / spool_key
    ingestion_store.parent.mkdir(parents=True)
    ingestion_store.write_bytes(b"not dicom")
    response = WIRING.task(ingestion)(messages_pb2.SpooledInstances(spool_keys=[spool_key]))
    assert [(r.label, r.accepted) for r in response.results] == [("a.dcm", False)]
