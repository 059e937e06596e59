"""Header reading: bytes to a Dataset (or NotDicom), and a Dataset to the typed InstanceHeader, as sent."""

from __future__ import annotations

import dataclasses
import io
import random
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from hilum.common.dicom import header
from hilum.common.dicom.header import NotDicom, dataset_uid, parse_dataset, read_header, view_position
from hilum.common.study import InstanceHeader
from hilum.samples.sample_studies import SAMPLE_STUDIES
from tests.unit.common.dicom.sample_bytes import COLUMNS, ROWS, bare_bytes, edited_bytes, write_small_samples

# pydicom warns about the values these tests make malformed on purpose.
PYDICOM_COMPLAINS = pytest.mark.filterwarnings("ignore:Invalid value for VR")


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_small_samples(tmp_path_factory.mktemp("samples"))


def header_after(path: Path, change: Callable[[Dataset], None]) -> InstanceHeader:
    """The header read from the sample at path after an edit to its dataset."""
    return read_header(parse_dataset(edited_bytes(path, change)))


def not_dicom(content: bytes) -> NotDicom:
    with pytest.raises(NotDicom) as raised:
        parse_dataset(content)
    return raised.value


def test_each_sample_header_is_read_field_by_field(sample_files: list[Path]) -> None:
    for path, spec in zip(sample_files, SAMPLE_STUDIES, strict=True):
        header = read_header(parse_dataset(path.read_bytes()))
        assert header.patient.patient_id == spec.patient_id
        assert header.patient.issuer == "HILUM-SYNTHETIC"
        assert header.patient.name == spec.patient_name
        assert header.patient.birth_date == spec.birth_date
        assert header.patient.sex == spec.sex
        assert header.study_instance_uid == spec.study_instance_uid
        assert header.study_started == spec.study_started
        assert header.accession_number == spec.accession_number
        assert header.study_description == spec.study_description
        assert header.body_part == "CHEST"
        instance = header.instance
        assert instance.sop_instance_uid == spec.sop_instance_uid
        assert instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.1.1"
        assert instance.series_instance_uid == spec.series_instance_uid
        assert (instance.series_number, instance.instance_number) == (1, 1)
        assert instance.modality == "DX"
        assert instance.view_position == spec.view_position.value
        assert (instance.rows, instance.columns) == (ROWS, COLUMNS)
        assert instance.pixel_spacing_mm == (0.139, 0.139)
        assert instance.object_key == ""
    portable = read_header(parse_dataset(sample_files[3].read_bytes()))
    assert (portable.instance.view_position, portable.study_description) == ("AP", "XR CHEST AP PORTABLE")


