"""Builders of bad inputs whose fault is in the dataset: each edit makes the fault its name says."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage

from hilum.samples.faulty_datasets import blank_with_label, other_sop_class, resized, rgb, two_frames
from hilum.samples.variant_files import COLUMNS, ROWS, variant_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_the_dataset_edits_make_their_faults() -> None:
    ds = variant_dataset("edits")
    rgb(ds)
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel, len(ds.PixelData)) == ("RGB", 3, ROWS * COLUMNS * 3)
    ds = variant_dataset("edits")
    two_frames(ds)
    assert ds.NumberOfFrames == 2 and len(ds.PixelData) == 2 * ROWS * COLUMNS * 2
    other_sop_class(CTImageStorage, "CT")(ds)
    assert (ds.SOPClassUID, ds.file_meta.MediaStorageSOPClassUID, ds.Modality) == (CTImageStorage, CTImageStorage, "CT")
    blank_with_label(ds)
    assert np.count_nonzero(np.frombuffer(ds.PixelData, "<u2")) == 200


def test_a_resized_image_is_complete_and_valid() -> None:
    ds = pydicom.dcmread(io.BytesIO(resized(600, 140, bits=8)("resized")))
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, len(ds.PixelData)) == (600, 140, 8, 600 * 140)
