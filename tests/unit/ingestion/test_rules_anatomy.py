"""Acceptance rules 5 and 6: a radiograph SOP class whose Modality agrees, and the chest (CHEST_RULE)."""

from __future__ import annotations

import dataclasses

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    SecondaryCaptureImageStorage,
)

from hilum.ingestion.acceptance import accept_instance
from hilum.ingestion.rejection import RejectedInstance
from hilum.ingestion.rules_anatomy import CHEST_REGION_CODES, chest_body_part, judged_modality
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import ingestion_pb2
from tests.unit.ingestion.acceptance_checks import RULES, Edit, code_of, rejection

Code = ingestion_pb2.RejectionCode
# pydicom warns about the values these tests make malformed on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_the_anatomy_rules_judge_a_dataset_on_its_own() -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.1.1", "DX"
    notes: list[str] = []
    assert judged_modality(ds, False, notes) == "DX"
    ds.BodyPartExamined = "thorax"
    assert chest_body_part(ds, frozenset({"THORAX"}), "DX", notes) == "THORAX" and notes == []
    assert ("SCT", "816094009") in CHEST_REGION_CODES
    ds.BodyPartExamined = "KNEE"
    with pytest.raises(RejectedInstance) as raised:
        chest_body_part(ds, frozenset({"THORAX"}), "DX", notes)
    assert raised.value.code == Code.REJECTION_CODE_NOT_CHEST


# Through accept_instance


# 5. SOP class and modality


def test_computed_radiography_is_accepted_as_cr(edited: Edit) -> None:
    def to_cr(ds: Dataset) -> None:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
        ds.Modality = "CR"
        del ds.ImagerPixelSpacing  # CR often gives only Pixel Spacing
        ds.PixelSpacing = [0.15, 0.16]

    accepted = accept_instance(edited(to_cr), RULES)
    assert (accepted.header.instance.modality, accepted.header.instance.pixel_spacing_mm) == ("CR", (0.15, 0.16))
    assert accepted.notes == ()


def test_modality_that_contradicts_the_sop_class_is_unsupported(edited: Edit) -> None:
    rejected = rejection(edited(lambda ds: setattr(ds, "Modality", "CT")))
    assert rejected.code == Code.REJECTION_CODE_UNSUPPORTED_MODALITY
    assert rejected.reason.startswith("Modality CT is not supported, and contradicts the SOP Class")
    odd = rejection(edited(lambda ds: setattr(ds, "Modality", "ct^" + SAMPLE_STUDIES[0].patient_name)))
    assert "Modality (unreadable value)" in odd.reason


@pytest.mark.parametrize(
    ("sop_class", "modality"),
    [(CTImageStorage, "DX"), (DigitalMammographyXRayImageStorageForPresentation, "MG"), ("1.2.3.4", "DX")],
)
def test_other_sop_classes_are_unsupported_whatever_the_modality(edited: Edit, sop_class: str, modality: str) -> None:
    def change(ds: Dataset) -> None:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.Modality = modality

    assert code_of(edited(change)) == Code.REJECTION_CODE_UNSUPPORTED_MODALITY


def test_secondary_capture_only_when_the_rules_allow_it(edited: Edit) -> None:
    def to_secondary_capture(ds: Dataset, modality: str = "OT") -> None:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.Modality = modality

    content = edited(to_secondary_capture)
    refused = rejection(content)
    assert refused.code == Code.REJECTION_CODE_UNSUPPORTED_MODALITY
    assert "allow Secondary Capture in the ingestion settings" in refused.reason
    allowing = dataclasses.replace(RULES, accept_secondary_capture=True)
    assert accept_instance(content, allowing).header.instance.modality == "OT"
    assert accept_instance(edited(lambda ds: to_secondary_capture(ds, "DX")), allowing).header.instance.modality == "DX"
    ct_capture = edited(lambda ds: to_secondary_capture(ds, "CT"))
    assert code_of(ct_capture, allowing) == Code.REJECTION_CODE_UNSUPPORTED_MODALITY

    def without_anatomy(ds: Dataset) -> None:  # a capture gets no benefit of the doubt about the body part
        to_secondary_capture(ds)
        del ds.BodyPartExamined, ds.AnatomicRegionSequence
        ds.StudyDescription = "SCREENSHOT"

    assert code_of(edited(without_anatomy), allowing) == Code.REJECTION_CODE_NOT_CHEST


