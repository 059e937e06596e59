"""Odd but valid inputs every door must accept: unusual names and values, anatomy and modality judged
on weaker evidence, other pixel formats, and every transfer syntax Hilum reads.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    JPEG2000,
    UID,
    ComputedRadiographyImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    RLELossless,
)

from hilum.samples.jpeg_encoders import dc_only_jpeg, lossless_jpeg
from hilum.samples.variant_files import (
    Builder,
    assign,
    bare_dataset,
    blocky_8bit,
    delete,
    edited,
    encapsulated,
    file_meta_of,
    native_pixels,
    part10,
    raw_part10,
    set_sop_class,
    variant_dataset,
)

# The odd-names oddity has a patient of its own: one Patient ID always comes with one name.
ODD_NAME_PATIENT_ID = "SYN-000920"
ODD_PATIENT_NAME = "SYNTHÉTIQUE-Øre^Ñoño Ä.'`~ ^^Dr"


def _odd_names(ds: Dataset) -> None:
    ds.PatientID = ODD_NAME_PATIENT_ID
    ds.PatientName = ODD_PATIENT_NAME
    ds.ReferringPhysicianName = "O'Brien-Smith^Zoë"
    ds.StudyDescription = "XR CHEST PA (2 views) — ünusual"


def _raw(ds: Dataset, keyword: str, value: bytes) -> None:
    """Set an attribute to bytes as a careless peer writes them, whatever its VR allows (padded to even)."""
    tag = tag_for_keyword(keyword)
    assert tag is not None
    padded = value + b" " * (len(value) % 2)
    ds[tag] = RawDataElement(Tag(tag), dictionary_VR(tag), len(padded), padded, 0, False, True)


def _bad_optional_values(ds: Dataset) -> None:
    for keyword, value in (
        ("StudyDate", b"2025-13-45"),
        ("PatientBirthDate", b"unknown"),
        ("StudyTime", b"25:61"),
        ("PatientAge", b"ABC"),
        ("PatientSex", b"unknown"),
        ("SeriesNumber", b"x1"),
        ("InstanceNumber", b"1.5"),
        ("ImagerPixelSpacing", b"abc\\def"),
        ("KVP", b"high"),
        ("ExposureTime", b"\xff\xfe"),
    ):
        _raw(ds, keyword, value)


def _unknown_character_set(ds: Dataset) -> None:
    ds.SpecificCharacterSet = "ISO_IR 999"


def _missing_body_part(ds: Dataset) -> None:
    del ds.BodyPartExamined, ds.AnatomicRegionSequence


def _no_anatomy_at_all(ds: Dataset) -> None:
    del ds.BodyPartExamined, ds.AnatomicRegionSequence, ds.SeriesDescription
    ds.StudyDescription = "XR PORTABLE"


def _monochrome1(ds: Dataset) -> None:
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = (4095 - native_pixels(ds)).astype("<u2").tobytes()
    del ds.PresentationLUTShape


def _signed(ds: Dataset) -> None:
    ds.PixelRepresentation = 1
    ds.PixelData = (native_pixels(ds).astype(np.int16) - 2048).astype("<i2").tobytes()
    ds.RescaleIntercept = 2048


def _cr(ds: Dataset) -> None:
    set_sop_class(ds, ComputedRadiographyImageStorage, "CR")
    for keyword in ("ImagerPixelSpacing", "DetectorType", "DetectorConfiguration", "PresentationIntentType"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelSpacing = [0.15, 0.15]


def _for_processing(ds: Dataset) -> None:
    set_sop_class(ds, DigitalXRayImageStorageForProcessing, "DX")
    ds.PresentationIntentType = "FOR PROCESSING"


def _eight_bit(ds: Dataset) -> None:
    ds.PixelData = (native_pixels(ds) >> 4).astype(np.uint8).tobytes()
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.WindowCenter, ds.WindowWidth = 128, 256


def _private_elements(ds: Dataset) -> None:
    block = ds.private_block(0x0029, "HILUM SYNTHETIC VENDOR", create=True)
    block.add_new(0x10, "LO", "vendor processing: LUT 3")
    block.add_new(0x11, "OB", bytes(range(256)))
    nested = Dataset()
    nested.CodeValue = "X1"
    block.add_new(0x12, "SQ", Sequence([nested]))


def _compressed(syntax: UID) -> Callable[[str], bytes]:
    """A builder: the image compressed losslessly, by pydicom's encoders or the minimal JPEG encoders."""

    def build(name: str) -> bytes:
        ds = variant_dataset(name)
        if syntax == JPEGLosslessSV1:
            encapsulated(ds, lossless_jpeg(native_pixels(ds), 12), syntax)
        elif syntax in (JPEGBaseline8Bit, JPEGExtended12Bit):
            blocky = blocky_8bit(ds).astype(np.uint16)
            if syntax == JPEGBaseline8Bit:
                _eight_bit(ds)
                encapsulated(ds, dc_only_jpeg(blocky, 8), syntax)
            else:
                encapsulated(ds, dc_only_jpeg((blocky * 16).astype(np.uint16), 12), syntax)
        elif syntax == JPEG2000:  # a lossless codestream is valid under the lossy syntax too
            ds.compress(JPEG2000Lossless, generate_instance_uid=False)
            ds.file_meta.TransferSyntaxUID = JPEG2000
        else:
            ds.compress(syntax, generate_instance_uid=False)
        if syntax in (JPEGBaseline8Bit, JPEGExtended12Bit):
            ds.LossyImageCompression = "01"
            ds.LossyImageCompressionMethod = "ISO_10918_1"
            ds.LossyImageCompressionRatio = 1
        return part10(ds)

    return build