def test_header_is_frozen(sample_files: list[Path]) -> None:
    header = read_header(parse_dataset(sample_files[0].read_bytes()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.study_description = ""  # type: ignore[misc]
    assert header.patient.birth_date == date(1956, 3, 14)


def test_bare_dataset_without_preamble_is_parsed(sample_files: list[Path]) -> None:
    content = bare_bytes(pydicom.dcmread(sample_files[0]))
    assert content[128:132] != b"DICM"
    ds = parse_dataset(content)
    assert read_header(ds).instance.sop_instance_uid == SAMPLE_STUDIES[0].sop_instance_uid
    assert "TransferSyntaxUID" not in ds.file_meta


def test_garbage_and_empty_bytes_are_not_dicom() -> None:
    garbage = random.Random(3).randbytes(4096)
    assert "is not DICOM" in str(not_dicom(garbage))
    assert "is not DICOM" in str(not_dicom(b""))
    # A DICM prefix, or a plausible first tag, does not make the rest DICOM.
    not_dicom(bytes(128) + b"DICM" + garbage)
    not_dicom(b"\x08\x00" + garbage)


def test_dataset_without_identifying_uids_is_not_dicom() -> None:
    ds = Dataset()
    ds.StudyDate = "20240122"  # group 0008: it begins like a dataset
    ds.PatientName = "SYNTHETIC^ADA"
    error = not_dicom(bare_bytes(ds))
    assert "none of the SOP, study or series UIDs" in str(error)
    assert "ADA" not in str(error)


def test_sop_uids_fall_back_to_file_meta(sample_files: list[Path]) -> None:
    def drop(ds: Dataset) -> None:
        del ds.SOPInstanceUID, ds.SOPClassUID

    header = header_after(sample_files[0], drop)
    assert header.instance.sop_instance_uid == SAMPLE_STUDIES[0].sop_instance_uid
    assert header.instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.1.1"


def test_absent_uids_are_empty_and_only_sop_uids_use_file_meta(sample_files: list[Path]) -> None:
    ds = pydicom.dcmread(sample_files[0])
    del ds.StudyInstanceUID, ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID("1.2.3")
    assert (dataset_uid(ds, "StudyInstanceUID"), dataset_uid(ds, "SOPInstanceUID")) == ("", "1.2.3")
    bare = parse_dataset(bare_bytes(ds))
    assert (read_header(bare).study_instance_uid, read_header(bare).instance.sop_instance_uid) == ("", "")


@PYDICOM_COMPLAINS
def test_malformed_uid_reads_as_empty(sample_files: list[Path]) -> None:
    def bad_uid(ds: Dataset) -> None:
        ds.StudyInstanceUID = "1.2.../../etc"

    assert header_after(sample_files[0], bad_uid).study_instance_uid == ""


@PYDICOM_COMPLAINS
def test_values_are_read_as_sent(sample_files: list[Path]) -> None:
    def change(ds: Dataset) -> None:
        ds.BodyPartExamined = "knee"
        ds.Modality = "mg"
        ds.ViewPosition = "ll"
        del ds.Rows

    header = header_after(sample_files[0], change)
    assert (header.body_part, header.instance.modality, header.instance.view_position) == ("KNEE", "MG", "LL")
    assert (header.instance.rows, header.instance.columns) == (0, COLUMNS)


def test_pixel_spacing_when_imager_pixel_spacing_is_absent(sample_files: list[Path]) -> None:
    def to_cr(ds: Dataset) -> None:
        del ds.ImagerPixelSpacing  # CR often gives only Pixel Spacing
        ds.PixelSpacing = [0.15, 0.16]

    assert header_after(sample_files[0], to_cr).instance.pixel_spacing_mm == (0.15, 0.16)


def test_missing_optional_attributes_become_defaults(sample_files: list[Path]) -> None:
    def strip(ds: Dataset) -> None:
        for keyword in (
            "IssuerOfPatientID",
            "PatientBirthDate",
            "PatientSex",
            "AccessionNumber",
            "StudyDescription",
            "StudyTime",
            "SeriesNumber",
            "InstanceNumber",
            "ViewCodeSequence",
            "PatientOrientation",
            "ViewPosition",
            "ImagerPixelSpacing",
            "PixelSpacing",
            "BodyPartExamined",
        ):
            if keyword in ds:
                delattr(ds, keyword)

    header = header_after(sample_files[0], strip)
    assert header.patient.issuer == header.accession_number == header.study_description == header.body_part == ""
    assert (header.patient.birth_date, header.patient.sex) == (None, "")
    assert header.study_started == datetime(2024, 1, 22)  # the date alone, at midnight
    assert (header.instance.series_number, header.instance.instance_number) == (None, None)
    assert (header.instance.view_position, header.instance.pixel_spacing_mm) == ("", None)


@PYDICOM_COMPLAINS
def test_malformed_dates_and_numbers_become_none(sample_files: list[Path]) -> None:
    def damage(ds: Dataset) -> None:
        ds.PatientBirthDate = "19561399"  # month 13
        ds.StudyDate = "20240230"  # 30 February
        ds.PatientSex = "X"
        ds.ImagerPixelSpacing = [0.139, -1]
        ds.PixelSpacing = [0.1274]

    header = header_after(sample_files[0], damage)
    assert (header.patient.birth_date, header.study_started, header.patient.sex) == (None, None, "")
    assert header.instance.pixel_spacing_mm is None


@PYDICOM_COMPLAINS
def test_unparseable_series_number_becomes_none(sample_files: list[Path]) -> None:
    # Series Number is written as "1 " (IS, padded); corrupt it in the bytes, as a faulty modality would.
    content = sample_files[0].read_bytes()
    tag = b"\x20\x00\x11\x00IS\x02\x001 "
    assert content.count(tag) == 1
    header = read_header(parse_dataset(content.replace(tag, b"\x20\x00\x11\x00IS\x02\x00x!")))
    assert header.instance.series_number is None


def test_header_only_read_survives_compressed_pixel_data_cut_short(sample_files: list[Path]) -> None:
    ds = pydicom.dcmread(sample_files[0])
    ds.compress(pydicom.uid.RLELossless, generate_instance_uid=False)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    cut = out.getvalue()[:-500]
    with pytest.warns(UserWarning, match="End of file"):
        not_dicom(cut)  # pydicom keeps nothing of a file whose fragments run past its end
    header_only = parse_dataset(cut, stop_before_pixels=True)
    assert "PixelData" not in header_only and header_only.PatientID == SAMPLE_STUDIES[0].patient_id


def test_deflated_dataset_is_read_unless_it_inflates_beyond_the_limit(
    sample_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = pydicom.dcmread(sample_files[0])
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    deflated = out.getvalue()
    assert len(deflated) < ROWS * COLUMNS * 2
    assert parse_dataset(deflated).PatientID == SAMPLE_STUDIES[0].patient_id
    assert parse_dataset(bare_bytes(ds)).PatientID == SAMPLE_STUDIES[0].patient_id  # no file meta: not deflated
    monkeypatch.setattr(header, "MAX_INFLATED_BYTES", ROWS * COLUMNS)  # a 16-bit image inflates past this
    monkeypatch.setattr(header, "_INFLATE_CHUNK", 4096)
    with pytest.raises(header.InflatesTooLarge) as raised:
        parse_dataset(deflated)
    assert str(raised.value) == (
        "The content could not be read as DICOM: its deflated dataset inflates to more than 0 MiB"
    )


def _view_dataset(**attributes: object) -> Dataset:
    dataset = Dataset()
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    return dataset


def _view_code(value: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator = value, "SCT"
    return item


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"ViewPosition": "pa"}, "PA"),
    ({"ViewPosition": "AP", "PatientOrientation": ["A", "F"]}, "AP"),  # View Position is believed first
    ({"ViewCodeSequence": [_view_code("272479007")]}, "PA"),
    ({"ViewCodeSequence": [_view_code("399348003")]}, "AP"),
    ({"ViewCodeSequence": [_view_code("399198007")]}, "RL"),
    ({"PatientOrientation": ["P", "F"]}, "LATERAL"),  # columns run back to front: a lateral
    ({"PatientOrientation": ["L", "F"]}, ""),  # a frontal, projection unknown
    ({}, ""),
])
def test_the_view_comes_from_view_position_then_view_code_then_orientation(
    attributes: dict[str, object], expected: str
) -> None:
    assert view_position(_view_dataset(**attributes)) == expected