# 6. The chest


def test_another_body_part_beats_a_chest_region_code(edited: Edit) -> None:
    rejected = rejection(edited(lambda ds: setattr(ds, "BodyPartExamined", "KNEE")))
    assert rejected.code == Code.REJECTION_CODE_NOT_CHEST
    assert rejected.reason == "Body part KNEE is not supported: Hilum accepts chest radiographs only"


def test_unknown_body_part_is_chest_only_by_its_region_code(edited: Edit) -> None:
    accepted = accept_instance(edited(lambda ds: setattr(ds, "BodyPartExamined", "TORAX")), RULES)
    assert accepted.header.body_part == "CHEST" and len(accepted.notes) == 1

    def without_region(ds: Dataset) -> None:
        ds.BodyPartExamined = "TORAX"
        del ds.AnatomicRegionSequence

    rejected = rejection(edited(without_region))
    assert rejected.code == Code.REJECTION_CODE_NOT_CHEST
    assert rejected.reason == (
        "Body part TORAX is not one of the chest terms Hilum accepts (CHEST, CHEST_LAT, LUNG, THORAX)"
    )
    local = dataclasses.replace(RULES, chest_body_parts=frozenset({"torax"}))
    assert accept_instance(edited(without_region), local).header.body_part == "TORAX"


def test_chest_code_alone_identifies_the_chest(edited: Edit) -> None:
    def drop_body_part(ds: Dataset) -> None:
        del ds.BodyPartExamined
        ds.StudyDescription = "XR PORTABLE"

    accepted = accept_instance(edited(drop_body_part), RULES)
    assert (accepted.header.body_part, accepted.notes) == ("CHEST", ())


@pytest.mark.parametrize(
    ("study_description", "protocol_name", "outcome"),
    [
        ("XR CHEST 2 VIEWS", "", "by its Study Description"),
        ("Portable", "CXR AP", "by its Study Description"),
        ("Thorax pa", "", "by its Study Description"),
        ("XR KNEE", "", "rejected"),
        ("Portable", "L-SPINE", "rejected"),
        ("Portable", "LSPINE LAT", "rejected"),
        ("Portable", "AP ERECT", "by default"),
        ("PORTABLE HEAD UP 45", "", "by default"),  # positioning, not the head
        ("", "", "by default"),
        ("XR CHESTNUT", "", "by default"),  # a word match, not a substring
    ],
)
def test_without_body_part_the_descriptions_decide_and_a_radiograph_is_noted(
    edited: Edit, study_description: str, protocol_name: str, outcome: str
) -> None:
    def describe(ds: Dataset) -> None:
        del ds.BodyPartExamined, ds.AnatomicRegionSequence, ds.SeriesDescription
        ds.StudyDescription = study_description
        ds.ProtocolName = protocol_name

    content = edited(describe)
    if outcome == "rejected":
        assert code_of(content) == Code.REJECTION_CODE_NOT_CHEST
        return
    accepted = accept_instance(content, RULES)
    assert accepted.header.body_part == "CHEST"
    (note,) = accepted.notes
    assert note.startswith("Body Part Examined is missing;") and outcome in note


def test_a_region_code_for_another_part_is_not_chest(edited: Edit) -> None:
    def knee(ds: Dataset) -> None:
        del ds.BodyPartExamined
        ds.AnatomicRegionSequence[0].CodeValue = "72696002"

    assert code_of(edited(knee)) == Code.REJECTION_CODE_NOT_CHEST
