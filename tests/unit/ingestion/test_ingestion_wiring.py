"""Ingestion's wiring: its queue takes spooled instances and settles them; studies leave through the assembler."""

from __future__ import annotations

from datetime import timedelta

from hilum.common.queue import Stage
from hilum.common.settings import HilumSettings
from hilum.ingestion.service import Ingestion
from hilum.ingestion.wiring import WIRING, build
from hilum.v1 import ingestion_pb2, messages_pb2


def test_shape() -> None:
    assert WIRING.stage == Stage.INGESTION and WIRING.next_stage is None
    assert WIRING.task_input is messages_pb2.SpooledInstances
    assert WIRING.settle is Ingestion.release_spool
    assert WIRING.grpc_service == "hilum.v1.IngestionService"


def test_build_uses_the_configured_store_and_rules(tmp_settings: HilumSettings) -> None:
    tmp_settings.ingestion.stability_window_s = 7.5
    ingestion = build(tmp_settings)
    assert ingestion._stability_window == timedelta(seconds=7.5)
    spool_key = "spool/a.dcm"
    spooled = tmp_settings.storage.objects_dir / spool_key
    spooled.parent.mkdir(parents=True)
    spooled.write_bytes(b"not dicom")
    response = WIRING.task(ingestion)(messages_pb2.SpooledInstances(spool_keys=[spool_key]))
    assert [(r.label, r.rejection.code) for r in response.results] == [
        ("a.dcm", ingestion_pb2.RejectionCode.REJECTION_CODE_NOT_DICOM)]
