"""How each door says an instance's outcome in its own standard's terms.

DIMSE C-STORE statuses follow PS3.4 Annex B.2.3 and PS3.7 Annex C; STOW-RS FailureReason (0008,1197)
uses the same values (PS3.18 Table 10.5.3-1 refers to them). Each Hilum reject reason has its own code
inside the range the standard gives its class, so a PACS administrator can tell them apart.
"""

from __future__ import annotations

from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode

SUCCESS = 0x0000
# Refused: Out of Resources: Hilum could not store the instance durably; the sender should retry.
OUT_OF_RESOURCES = 0xA700
# Error: Data Set does not match SOP Class (A9xx).
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
# Error: Cannot understand (Cxxx).
CANNOT_UNDERSTAND = 0xC000
# PS3.7 C: Refused: SOP Class not supported / Duplicate SOP Instance / Not Authorized.
SOP_CLASS_NOT_SUPPORTED = 0x0122
DUPLICATE_SOP_INSTANCE = 0x0111
NOT_AUTHORIZED = 0x0124
# STOW-RS: an instance of another study than the one in the request URL. PS3.18 names the case (Table
# 10.5.3-1, 409) but gives it no code; it is an A9xx "does not match" error, apart from the reasons below.
STUDY_MISMATCH = 0xA910
# STOW-RS WarningReason for an instance stored with notes for an administrator (e.g. no Body Part
# Examined); PS3.18 I.2.1 allows codes beyond its three, which all mean a changed or doubtful data set.
ACCEPTED_WITH_NOTES = 0xB100

_STATUS: dict[int, int] = {
    Code.REJECTION_CODE_NOT_DICOM: CANNOT_UNDERSTAND,
    Code.REJECTION_CODE_UNSUPPORTED_MODALITY: SOP_CLASS_NOT_SUPPORTED,
    Code.REJECTION_CODE_NOT_CHEST: 0xC100,
    Code.REJECTION_CODE_NO_PIXEL_DATA: DATASET_DOES_NOT_MATCH_SOP_CLASS,
    Code.REJECTION_CODE_MISSING_ATTRIBUTE: 0xA901,
    Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT: 0xC200,
    Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX: 0xC300,
    Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE: 0xC400,
    Code.REJECTION_CODE_NOT_ASSESSABLE: 0xC500,
    Code.REJECTION_CODE_IDENTITY_CONFLICT: 0xC600,
    Code.REJECTION_CODE_INSTANCE_CONFLICT: DUPLICATE_SOP_INSTANCE,
    Code.REJECTION_CODE_SOP_MISMATCH: 0xA902,
    Code.REJECTION_CODE_NOT_AUTHORIZED: NOT_AUTHORIZED,
}


def failure_status(code: ingestion_pb2.RejectionCode.ValueType) -> int:
    """The C-STORE status (and STOW-RS FailureReason) for a reject reason; Cannot understand if unknown."""
    return _STATUS.get(code, CANNOT_UNDERSTAND)


def outcome_status(result: ingestion_pb2.InstanceResult) -> int:
    """The status for one instance's outcome: success when accepted (also as a duplicate)."""
    return SUCCESS if result.accepted else failure_status(result.rejection.code)
