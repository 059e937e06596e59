"""Acceptance rules 3 and 4: identifiers valid in the dataset itself, and agreeing with the file meta and DIMSE."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
)

from hilum.ingestion.acceptance import accept_instance
from hilum.ingestion.rejection import RejectedInstance
from hilum.ingestion.rules_identifiers import check_identifiers, check_sop_agreement
from hilum.samples import bad_inputs as bad
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import ingestion_pb2
from tests.unit.ingestion.acceptance_checks import RULES, Edit, rejection

Code = ingestion_pb2.RejectionCode
# pydicom warns about the values these tests make malformed on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_the_identifier_rules_judge_a_dataset_on_its_own() -> None:
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3", "1.2.3.4", "1.2.3.4.5"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.PatientID = "SYN-1"
    check_identifiers(ds)
    check_sop_agreement(ds, ("1.2.840.10008.5.1.4.1.1.1.1", "1.2.3.4.5"))
    with pytest.raises(RejectedInstance) as raised:
        check_sop_agreement(ds, ("1.2.840.10008.5.1.4.1.1.1.1", "1.2.3.4.6"))
    assert raised.value.code == Code.REJECTION_CODE_SOP_MISMATCH
    del ds.PatientID
    with pytest.raises(RejectedInstance, match="^Patient ID is missing"):
        check_identifiers(ds)


# Through accept_instance


# 3. Identifiers in the dataset itself


@pytest.mark.parametrize(
    ("keyword", "name"),
    [
        ("StudyInstanceUID", "Study Instance UID"),
        ("SeriesInstanceUID", "Series Instance UID"),
        ("SOPInstanceUID", "SOP Instance UID"),
        ("SOPClassUID", "SOP Class UID"),
    ],
)
def test_missing_uid_is_missing_even_when_the_file_meta_has_it(edited: Edit, keyword: str, name: str) -> None:
    rejected = rejection(edited(lambda ds: delattr(ds, keyword)))
    assert rejected.code == Code.REJECTION_CODE_MISSING_ATTRIBUTE
    assert rejected.reason == f"{name} is missing or is not a valid UID: every instance needs one in its dataset"


@pytest.mark.parametrize("value", ["1.2.../../etc", "1.2.03", "1." * 40 + "1", "", "SYNTHETIC"])
def test_malformed_uid_is_missing_attribute(edited: Edit, value: str) -> None:
    rejected = rejection(edited(lambda ds: setattr(ds, "StudyInstanceUID", value)))
    assert rejected.code == Code.REJECTION_CODE_MISSING_ATTRIBUTE


def test_the_same_uid_for_two_things_is_invalid(edited: Edit) -> None:
    rejected = rejection(edited(lambda ds: setattr(ds, "SOPInstanceUID", ds.SeriesInstanceUID)))
    assert rejected.code == Code.REJECTION_CODE_MISSING_ATTRIBUTE
    assert "repeats the Series Instance UID" in rejected.reason


@pytest.mark.parametrize("patient_id", [None, "", "  ", ["SYN-000101", "SYN-000102"]])
def test_patient_id_is_required_and_single(edited: Edit, patient_id: object) -> None:
    def change(ds: Dataset) -> None:
        if patient_id is None:
            del ds.PatientID
        else:
            ds.PatientID = patient_id

    rejected = rejection(edited(change))
    assert rejected.code == Code.REJECTION_CODE_MISSING_ATTRIBUTE
    assert rejected.reason.startswith("Patient ID is missing")


# 4. SOP agreement: the file meta, and DIMSE's Affected SOP UIDs


def test_file_meta_that_names_another_instance_is_a_sop_mismatch() -> None:
    variants = {v.name: v for v in bad.bad_inputs()}
    instance = rejection(variants["meta-sop-instance-mismatch"].content)
    assert instance.reason == (
        "The file meta information's Media Storage SOP Instance UID differs from the dataset's SOP Instance UID"
    )
    assert "Media Storage SOP Class UID differs" in rejection(variants["meta-sop-class-mismatch"].content).reason


def test_affected_sop_must_name_the_dataset(sample_files: list[Path]) -> None:
    content, spec = sample_files[0].read_bytes(), SAMPLE_STUDIES[0]
    dx = "1.2.840.10008.5.1.4.1.1.1.1"
    assert accept_instance(content, RULES, (dx, spec.sop_instance_uid)).header.instance.sop_class_uid == dx
    assert accept_instance(content, RULES, (dx + "\0", spec.sop_instance_uid + " ")).notes == ()
    other_instance = rejection(content, affected_sop=(dx, spec.sop_instance_uid + ".1"))
    assert other_instance.code == Code.REJECTION_CODE_SOP_MISMATCH
    assert other_instance.reason == (
        "The dataset's SOP Instance UID differs from the C-STORE request's Affected SOP Instance UID"
    )
    other_class = rejection(content, affected_sop=(ComputedRadiographyImageStorage, spec.sop_instance_uid))
    assert other_class.code == Code.REJECTION_CODE_SOP_MISMATCH
    assert spec.sop_instance_uid not in other_class.reason + other_instance.reason
