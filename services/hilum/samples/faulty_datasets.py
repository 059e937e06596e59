"""Builders of bad inputs whose fault is in the dataset: another SOP class or body part, a pixel format
Hilum does not read, Image Pixel attributes that are wrong, an image nobody can assess.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    SecondaryCaptureImageStorage,
)

from hilum.samples.variant_files import (
    COLUMNS,
    ROWS,
    native_pixels,
    part10,
    set_sop_class,
    variant_dataset,
)


def other_sop_class(sop_class: str, modality: str) -> Callable[[Dataset], None]:
    return lambda ds: set_sop_class(ds, sop_class, modality)


def secondary_capture(ds: Dataset) -> None:
    set_sop_class(ds, SecondaryCaptureImageStorage, "OT")
    ds.ConversionType = "WSD"


def knee_code(ds: Dataset) -> None:
    del ds.BodyPartExamined
    ds.AnatomicRegionSequence[0].CodeValue = "72696002"
    ds.AnatomicRegionSequence[0].CodeMeaning = "Knee"


def abdomen_by_description(ds: Dataset) -> None:
    del ds.BodyPartExamined, ds.AnatomicRegionSequence
    ds.StudyDescription = "XR ABDOMEN SUPINE"
    ds.SeriesDescription = "ABDOMEN AP"


def float_pixel_data(ds: Dataset) -> None:
    ds.FloatPixelData = native_pixels(ds).astype("<f4").tobytes()
    del ds.PixelData
    del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.BitsAllocated = 32


def rgb(ds: Dataset) -> None:
    grey = (native_pixels(ds) >> 4).astype(np.uint8)
    ds.PixelData = np.stack([grey, grey, grey], axis=-1).tobytes()
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    del ds.WindowCenter, ds.WindowWidth


def palette(ds: Dataset) -> None:
    ds.PhotometricInterpretation = "PALETTE COLOR"
    descriptor = [256, 0, 16]
    ramp = np.linspace(0, 65535, 256).astype("<u2").tobytes()
    ds.RedPaletteColorLookupTableDescriptor = descriptor
    ds.GreenPaletteColorLookupTableDescriptor = descriptor
    ds.BluePaletteColorLookupTableDescriptor = descriptor
    ds.RedPaletteColorLookupTableData = ds.GreenPaletteColorLookupTableData = ramp
    ds.BluePaletteColorLookupTableData = ramp
    ds.PixelData = (native_pixels(ds) >> 4).astype(np.uint8).tobytes()
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7


def two_frames(ds: Dataset) -> None:
    ds.NumberOfFrames = 2
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = 100
    ds.PixelData = ds.PixelData * 2


def one_bit(ds: Dataset) -> None:
    ds.PixelData = np.packbits(native_pixels(ds) > 2048, axis=None, bitorder="little").tobytes()
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    del ds.WindowCenter, ds.WindowWidth


def thirty_two_bit(ds: Dataset) -> None:
    ds.PixelData = (native_pixels(ds).astype("<u4") << 16).tobytes()
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31


def negative_rows(ds: Dataset) -> None:
    ds.Rows = -ROWS
    ds["Rows"].VR = "SS"  # a peer writing Rows with the wrong VR, so that it reads negative


def resized(rows: int, columns: int, bits: int = 16) -> Callable[[str], bytes]:
    """A builder: a complete, valid image of another size."""

    def build(name: str) -> bytes:
        ds = variant_dataset(name, rows, columns)
        if bits == 8:
            ds.PixelData = (native_pixels(ds) >> 4).astype(np.uint8).tobytes()
            ds.BitsAllocated = ds.BitsStored = 8
            ds.HighBit = 7
            del ds.WindowCenter, ds.WindowWidth
        return part10(ds)

    return build


def constant(ds: Dataset) -> None:
    ds.PixelData = np.full((ROWS, COLUMNS), 2048, dtype="<u2").tobytes()


def blank_with_label(ds: Dataset) -> None:
    image = np.zeros((ROWS, COLUMNS), dtype="<u2")
    image[10:20, 10:30] = 4095  # a burned-in marker on an empty plate: 0.4% of the image
    ds.PixelData = image.tobytes()


def huge_declared_rows(ds: Dataset) -> None:
    ds.Rows = 65_535
