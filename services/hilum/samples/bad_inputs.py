"""Malformed and adversarial inputs for ingestion, each with the RejectionCode every door must answer,
and odd but valid inputs every door must accept.

Built deterministically from the sample study writer (hilum.samples.dicom_files): a small (256 x 200) DX
chest image of one fictional patient, then one fault per variant, so a test can send each one through
every door (gRPC, DIMSE, STOW-RS) and compare codes. Every variant has its own Study, Series and SOP
Instance UIDs, so that accepting one never conflicts with another.

The builders live in variant_files (the base image), faulty_files, faulty_datasets and
acceptable_oddities; this module holds the tables and hands out the bytes, built once.
"""

from __future__ import annotations

import dataclasses
import warnings
from functools import cache

from pydicom.uid import (
    MPEG4HP41,
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    MRImageStorage,
    RLELossless,
    UltrasoundImageStorage,
)

from hilum.samples.acceptable_oddities import ACCEPTABLE_ODDITIES
from hilum.samples.faulty_datasets import (
    abdomen_by_description,
    blank_with_label,
    constant,
    float_pixel_data,
    huge_declared_rows,
    knee_code,
    negative_rows,
    one_bit,
    other_sop_class,
    palette,
    resized,
    rgb,
    secondary_capture,
    thirty_two_bit,
    two_frames,
)
from hilum.samples.faulty_files import (
    claims,
    cut,
    deflate_bomb,
    dicom_json,
    encapsulated_frame,
    encapsulated_under_native_syntax,
    garbage,
    implicit_under_explicit_meta,
    j2k_bomb,
    jpeg_file,
    meta_mismatch,
    no_transfer_syntax,
    offset_table_only,
    oversized_compressed,
    png_header,
    prefixed_garbage,
    three_component_jpeg,
    truncated_encapsulated,
)
from hilum.samples.identifiers import make_uid
from hilum.samples.jpeg_encoders import lossless_jpeg
from hilum.samples.variant_files import Builder, assign, delete, edited, native_pixels, variant_seed
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode
# Transfer syntaxes of a Part 10 file whose dataset is written in explicit VR little endian.
_PRIVATE_SYNTAX = UID("1.2.840.113619.5.2")  # a vendor's private implicit VR big endian
_UNKNOWN_SYNTAX = UID("1.2.3.4.5.6.7.8.9")
_JPEG_XL_LOSSLESS = UID("1.2.840.10008.1.2.4.110")  # too new for the installed decoders


@dataclasses.dataclass(frozen=True)
class BadInput:
    """An input every door must refuse with `code`.

    content: what a peer sends (a Part 10 file, or bytes that claim to be one).
    dimse_sendable: True when a C-STORE can carry the same fault to Hilum's DIMSE SCP: content reads as
    a dataset with SOP Class and Instance UIDs, its SOP class and transfer syntax are ones the SCP
    negotiates, and the fault is in the dataset (not only in the file meta, which DIMSE does not carry).
    """

    name: str
    content: bytes
    code: ingestion_pb2.RejectionCode.ValueType
    dimse_sendable: bool = True


