"""Inputs that ingestion must reject: a non-DICOM file, a CT of the chest, and a DX image without pixels.

They let tests and the demo show each rejection path with a real file, as a PACS might send one.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage

from hilum.samples.chest_views import ViewPosition
from hilum.samples.dicom_files import common_dataset, dx_dataset, write_dataset
from hilum.samples.identifiers import make_uid
from hilum.samples.sample_studies import SyntheticPatient, SyntheticStudy

# The patient of the rejectable inputs: a CT of the chest, and a DX image that lost its pixels.
_DMITRI = SyntheticPatient("SYN-000909", "SYNTHETIC^DMITRI", date(1965, 8, 9), "M")
_CT_STUDY = _DMITRI.study(
    datetime(2025, 2, 18, 14, 0, 0), ViewPosition.PA, seed=909, label="ct-image", rows=64, columns=64
)
_NO_PIXELS_STUDY = _DMITRI.study(
    datetime(2025, 2, 18, 14, 30, 0), ViewPosition.PA, seed=910, label="no-pixel-data", rows=64, columns=64
)


def _ct_dataset(spec: SyntheticStudy) -> Dataset:
    """A small valid CT Image Storage object of the chest: a water disc in air, in Hounsfield units."""
    ds = common_dataset(spec, CTImageStorage, "CT")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDescription = "CT CHEST"
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = make_uid(spec.seed, "frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.KVP = 120
    ds.SliceThickness = 5
    ds.PixelSpacing = [6, 6]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-192, -192, -100]
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    yy, xx = np.mgrid[0 : spec.rows, 0 : spec.columns]
    radius = 0.4 * min(spec.rows, spec.columns)
    disc = (yy - spec.rows / 2) ** 2 + (xx - spec.columns / 2) ** 2 < radius**2
    ds.PixelData = np.where(disc, 1024, 24).astype(np.uint16).tobytes()  # stored 1024 is 0 HU
    return ds


def write_rejectable_inputs(out_dir: Path) -> dict[str, Path]:
    """Write inputs ingestion must reject to out_dir: "not_dicom" (a text file named .dcm), "ct_image"
    (a valid chest CT Image Storage object) and "no_pixel_data" (a DX chest object without Pixel Data)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    not_dicom = out_dir / "not-dicom.dcm"
    not_dicom.write_text("This is a text file with a .dcm name, not a DICOM object.\n", encoding="ascii")
    no_pixels = dx_dataset(_NO_PIXELS_STUDY)
    del no_pixels.PixelData
    return {
        "not_dicom": not_dicom,
        "ct_image": write_dataset(_ct_dataset(_CT_STUDY), out_dir / f"{_CT_STUDY.label}.dcm"),
        "no_pixel_data": write_dataset(no_pixels, out_dir / f"{_NO_PIXELS_STUDY.label}.dcm"),
    }