def _in_syntax(syntax: UID) -> Callable[[str], bytes]:
    """A builder: the image as it is, in an uncompressed (or deflated) transfer syntax."""

    def build(name: str) -> bytes:
        ds = variant_dataset(name)
        if syntax == ExplicitVRBigEndian:
            ds.PixelData = native_pixels(ds).astype(">u2").tobytes()
        ds.file_meta.TransferSyntaxUID = syntax
        return part10(ds)

    return build


def _with_preamble(name: str) -> bytes:
    """A Part 10 file whose preamble is not zeros (PS3.10 7.1 lets it hold e.g. a TIFF header)."""
    ds = variant_dataset(name)
    return raw_part10(ds, file_meta_of(ds, ExplicitVRLittleEndian), preamble=b"II*\0\x08\0\0\0HILUM")


def _padded_pixel_data(ds: Dataset) -> None:
    ds.PixelData = ds.PixelData + bytes(64)  # longer than the image needs: the rest is ignored


ACCEPTABLE_ODDITIES: tuple[tuple[str, Builder], ...] = (
    ("odd-characters-in-names", edited(_odd_names)),
    ("malformed-optional-values", edited(_bad_optional_values)),
    ("unknown-character-set", edited(_unknown_character_set)),
    ("missing-body-part-described-chest", edited(_missing_body_part)),
    ("missing-body-part-and-region", edited(_no_anatomy_at_all)),
    ("lower-case-body-part", edited(assign(BodyPartExamined="chest"))),
    ("local-body-part-with-chest-region", edited(assign(BodyPartExamined="TORAX"))),
    ("missing-modality", edited(delete("Modality"))),
    ("dx-class-modality-cr", edited(assign(Modality="CR"))),
    ("computed-radiography", edited(_cr)),
    ("dx-for-processing", edited(_for_processing)),
    ("monochrome1", edited(_monochrome1)),
    ("signed-pixels", edited(_signed)),
    ("eight-bit", edited(_eight_bit)),
    ("no-window", edited(delete("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"))),
    ("private-elements", edited(_private_elements)),
    ("pixel-data-longer-than-needed", edited(_padded_pixel_data)),
    ("rle-lossless", _compressed(RLELossless)),
    ("jpeg-lossless", _compressed(JPEGLosslessSV1)),
    ("jpeg-baseline", _compressed(JPEGBaseline8Bit)),
    ("jpeg-extended-12-bit", _compressed(JPEGExtended12Bit)),
    ("jpeg2000-lossless", _compressed(JPEG2000Lossless)),
    ("jpeg2000-lossless-codestream-as-lossy", _compressed(JPEG2000)),
    ("implicit-vr-little-endian", _in_syntax(ImplicitVRLittleEndian)),
    ("explicit-vr-big-endian", _in_syntax(ExplicitVRBigEndian)),
    ("deflated", _in_syntax(DeflatedExplicitVRLittleEndian)),
    ("bare-dataset-implicit-vr", lambda name: bare_dataset(variant_dataset(name))),
    ("tiff-like-preamble", _with_preamble),
)
