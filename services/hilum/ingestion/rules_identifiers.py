"""Acceptance rules 3 and 4: the identifiers every stored instance needs, and their agreement.

MISSING_ATTRIBUTE unless Study, Series and SOP Instance UIDs (three distinct UIDs), SOP Class UID and one
non-empty Patient ID are valid in the dataset itself; SOP_MISMATCH when the file meta or a C-STORE
request names another SOP class or instance than the dataset.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from hilum.common.dicom.attributes import raw_value, text, uid
from hilum.ingestion.rejection import RejectedInstance
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode
_IDENTIFIERS = (
    ("StudyInstanceUID", "Study Instance UID"),
    ("SeriesInstanceUID", "Series Instance UID"),
    ("SOPClassUID", "SOP Class UID"),
    ("SOPInstanceUID", "SOP Instance UID"),
)


# 3 and 4. Identifiers, and their agreement


def check_identifiers(ds: Dataset) -> None:
    """The UIDs and Patient ID every stored instance needs, valid in the dataset itself."""
    seen: dict[str, str] = {}
    for keyword, name in _IDENTIFIERS:
        value = uid(ds, keyword)
        if not value:
            raise RejectedInstance(
                Code.REJECTION_CODE_MISSING_ATTRIBUTE,
                f"{name} is missing or is not a valid UID: every instance needs one in its dataset",
            )
        if value in seen and keyword != "SOPClassUID":
            raise RejectedInstance(
                Code.REJECTION_CODE_MISSING_ATTRIBUTE,
                f"{name} is not a valid UID for it: it repeats the {seen[value]}, and each identifies one thing",
            )
        seen.setdefault(value, name)
    patient_id = raw_value(ds, "PatientID")
    if isinstance(patient_id, MultiValue | list | tuple) or not text(ds, "PatientID"):
        raise RejectedInstance(
            Code.REJECTION_CODE_MISSING_ATTRIBUTE,
            "Patient ID is missing, empty or has several values: Hilum files every study under one patient",
        )


def check_sop_agreement(ds: Dataset, affected_sop: tuple[str, str] | None) -> None:
    """A C-STORE request's Affected SOP UIDs, and the file meta, name the dataset's own SOP class and instance.

    The request is checked first: over DIMSE the file meta is rebuilt from it, so a sender reads the
    fault in the terms of what it sent.
    """
    sop_class, sop_instance = uid(ds, "SOPClassUID"), uid(ds, "SOPInstanceUID")
    names = ("SOP Class UID", "SOP Instance UID")
    if affected_sop is not None:
        for requested, value, name in zip(affected_sop, (sop_class, sop_instance), names, strict=True):
            if requested.strip().rstrip("\0") != value:
                raise RejectedInstance(
                    Code.REJECTION_CODE_SOP_MISMATCH,
                    f"The dataset's {name} differs from the C-STORE request's Affected {name}",
                )
    file_meta = getattr(ds, "file_meta", None)
    if isinstance(file_meta, Dataset):
        for keyword, value, name in zip(
            ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID"), (sop_class, sop_instance), names, strict=True
        ):
            meta_value = text(file_meta, keyword).rstrip("\0")
            if meta_value and meta_value != value:
                raise RejectedInstance(
                    Code.REJECTION_CODE_SOP_MISMATCH,
                    f"The file meta information's Media Storage {name} differs from the dataset's {name}",
                )

