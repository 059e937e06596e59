"""Acceptance rules: the samples accepted with their header; each kind of bad input rejected, without PHI."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from hilum.common.dicom.header import parse_dataset, read_header
from hilum.common.study import InstanceHeader, InstanceInfo
from hilum.ingestion.acceptance import RejectedInstance, accept_instance
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import ingestion_pb2
from tests.unit.common.dicom.sample_bytes import COLUMNS, ROWS, bare_bytes, edited_bytes, write_small_samples

Edit = Callable[[Callable[[Dataset], None]], bytes]  # the `edited` fixture
# pydicom warns about the values these tests make malformed on purpose.
PYDICOM_COMPLAINS = pytest.mark.filterwarnings("ignore:Invalid value for VR")


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_small_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture
def edited(sample_files: list[Path]) -> Edit:
    """Part 10 bytes of the first sample after an edit to its dataset."""
    return lambda change: edited_bytes(sample_files[0], change)


def rejection(content: bytes) -> RejectedInstance:
    """The RejectedInstance that accepting content raises."""
    with pytest.raises(RejectedInstance) as raised:
        accept_instance(content)
    rejected = raised.value
    # Reasons go to PACS administrators and logs: never any patient data.
    for phi in ("SYNTHETIC", "SYN-000", "1956"):
        assert phi not in rejected.reason
    return rejected


def test_each_sample_is_accepted_with_its_header(sample_files: list[Path]) -> None:
    for path, spec in zip(sample_files, SAMPLE_STUDIES, strict=True):
        header = accept_instance(path.read_bytes())
        assert isinstance(header, InstanceHeader)
        # The samples say DX and CHEST themselves: what acceptance returns is the header as read.
        assert header == read_header(parse_dataset(path.read_bytes()))
        assert (header.study_instance_uid, header.instance.sop_instance_uid) == (
            spec.study_instance_uid,
            spec.sop_instance_uid,
        )
    portable = accept_instance(sample_files[3].read_bytes())
    assert (portable.instance.view_position, portable.study_description) == ("AP", "XR CHEST AP PORTABLE")


def test_the_instance_is_stored_with_its_object_key(sample_files: list[Path]) -> None:
    header = accept_instance(sample_files[0].read_bytes())
    stored = dataclasses.replace(header.instance, object_key="studies/abc/instance.dcm")
    assert stored == InstanceInfo(
        sop_instance_uid=SAMPLE_STUDIES[0].sop_instance_uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
        series_instance_uid=SAMPLE_STUDIES[0].series_instance_uid,
        series_number=1,
        instance_number=1,
        modality="DX",
        view_position="PA",
        rows=ROWS,
        columns=COLUMNS,
        pixel_spacing_mm=(0.139, 0.139),
        object_key="studies/abc/instance.dcm",
    )


def test_rejectable_inputs_get_their_codes(tmp_path: Path) -> None:
    inputs = write_rejectable_inputs(tmp_path)
    assert rejection(inputs["not_dicom"].read_bytes()).code == ingestion_pb2.REJECTION_CODE_NOT_DICOM
    ct = rejection(inputs["ct_image"].read_bytes())
    assert ct.code == ingestion_pb2.REJECTION_CODE_UNSUPPORTED_MODALITY
    assert ct.reason == "Modality CT is not supported: Hilum accepts chest radiographs (CR, DX)"
    assert str(ct) == ct.reason
    no_pixels = rejection(inputs["no_pixel_data"].read_bytes())
    assert no_pixels.code == ingestion_pb2.REJECTION_CODE_NO_PIXEL_DATA


def test_garbage_and_empty_bytes_are_not_dicom() -> None:
    garbage = random.Random(3).randbytes(4096)
    assert rejection(garbage).code == ingestion_pb2.REJECTION_CODE_NOT_DICOM
    assert rejection(b"").code == ingestion_pb2.REJECTION_CODE_NOT_DICOM
    # A DICM prefix, or a plausible first tag, does not make the rest DICOM.
    assert rejection(bytes(128) + b"DICM" + garbage).code == ingestion_pb2.REJECTION_CODE_NOT_DICOM
    assert rejection(b"\x08\x00" + garbage).code == ingestion_pb2.REJECTION_CODE_NOT_DICOM
    assert rejection(garbage).reason.startswith("The content is not DICOM")


def test_bare_dataset_without_preamble_is_accepted(sample_files: list[Path]) -> None:
    content = bare_bytes(pydicom.dcmread(sample_files[0]))
    assert content[128:132] != b"DICM"
    assert accept_instance(content).instance.sop_instance_uid == SAMPLE_STUDIES[0].sop_instance_uid


def test_monochrome1_is_accepted(edited: Edit) -> None:
    def to_monochrome1(ds: Dataset) -> None:
        ds.PhotometricInterpretation = "MONOCHROME1"
        del ds.PresentationLUTShape

    assert accept_instance(edited(to_monochrome1)).instance.rows == ROWS


@pytest.mark.parametrize(
    ("keyword", "name"),
    [
        ("StudyInstanceUID", "Study Instance UID"),
        ("SeriesInstanceUID", "Series Instance UID"),
        ("SOPInstanceUID", "SOP Instance UID"),
        ("SOPClassUID", "SOP Class UID"),
    ],
)
def test_missing_uid_is_missing_attribute(sample_files: list[Path], keyword: str, name: str) -> None:
    ds = pydicom.dcmread(sample_files[0])
    delattr(ds, keyword)
    rejected = rejection(bare_bytes(ds))  # bare, so the file meta cannot supply the SOP UIDs
    assert rejected.code == ingestion_pb2.REJECTION_CODE_MISSING_ATTRIBUTE
    assert rejected.reason == f"{name} is missing or is not a valid UID: every instance needs one"


@PYDICOM_COMPLAINS
def test_malformed_uid_is_missing_attribute(edited: Edit) -> None:
    def bad_uid(ds: Dataset) -> None:
        ds.StudyInstanceUID = "1.2.../../etc"

    assert rejection(edited(bad_uid)).code == ingestion_pb2.REJECTION_CODE_MISSING_ATTRIBUTE


def test_sop_instance_uid_falls_back_to_file_meta(edited: Edit) -> None:
    def drop(ds: Dataset) -> None:
        del ds.SOPInstanceUID

    assert accept_instance(edited(drop)).instance.sop_instance_uid == SAMPLE_STUDIES[0].sop_instance_uid


def test_modality_comes_from_the_sop_class_when_absent(edited: Edit) -> None:
    def drop(ds: Dataset) -> None:
        del ds.Modality

    assert accept_instance(edited(drop)).instance.modality == "DX"


def test_computed_radiography_is_accepted_as_cr(edited: Edit) -> None:
    def to_cr(ds: Dataset) -> None:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.ComputedRadiographyImageStorage
        ds.Modality = "CR"
        del ds.ImagerPixelSpacing  # CR often gives only Pixel Spacing
        ds.PixelSpacing = [0.15, 0.16]

    instance = accept_instance(edited(to_cr)).instance
    assert (instance.modality, instance.pixel_spacing_mm) == ("CR", (0.15, 0.16))


def test_other_modality_is_unsupported(edited: Edit) -> None:
    def to_mammography(ds: Dataset) -> None:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = (
            pydicom.uid.DigitalMammographyXRayImageStorageForPresentation
        )
        ds.Modality = "MG"

    rejected = rejection(edited(to_mammography))
    assert rejected.code == ingestion_pb2.REJECTION_CODE_UNSUPPORTED_MODALITY
    assert rejected.reason.startswith("Modality MG is not supported")


def test_unsupported_sop_class_without_modality_is_named(edited: Edit) -> None:
    def to_unnamed_mammography(ds: Dataset) -> None:
        ds.SOPClassUID = pydicom.uid.DigitalMammographyXRayImageStorageForPresentation
        del ds.Modality

    rejected = rejection(edited(to_unnamed_mammography))
    assert rejected.code == ingestion_pb2.REJECTION_CODE_UNSUPPORTED_MODALITY
    assert rejected.reason.startswith("SOP Class Digital Mammography X-Ray Image Storage - For Presentation without")


def test_non_chest_body_part_is_rejected(edited: Edit) -> None:
    def to_knee(ds: Dataset) -> None:
        ds.BodyPartExamined = "KNEE"
        del ds.AnatomicRegionSequence

    rejected = rejection(edited(to_knee))
    assert rejected.code == ingestion_pb2.REJECTION_CODE_NOT_CHEST
    assert rejected.reason.startswith("Body part KNEE is not supported")


def test_chest_code_alone_identifies_the_chest(edited: Edit) -> None:
    def drop_body_part(ds: Dataset) -> None:
        del ds.BodyPartExamined
        ds.StudyDescription = "XR PORTABLE"

    assert accept_instance(edited(drop_body_part)).body_part == "CHEST"


@pytest.mark.parametrize(
    ("study_description", "protocol_name", "accepted"),
    [
        ("XR CHEST 2 VIEWS", "", True),
        ("Portable", "CXR AP", True),
        ("Thorax pa", "", True),
        ("XR KNEE", "", False),
        ("", "", False),
        ("XR CHESTNUT", "", False),  # a word match, not a substring
    ],
)
def test_without_body_part_the_description_decides(
    edited: Edit,
    study_description: str,
    protocol_name: str,
    accepted: bool,
) -> None:
    def describe(ds: Dataset) -> None:
        del ds.BodyPartExamined
        del ds.AnatomicRegionSequence
        ds.StudyDescription = study_description
        ds.ProtocolName = protocol_name

    content = edited(describe)
    if accepted:
        assert accept_instance(content).body_part == "CHEST"
    else:
        assert rejection(content).code == ingestion_pb2.REJECTION_CODE_NOT_CHEST


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"PhotometricInterpretation": "RGB"}, ingestion_pb2.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"SamplesPerPixel": 3}, ingestion_pb2.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"NumberOfFrames": 2}, ingestion_pb2.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"BitsStored": 6, "HighBit": 5}, ingestion_pb2.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"BitsAllocated": 32}, ingestion_pb2.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"Rows": None}, ingestion_pb2.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"PhotometricInterpretation": None}, ingestion_pb2.REJECTION_CODE_MISSING_ATTRIBUTE),
    ],
)
def test_pixel_format_is_checked(
    edited: Edit,
    change: dict[str, object],
    code: ingestion_pb2.RejectionCode.ValueType,
) -> None:
    def apply(ds: Dataset) -> None:
        for keyword, value in change.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)

    assert rejection(edited(apply)).code == code


def test_truncated_pixel_data_is_rejected(sample_files: list[Path]) -> None:
    content = sample_files[0].read_bytes()
    rejected = rejection(content[: len(content) - 1000])
    assert rejected.code == ingestion_pb2.REJECTION_CODE_NO_PIXEL_DATA
    assert "incomplete" in rejected.reason
