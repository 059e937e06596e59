"""Every reject reason has its own status inside the range its class has in PS3.4 / PS3.7."""

from __future__ import annotations

from hilum.ingestion import door_status
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode


def test_every_reason_has_a_distinct_status_of_the_right_class() -> None:
    codes = [c for c in Code.values() if c != Code.REJECTION_CODE_UNSPECIFIED]
    statuses = [door_status.failure_status(c) for c in codes]
    assert len(set(statuses)) == len(codes)
    for code, status in zip(codes, statuses, strict=True):
        in_standard_range = 0xA900 <= status <= 0xA9FF or 0xC000 <= status <= 0xCFFF
        assert in_standard_range or status in (0x0111, 0x0122, 0x0124), (Code.Name(code), hex(status))
    assert door_status.failure_status(Code.REJECTION_CODE_INSTANCE_CONFLICT) == door_status.DUPLICATE_SOP_INSTANCE


def test_outcomes() -> None:
    accepted = ingestion_pb2.InstanceResult(accepted=True, duplicate=True)
    rejected = ingestion_pb2.InstanceResult(
        rejection=ingestion_pb2.Rejection(code=Code.REJECTION_CODE_UNSUPPORTED_MODALITY))
    assert door_status.outcome_status(accepted) == door_status.SUCCESS
    assert door_status.outcome_status(rejected) == door_status.SOP_CLASS_NOT_SUPPORTED