BAD_INPUTS: tuple[tuple[str, ingestion_pb2.RejectionCode.ValueType, bool, Builder], ...] = (
    # (name, code, dimse_sendable, builder): what is not DICOM at all
    ("empty", Code.REJECTION_CODE_NOT_DICOM, False, lambda name: b""),
    ("text-file", Code.REJECTION_CODE_NOT_DICOM, False, lambda name: b"Chest X-ray report: no acute findings.\n"),
    ("png-image", Code.REJECTION_CODE_NOT_DICOM, False, png_header),
    ("jpeg-file", Code.REJECTION_CODE_NOT_DICOM, False, jpeg_file),
    ("dicom-json", Code.REJECTION_CODE_NOT_DICOM, False, dicom_json),
    ("random-bytes", Code.REJECTION_CODE_NOT_DICOM, False, garbage),
    ("dicm-prefix-then-garbage", Code.REJECTION_CODE_NOT_DICOM, False, prefixed_garbage),
    ("truncated-preamble", Code.REJECTION_CODE_NOT_DICOM, False, cut(b"DICM", -28)),
    ("truncated-in-header", Code.REJECTION_CODE_NOT_DICOM, False, cut(b"Synthetic image made by Hilum", 20)),
    # required identifiers, in the dataset itself
    ("missing-study-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(delete("StudyInstanceUID"))),
    ("missing-series-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(delete("SeriesInstanceUID"))),
    ("missing-sop-instance-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, False, edited(delete("SOPInstanceUID"))),
    ("missing-sop-class-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, False, edited(delete("SOPClassUID"))),
    (
        "invalid-study-uid",
        Code.REJECTION_CODE_MISSING_ATTRIBUTE,
        True,
        edited(assign(StudyInstanceUID="1.2.840.abc.01")),
    ),
    ("too-long-series-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(assign(SeriesInstanceUID="1." * 40))),
    (
        "invalid-sop-instance-uid",
        Code.REJECTION_CODE_MISSING_ATTRIBUTE,
        True,  # pynetdicom checks only the length of a UID unless told to enforce conformance
        edited(assign(SOPInstanceUID="1.2.3.04")),
    ),
    (
        "series-uid-repeats-study-uid",
        Code.REJECTION_CODE_MISSING_ATTRIBUTE,
        True,
        edited(lambda ds: setattr(ds, "SeriesInstanceUID", ds.StudyInstanceUID)),
    ),
    ("missing-patient-id", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(delete("PatientID"))),
    ("empty-patient-id", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(assign(PatientID="   "))),
    ("two-patient-ids", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(assign(PatientID=["A1", "B2"]))),
    # the file meta and the dataset disagree
    (
        "meta-sop-instance-mismatch",
        Code.REJECTION_CODE_SOP_MISMATCH,
        False,
        meta_mismatch("MediaStorageSOPInstanceUID", make_uid(variant_seed("meta"), "another-instance")),
    ),
    (
        "meta-sop-class-mismatch",
        Code.REJECTION_CODE_SOP_MISMATCH,
        False,
        meta_mismatch("MediaStorageSOPClassUID", ComputedRadiographyImageStorage),
    ),
    # SOP class and modality
    ("ct-image", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, False, edited(other_sop_class(CTImageStorage, "CT"))),
    ("mr-image", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, False, edited(other_sop_class(MRImageStorage, "MR"))),
    (
        "us-image",
        Code.REJECTION_CODE_UNSUPPORTED_MODALITY,
        False,
        edited(other_sop_class(UltrasoundImageStorage, "US")),
    ),
    (
        "mammogram",
        Code.REJECTION_CODE_UNSUPPORTED_MODALITY,
        False,
        edited(other_sop_class(DigitalMammographyXRayImageStorageForPresentation, "MG")),
    ),
    ("dx-class-modality-ct", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, True, edited(assign(Modality="CT"))),
    ("dx-class-modality-mg", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, True, edited(assign(Modality="MG"))),
    (
        "ct-class-modality-dx",
        Code.REJECTION_CODE_UNSUPPORTED_MODALITY,
        False,
        edited(other_sop_class(CTImageStorage, "DX")),
    ),
    ("secondary-capture", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, True, edited(secondary_capture)),
    # the chest
    ("body-part-knee", Code.REJECTION_CODE_NOT_CHEST, True, edited(assign(BodyPartExamined="KNEE"))),
    (
        "body-part-skull-no-region",
        Code.REJECTION_CODE_NOT_CHEST,
        True,
        edited(lambda ds: (assign(BodyPartExamined="SKULL")(ds), delete("AnatomicRegionSequence")(ds))),
    ),
    ("region-code-knee", Code.REJECTION_CODE_NOT_CHEST, True, edited(knee_code)),
    ("described-as-abdomen", Code.REJECTION_CODE_NOT_CHEST, True, edited(abdomen_by_description)),
    # transfer syntax
    ("unknown-transfer-syntax", Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX, False, claims(_UNKNOWN_SYNTAX)),
    ("private-transfer-syntax", Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX, False, claims(_PRIVATE_SYNTAX)),
    ("jpeg-xl-transfer-syntax", Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX, False, claims(_JPEG_XL_LOSSLESS)),
    (
        "mpeg4-video",
        Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX,
        False,
        encapsulated_frame(MPEG4HP41, lambda ds: garbage("mpeg4", 2048)),
    ),
    (
        "jpeg2000-multi-component",
        Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX,
        False,
        encapsulated_frame(JPEG2000MCLossless, lambda ds: garbage("j2k-mc", 2048)),
    ),
    ("no-transfer-syntax", Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX, False, no_transfer_syntax),
    ("deflate-bomb", Code.REJECTION_CODE_NOT_DICOM, False, deflate_bomb),
    (
        "implicit-dataset-under-explicit-meta",
        Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX,
        False,
        implicit_under_explicit_meta,
    ),
    # pixel data that is not what the transfer syntax says
    ("claims-jpeg-baseline-holds-raw", Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE, True, claims(JPEGBaseline8Bit)),
    ("claims-jpeg-lossless-holds-raw", Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE, True, claims(JPEGLosslessSV1)),
    ("claims-jpeg2000-holds-raw", Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE, True, claims(JPEG2000Lossless)),
    ("claims-rle-holds-raw", Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE, True, claims(RLELossless)),
    (
        "jpeg-fragment-of-garbage",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        encapsulated_frame(JPEGLosslessSV1, lambda ds: b"\xff\xd8" + garbage("jpeg-garbage")),
    ),
    (
        "rle-fragment-of-garbage",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        encapsulated_frame(RLELossless, lambda ds: garbage("rle-garbage")),
    ),
    (
        "jpeg2000-fragment-holds-raw",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        encapsulated_frame(JPEG2000Lossless, lambda ds: bytes(ds.PixelData)),
    ),
    (
        "jpeg-of-another-size",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        encapsulated_frame(JPEGLosslessSV1, lambda ds: lossless_jpeg(native_pixels(ds)[:128, :128], 12)),
    ),
    (
        "jpeg2000-frame-declares-40000-square",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        encapsulated_frame(JPEG2000Lossless, j2k_bomb),
    ),
    (
        "jpeg-frame-of-three-components",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        encapsulated_frame(JPEGBaseline8Bit, three_component_jpeg),
    ),
    (
        "encapsulated-under-native-syntax",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        encapsulated_under_native_syntax,
    ),
    # pixel data absent or incomplete
    ("missing-pixel-data", Code.REJECTION_CODE_NO_PIXEL_DATA, True, edited(delete("PixelData"))),
    ("empty-pixel-data", Code.REJECTION_CODE_NO_PIXEL_DATA, True, edited(assign(PixelData=b""))),
    ("truncated-pixel-data", Code.REJECTION_CODE_NO_PIXEL_DATA, True, cut(0.6)),
    ("truncated-compressed-pixel-data", Code.REJECTION_CODE_NO_PIXEL_DATA, False, truncated_encapsulated),
    ("offset-table-without-frames", Code.REJECTION_CODE_NO_PIXEL_DATA, True, offset_table_only),
    ("huge-rows-little-data", Code.REJECTION_CODE_NO_PIXEL_DATA, True, edited(huge_declared_rows)),
    # image pixel description
    ("missing-rows", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(delete("Rows"))),
    ("negative-rows", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(negative_rows)),
    ("missing-photometric", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(delete("PhotometricInterpretation"))),
    (
        "missing-pixel-representation",
        Code.REJECTION_CODE_MISSING_ATTRIBUTE,
        True,
        edited(delete("PixelRepresentation")),
    ),
    ("missing-bits-stored", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, edited(delete("BitsStored"))),
    ("rgb", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, edited(rgb)),
    ("palette-color", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, edited(palette)),
    ("multi-frame", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, edited(two_frames)),
    ("one-bit", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, edited(one_bit)),
    ("thirty-two-bit", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, edited(thirty_two_bit)),
    ("float-pixel-data", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, edited(float_pixel_data)),
    # images nobody can assess
    ("constant-image", Code.REJECTION_CODE_NOT_ASSESSABLE, True, edited(constant)),
    ("blank-with-marker", Code.REJECTION_CODE_NOT_ASSESSABLE, True, edited(blank_with_label)),
    ("one-by-one", Code.REJECTION_CODE_NOT_ASSESSABLE, True, resized(1, 1)),
    ("sixty-four-square", Code.REJECTION_CODE_NOT_ASSESSABLE, True, resized(64, 64)),
    ("strip-4000x100", Code.REJECTION_CODE_NOT_ASSESSABLE, True, resized(4000, 100, bits=8)),
    ("aspect-600x140", Code.REJECTION_CODE_NOT_ASSESSABLE, True, resized(600, 140)),
    ("oversized-compressed", Code.REJECTION_CODE_NOT_ASSESSABLE, True, oversized_compressed),
    ("infinite-after-rescale", Code.REJECTION_CODE_NOT_ASSESSABLE, True, edited(assign(RescaleSlope="1e300"))),
    ("window-outside-image", Code.REJECTION_CODE_NOT_ASSESSABLE, True, edited(assign(WindowCenter=60_000))),
)


@cache
def _bad_inputs() -> tuple[BadInput, ...]:
    with warnings.catch_warnings():  # pydicom warns about every value made malformed here on purpose
        warnings.simplefilter("ignore")
        return tuple(
            BadInput(name=name, content=build(name), code=code, dimse_sendable=sendable)
            for name, code, sendable, build in BAD_INPUTS
        )


@cache
def _acceptable_oddities() -> tuple[tuple[str, bytes], ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple((name, build(name)) for name, build in ACCEPTABLE_ODDITIES)


def bad_inputs() -> list[BadInput]:
    """Every bad input, in BAD_INPUTS order; the same bytes on every call and every run."""
    return list(_bad_inputs())


def acceptable_oddities() -> list[tuple[str, bytes]]:
    """(name, Part 10 bytes) of every odd but acceptable input, in ACCEPTABLE_ODDITIES order.

    All are Part 10 files except "bare-dataset-implicit-vr" (no preamble, no file meta): over DIMSE it
    is sent in implicit VR little endian.
    """
    return list(_acceptable_oddities())
