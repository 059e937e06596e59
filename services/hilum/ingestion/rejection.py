"""The refusal of one incoming DICOM instance: what every acceptance rule raises and every door answers."""

from __future__ import annotations

from hilum.v1 import ingestion_pb2


class RejectedInstance(Exception):
    """An instance Hilum does not accept: a RejectionCode and a reason without patient data."""

    def __init__(self, code: ingestion_pb2.RejectionCode.ValueType, reason: str) -> None:
        """code: an ingestion_pb2.RejectionCode value; reason: one sentence for a PACS administrator."""
        super().__init__(reason)
        self.code = code
        self.reason = reason
