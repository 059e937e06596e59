"""Synthetic DX files: valid DICOM (dciodvfy), deterministic, chest DX headers, the seeded picture inside."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from hilum.samples.chest_pixels import chest_pixels
from hilum.samples.chest_views import ViewPosition
from hilum.samples.dicom_files import write_sample_studies, write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES

ROWS, COLUMNS = 256, 200
Dciodvfy = Callable[[Path], list[str]]


def errors(report: list[str]) -> list[str]:
    """The Error lines of a dciodvfy report: a conforming object has none."""
    return [line for line in report if line.startswith("Error")]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The bundled sample studies at a small size."""
    return write_sample_studies(tmp_path_factory.mktemp("samples"), rows=ROWS, columns=COLUMNS)


def test_every_sample_passes_dciodvfy_as_a_dx_image(samples: list[Path], dciodvfy: Dciodvfy) -> None:
    assert len(samples) == len(SAMPLE_STUDIES) == 4
    for path in samples:
        report = dciodvfy(path)
        assert errors(report) == [], f"{path.name}: {report}"
        assert "DXImageForPresentation" in report, f"{path.name}: {report}"


def test_lateral_view_passes_dciodvfy(tmp_path: Path, dciodvfy: Dciodvfy) -> None:
    lateral = dataclasses.replace(SAMPLE_STUDIES[0], view_position=ViewPosition.LL, rows=ROWS, columns=COLUMNS)
    report = dciodvfy(write_study(lateral, tmp_path))
    assert errors(report) == [], report


def test_write_study_names_the_file_after_the_label(tmp_path: Path) -> None:
    spec = dataclasses.replace(SAMPLE_STUDIES[2], rows=32, columns=24)
    path = write_study(spec, tmp_path / "new" / "folder")
    assert path == tmp_path / "new" / "folder" / "patient-b-current.dcm"
    assert path.is_file()


def test_same_seed_gives_identical_files_and_uids(tmp_path: Path) -> None:
    first = write_sample_studies(tmp_path / "first", rows=ROWS, columns=COLUMNS)
    second = write_sample_studies(tmp_path / "second", rows=ROWS, columns=COLUMNS)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    spec = SAMPLE_STUDIES[0]
    ds = pydicom.dcmread(first[0])
    assert ds.StudyInstanceUID == spec.study_instance_uid
    assert ds.SeriesInstanceUID == spec.series_instance_uid
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == spec.sop_instance_uid


def test_uids_are_valid_distinct_and_under_2_25(samples: list[Path]) -> None:
    uids = []
    for path in samples:
        ds = pydicom.dcmread(path)
        uids += [ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID]
    assert len(set(uids)) == len(uids) == 12
    for uid in uids:
        assert uid.startswith("2.25.") and len(uid) <= 64 and uid.is_valid


def test_prior_and_current_headers_share_the_patient(samples: list[Path]) -> None:
    studies = [pydicom.dcmread(path) for path in samples]
    patient_ids = [ds.PatientID for ds in studies]
    repeated = next(pid for pid in patient_ids if patient_ids.count(pid) == 2)
    prior, current = sorted((ds for ds in studies if ds.PatientID == repeated), key=lambda ds: ds.StudyDate)
    assert prior.StudyDate < current.StudyDate
    assert prior.StudyInstanceUID != current.StudyInstanceUID
    assert (prior.PatientName, prior.PatientBirthDate) == (current.PatientName, current.PatientBirthDate)
    assert (prior.PatientAge, current.PatientAge) == ("067Y", "068Y")


def test_headers_describe_a_chest_dx_for_presentation(samples: list[Path]) -> None:
    for path, spec in zip(samples, SAMPLE_STUDIES, strict=True):
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
        assert (ds.Modality, ds.BodyPartExamined, ds.PresentationIntentType) == (
            "DX",
            "CHEST",
            "FOR PRESENTATION",
        )
        assert ds.ViewPosition == spec.view_position.value
        assert ds.Manufacturer == "Hilum synthetic"
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert [float(v) for v in ds.ImagerPixelSpacing] == [0.139, 0.139]
        assert ds.AnatomicRegionSequence[0].CodeValue == "816094009"
        assert "SYNTHETIC" in str(ds.PatientName)
        assert "shows no patient" in ds.ImageComments
        # The bedside AP has no calibrated Pixel Spacing; upright PA films are corrected for magnification.
        if spec.view_position is ViewPosition.AP:
            assert "PixelSpacing" not in ds
        else:
            assert float(ds.PixelSpacing[0]) < 0.139
    assert pydicom.dcmread(samples[0]).StudyDescription == "XR CHEST PA"


def test_pixel_data_is_the_seeded_chest_picture(samples: list[Path]) -> None:
    for path, spec in zip(samples, SAMPLE_STUDIES, strict=True):
        pixels = pydicom.dcmread(path).pixel_array
        assert pixels.shape == (ROWS, COLUMNS)
        assert pixels.dtype == np.uint16
        np.testing.assert_array_equal(pixels, chest_pixels(ROWS, COLUMNS, spec.view_position, spec.seed))


def test_default_size_is_2500_by_2000_and_valid(tmp_path: Path, dciodvfy: Dciodvfy) -> None:
    path = write_study(SAMPLE_STUDIES[0], tmp_path)
    ds = pydicom.dcmread(path)
    assert (ds.Rows, ds.Columns) == (2500, 2000)
    assert len(ds.PixelData) == 2500 * 2000 * 2
    assert errors(dciodvfy(path)) == []
