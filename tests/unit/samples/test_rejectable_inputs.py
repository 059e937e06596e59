"""Rejectable inputs: a text file named .dcm, a valid chest CT (dciodvfy), and a DX without pixels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from hilum.samples.rejectable_inputs import write_rejectable_inputs


def test_rejectable_ct_is_a_valid_ct_image(tmp_path: Path, dciodvfy: Callable[[Path], list[str]]) -> None:
    inputs = write_rejectable_inputs(tmp_path)
    report = dciodvfy(inputs["ct_image"])
    assert [line for line in report if line.startswith("Error")] == [], report
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


def test_ct_shows_a_water_disc_in_air(tmp_path: Path) -> None:
    ct = pydicom.dcmread(write_rejectable_inputs(tmp_path)["ct_image"])
    hounsfield = ct.pixel_array.astype(int) * int(ct.RescaleSlope) + int(ct.RescaleIntercept)
    assert hounsfield.shape == (64, 64)
    assert hounsfield[32, 32] == 0
    assert hounsfield[0, 0] == -1000


def test_rejectable_inputs_are_deterministic_and_share_one_patient(tmp_path: Path) -> None:
    first, second = write_rejectable_inputs(tmp_path / "a"), write_rejectable_inputs(tmp_path / "b")
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes()
    ct, no_pixels = (pydicom.dcmread(first[key]) for key in ("ct_image", "no_pixel_data"))
    assert ct.PatientID == no_pixels.PatientID == "SYN-000909"
    assert ct.StudyInstanceUID != no_pixels.StudyInstanceUID
