"""RejectedInstance: an exception that carries a RejectionCode and a reason for a PACS administrator."""

from __future__ import annotations

import pytest

from hilum.ingestion.rejection import RejectedInstance
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode


def test_a_rejection_carries_its_code_and_reason() -> None:
    with pytest.raises(RejectedInstance) as raised:
        raise RejectedInstance(Code.REJECTION_CODE_NOT_CHEST, "Body part KNEE is not supported")
    assert raised.value.code == Code.REJECTION_CODE_NOT_CHEST
    assert raised.value.reason == "Body part KNEE is not supported"
    assert str(raised.value) == raised.value.reason and isinstance(raised.value, Exception)
