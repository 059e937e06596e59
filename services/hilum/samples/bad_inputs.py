"""Malformed and adversarial inputs for ingestion, each with the RejectionCode every door must answer,
and odd but valid inputs every door must accept.

Built deterministically from the sample study writer (hilum.samples.dicom_files): a small (256 x 200) DX
chest image of one fictional patient, then one fault per variant, so a test can send each one through
every door (gRPC, DIMSE, STOW-RS) and compare codes. Every variant has its own Study, Series and SOP
Instance UIDs, so that accepting one never conflicts with another.
"""

from __future__ import annotations

import copy
import dataclasses
import struct
import warnings
import zlib
from collections.abc import Callable
from datetime import date
from functools import cache
from io import BytesIO

import numpy as np
import numpy.typing as npt
from pydicom import dcmwrite
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    JPEG2000,
    MPEG4HP41,
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    MRImageStorage,
    RLELossless,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
)

from hilum.samples.dicom_files import dx_dataset
from hilum.samples.identifiers import make_uid
from hilum.samples.sample_studies import SAMPLE_STUDIES, SyntheticStudy
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode
ROWS, COLUMNS = 256, 200
PATIENT_ID = "SYN-000919"
PATIENT_NAME = "SYNTHETIC^ERIN"
# The odd-names oddity has a patient of its own: one Patient ID always comes with one name.
ODD_NAME_PATIENT_ID = "SYN-000920"
ODD_PATIENT_NAME = "SYNTHÉTIQUE-Øre^Ñoño Ä.'`~ ^^Dr"
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


# The base image and its encodings


def _seed(name: str) -> int:
    """A seed of the variant's own, so its UIDs and noise are its own and the same on every run."""
    return 9_000_000 + zlib.crc32(name.encode("ascii")) % 1_000_000


def variant_study(name: str, rows: int = ROWS, columns: int = COLUMNS) -> SyntheticStudy:
    """The fictional study behind variant `name`: the first sample study's acquisition, another patient."""
    return dataclasses.replace(
        SAMPLE_STUDIES[0],
        patient_id=PATIENT_ID,
        patient_name=PATIENT_NAME,
        birth_date=date(1962, 5, 17),
        sex="F",
        seed=_seed(name),
        label=name,
        rows=rows,
        columns=columns,
    )


def _dx(name: str, rows: int = ROWS, columns: int = COLUMNS) -> Dataset:
    return dx_dataset(variant_study(name, rows, columns))


def _pixels(ds: Dataset) -> npt.NDArray[np.uint16]:
    """The dataset's 16-bit native pixels, (rows, columns)."""
    return np.frombuffer(ds.PixelData, dtype="<u2").reshape(int(ds.Rows), int(ds.Columns))


def _part10(ds: Dataset) -> bytes:
    """ds as a conformant Part 10 file in its file meta's transfer syntax."""
    out = BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def _raw_part10(
    ds: Dataset, meta: FileMetaDataset, *, standard_meta: bool = True, implicit: bool = False, preamble: bytes = b""
) -> bytes:
    """Preamble, DICM, meta exactly as given, and ds in explicit (or implicit) VR little endian whatever
    meta claims.

    pydicom's dcmwrite rewrites the SOP UIDs of the meta and refuses raw pixels under a compressed syntax:
    a peer is bound by neither, so neither are these variants.
    """
    fp = DicomBytesIO()
    fp.write(preamble.ljust(128, b"\0")[:128] + b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=standard_meta)
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return bytes(fp.getvalue())


def _meta(ds: Dataset, syntax: str | None) -> FileMetaDataset:
    """ds's file meta, naming `syntax` (none when None)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    if syntax is not None:
        meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = ds.file_meta.ImplementationClassUID
    return meta


def _bare(ds: Dataset) -> bytes:
    """ds alone, implicit VR little endian: no preamble, no file meta (as a DIMSE peer sends it)."""
    out = BytesIO()
    dcmwrite(out, Dataset(ds), implicit_vr=True, little_endian=True)
    return out.getvalue()


def _encapsulated(ds: Dataset, frame: bytes, syntax: UID) -> Dataset:
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    return ds


def _set_sop_class(ds: Dataset, sop_class: str, modality: str) -> None:
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.Modality = modality


def _blocky_8bit(ds: Dataset) -> npt.NDArray[np.uint8]:
    """The image in 8 bits, flat in each 8 x 8 block (what _dc_only_jpeg can carry)."""
    blocks = (_pixels(ds) >> 4).reshape(ROWS // 8, 8, COLUMNS // 8, 8).mean(axis=(1, 3)).round()
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1).astype(np.uint8)


# Minimal JPEG encoders (neither pydicom nor the pylibjpeg plugins write JPEG): fixed-length Huffman codes.


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _entropy_coded(codes: list[str]) -> bytes:
    """Bits (as '0'/'1' strings) packed most significant first, padded with ones, 0xFF stuffed (T.81 F.1.2.3)."""
    bits = "".join(codes)
    bits += "1" * (-len(bits) % 8)
    packed = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return packed.replace(b"\xff", b"\xff\x00")


def _difference_code(difference: int, code_length: int) -> str:
    """A difference's category as a fixed-length code, then its low bits (one's complement if negative)."""
    size = abs(difference).bit_length()
    extra = difference if difference > 0 else difference - 1 + (1 << size)
    return f"{size:0{code_length}b}" + (f"{extra:0{size}b}" if size else "")


def _huffman_table(table_class: int, symbols: list[int], code_length: int) -> bytes:
    counts = [0] * 16
    counts[code_length - 1] = len(symbols)
    return _segment(0xC4, bytes([table_class << 4, *counts, *symbols]))


def _frame_header(marker: int, precision: int, rows: int, columns: int) -> bytes:
    return _segment(marker, struct.pack(">BHHB", precision, rows, columns, 1) + bytes([1, 0x11, 0]))


def _lossless_jpeg(image: npt.NDArray[np.uint16], precision: int) -> bytes:
    """JPEG lossless, process 14, selection value 1 (predict from the left; first column from above)."""
    values = image.astype(np.int64)
    predictions = np.empty_like(values)
    predictions[:, 1:] = values[:, :-1]
    predictions[1:, 0] = values[:-1, 0]
    predictions[0, 0] = 1 << (precision - 1)
    differences = (values - predictions).ravel().tolist()
    scan = _entropy_coded([_difference_code(int(d), 5) for d in differences])
    return b"".join(
        [
            b"\xff\xd8",
            _frame_header(0xC3, precision, *image.shape),
            _huffman_table(0, list(range(17)), 5),
            _segment(0xDA, bytes([1, 1, 0x00, 1, 0, 0])),  # Ss = 1: the predictor selection value
            scan,
            b"\xff\xd9",
        ]
    )


def _dc_only_jpeg(image: npt.NDArray[np.uint16], precision: int) -> bytes:
    """JPEG baseline (8-bit) or extended (12-bit) DCT of an image flat in each 8 x 8 block: every block is
    its DC coefficient alone, which a quantisation table of ones carries exactly (lossless here)."""
    rows, columns = image.shape
    level = 1 << (precision - 1)
    codes, previous = [], 0
    for top in range(0, rows, 8):
        for left in range(0, columns, 8):
            dc = 8 * (int(image[top, left]) - level)
            codes += [_difference_code(dc - previous, 5), "00"]  # then the AC end of block, code 00
            previous = dc
    return b"".join(
        [
            b"\xff\xd8",
            _segment(0xDB, bytes([0]) + bytes([1] * 64)),
            _frame_header(0xC0 if precision == 8 else 0xC1, precision, rows, columns),
            _huffman_table(0, list(range(16)), 5),
            _huffman_table(1, [0x00, 0xF0], 2),
            _segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0])),
            _entropy_coded(codes),
            b"\xff\xd9",
        ]
    )


# The bad inputs, one fault each


def _edited(change: Callable[[Dataset], object]) -> Callable[[str], bytes]:
    """A builder: the variant's DX dataset after `change`, as a Part 10 file."""

    def build(name: str) -> bytes:
        ds = _dx(name)
        change(ds)
        return _part10(ds)

    return build


def _delete(*keywords: str) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        for keyword in keywords:
            delattr(ds, keyword)

    return change


def _assign(**values: object) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        for keyword, value in values.items():
            setattr(ds, keyword, value)

    return change


def _claims(syntax: UID, *, standard_meta: bool = True) -> Callable[[str], bytes]:
    """A builder: raw pixels in explicit VR little endian under a meta that names `syntax`."""

    def build(name: str) -> bytes:
        ds = _dx(name)
        return _raw_part10(ds, _meta(ds, syntax), standard_meta=standard_meta)

    return build


def _implicit_under_explicit_meta(name: str) -> bytes:
    ds = _dx(name)
    return _raw_part10(ds, _meta(ds, ExplicitVRLittleEndian), implicit=True)


def _deflate_bomb(name: str) -> bytes:
    """A deflated dataset of 300 MiB of zeros: about 300 KiB sent, more than Hilum inflates."""
    ds = _dx(name)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(2**20)
    stream = b"".join(deflater.compress(zeros) for _ in range(300)) + deflater.flush()
    fp = DicomBytesIO()
    fp.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(fp, _meta(ds, DeflatedExplicitVRLittleEndian))
    return bytes(fp.getvalue()) + stream


def _j2k_bomb(ds: Dataset) -> bytes:
    """A small JPEG 2000 frame whose SIZ segment declares 40000 x 40000 pixels (a decompression bomb)."""
    work = copy.deepcopy(ds)
    work.compress(JPEG2000Lossless, generate_instance_uid=False)
    frame = bytearray(next(generate_frames(work.PixelData, number_of_frames=1)))
    siz = frame.index(b"\xff\x51")
    struct.pack_into(">II", frame, siz + 6, 40_000, 40_000)
    return bytes(frame)


def _three_component_jpeg(ds: Dataset) -> bytes:
    """The baseline JPEG of the image with its frame header saying three components (colour)."""
    frame = bytearray(_dc_only_jpeg(_blocky_8bit(ds).astype(np.uint16), 8))
    frame[frame.index(b"\xff\xc0") + 9] = 3
    return bytes(frame)


def _no_transfer_syntax(name: str) -> bytes:
    ds = _dx(name)
    return _raw_part10(ds, _meta(ds, None), standard_meta=False)


def _meta_mismatch(keyword: str, value: str) -> Callable[[str], bytes]:
    def build(name: str) -> bytes:
        ds = _dx(name)
        meta = _meta(ds, ExplicitVRLittleEndian)
        setattr(meta, keyword, UID(value))
        return _raw_part10(ds, meta)

    return build


def _cut(fraction_or_marker: float | bytes, extra: int = 0) -> Callable[[str], bytes]:
    """A builder: the Part 10 file cut at a fraction of its length, or `extra` bytes after a marker."""

    def build(name: str) -> bytes:
        content = _part10(_dx(name))
        if isinstance(fraction_or_marker, bytes):
            return content[: content.index(fraction_or_marker) + extra]
        return content[: int(len(content) * fraction_or_marker)]

    return build


def _garbage(name: str, size: int = 4096) -> bytes:
    return np.random.default_rng(_seed(name)).integers(0, 256, size, dtype=np.uint8).tobytes()


def _png_header(name: str) -> bytes:
    ihdr = struct.pack(">IIBBBBB", COLUMNS, ROWS, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + _garbage(name, 512)


def _jpeg_file(name: str) -> bytes:
    return _dc_only_jpeg(_blocky_8bit(_dx(name)).astype(np.uint16), 8)


def _dicom_json(name: str) -> bytes:
    return _dx(name).to_json(bulk_data_threshold=1, bulk_data_element_handler=lambda _: "").encode("utf-8")


def _prefixed_garbage(name: str) -> bytes:
    return bytes(128) + b"DICM" + _garbage(name)


def _other_sop_class(sop_class: str, modality: str) -> Callable[[Dataset], None]:
    return lambda ds: _set_sop_class(ds, sop_class, modality)


def _secondary_capture(ds: Dataset) -> None:
    _set_sop_class(ds, SecondaryCaptureImageStorage, "OT")
    ds.ConversionType = "WSD"


def _knee_code(ds: Dataset) -> None:
    del ds.BodyPartExamined
    ds.AnatomicRegionSequence[0].CodeValue = "72696002"
    ds.AnatomicRegionSequence[0].CodeMeaning = "Knee"


def _abdomen_by_description(ds: Dataset) -> None:
    del ds.BodyPartExamined, ds.AnatomicRegionSequence
    ds.StudyDescription = "XR ABDOMEN SUPINE"
    ds.SeriesDescription = "ABDOMEN AP"


def _encapsulated_frame(syntax: UID, frame: Callable[[Dataset], bytes]) -> Callable[[str], bytes]:
    def build(name: str) -> bytes:
        ds = _dx(name)
        return _part10(_encapsulated(ds, frame(ds), syntax))

    return build


def _encapsulated_under_native_syntax(name: str) -> bytes:
    ds = _dx(name)
    ds.PixelData = encapsulate([_lossless_jpeg(_pixels(ds), 12)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return _raw_part10(ds, _meta(ds, ExplicitVRLittleEndian))


def _offset_table_only(name: str) -> bytes:
    ds = _dx(name)
    _encapsulated(ds, b"\0\0", RLELossless)
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # an empty Basic Offset Table item, no fragment
    return _part10(ds)


def _truncated_encapsulated(name: str) -> bytes:
    ds = _dx(name)
    ds.compress(RLELossless, generate_instance_uid=False)
    content = _part10(ds)
    return content[: len(content) - len(ds.PixelData) // 2]


def _float_pixel_data(ds: Dataset) -> None:
    ds.FloatPixelData = _pixels(ds).astype("<f4").tobytes()
    del ds.PixelData
    del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.BitsAllocated = 32


def _rgb(ds: Dataset) -> None:
    grey = (_pixels(ds) >> 4).astype(np.uint8)
    ds.PixelData = np.stack([grey, grey, grey], axis=-1).tobytes()
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    del ds.WindowCenter, ds.WindowWidth


def _palette(ds: Dataset) -> None:
    ds.PhotometricInterpretation = "PALETTE COLOR"
    descriptor = [256, 0, 16]
    ramp = np.linspace(0, 65535, 256).astype("<u2").tobytes()
    ds.RedPaletteColorLookupTableDescriptor = descriptor
    ds.GreenPaletteColorLookupTableDescriptor = descriptor
    ds.BluePaletteColorLookupTableDescriptor = descriptor
    ds.RedPaletteColorLookupTableData = ds.GreenPaletteColorLookupTableData = ramp
    ds.BluePaletteColorLookupTableData = ramp
    ds.PixelData = (_pixels(ds) >> 4).astype(np.uint8).tobytes()
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7


def _two_frames(ds: Dataset) -> None:
    ds.NumberOfFrames = 2
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = 100
    ds.PixelData = ds.PixelData * 2


def _one_bit(ds: Dataset) -> None:
    ds.PixelData = np.packbits(_pixels(ds) > 2048, axis=None, bitorder="little").tobytes()
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    del ds.WindowCenter, ds.WindowWidth


def _thirty_two_bit(ds: Dataset) -> None:
    ds.PixelData = (_pixels(ds).astype("<u4") << 16).tobytes()
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31


def _negative_rows(ds: Dataset) -> None:
    ds.Rows = -ROWS
    ds["Rows"].VR = "SS"  # a peer writing Rows with the wrong VR, so that it reads negative


def _resized(rows: int, columns: int, bits: int = 16) -> Callable[[str], bytes]:
    """A builder: a complete, valid image of another size."""

    def build(name: str) -> bytes:
        ds = _dx(name, rows, columns)
        if bits == 8:
            ds.PixelData = (_pixels(ds) >> 4).astype(np.uint8).tobytes()
            ds.BitsAllocated = ds.BitsStored = 8
            ds.HighBit = 7
            del ds.WindowCenter, ds.WindowWidth
        return _part10(ds)

    return build


def _constant(ds: Dataset) -> None:
    ds.PixelData = np.full((ROWS, COLUMNS), 2048, dtype="<u2").tobytes()


def _blank_with_label(ds: Dataset) -> None:
    image = np.zeros((ROWS, COLUMNS), dtype="<u2")
    image[10:20, 10:30] = 4095  # a burned-in marker on an empty plate: 0.4% of the image
    ds.PixelData = image.tobytes()


def _oversized_compressed(name: str) -> bytes:
    ds = _dx(name)
    ds.compress(RLELossless, generate_instance_uid=False)
    ds.Rows = ds.Columns = 20_000  # the frame holds 256 x 200: a decompression bomb's header
    return _part10(ds)


def _huge_declared_rows(ds: Dataset) -> None:
    ds.Rows = 65_535


_Builder = Callable[[str], bytes]
BAD_INPUTS: tuple[tuple[str, ingestion_pb2.RejectionCode.ValueType, bool, _Builder], ...] = (
    # (name, code, dimse_sendable, builder): what is not DICOM at all
    ("empty", Code.REJECTION_CODE_NOT_DICOM, False, lambda name: b""),
    ("text-file", Code.REJECTION_CODE_NOT_DICOM, False, lambda name: b"Chest X-ray report: no acute findings.\n"),
    ("png-image", Code.REJECTION_CODE_NOT_DICOM, False, _png_header),
    ("jpeg-file", Code.REJECTION_CODE_NOT_DICOM, False, _jpeg_file),
    ("dicom-json", Code.REJECTION_CODE_NOT_DICOM, False, _dicom_json),
    ("random-bytes", Code.REJECTION_CODE_NOT_DICOM, False, _garbage),
    ("dicm-prefix-then-garbage", Code.REJECTION_CODE_NOT_DICOM, False, _prefixed_garbage),
    ("truncated-preamble", Code.REJECTION_CODE_NOT_DICOM, False, _cut(b"DICM", -28)),
    ("truncated-in-header", Code.REJECTION_CODE_NOT_DICOM, False, _cut(b"Synthetic image made by Hilum", 20)),
    # required identifiers, in the dataset itself
    ("missing-study-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_delete("StudyInstanceUID"))),
    ("missing-series-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_delete("SeriesInstanceUID"))),
    ("missing-sop-instance-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, False, _edited(_delete("SOPInstanceUID"))),
    ("missing-sop-class-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, False, _edited(_delete("SOPClassUID"))),
    (
        "invalid-study-uid",
        Code.REJECTION_CODE_MISSING_ATTRIBUTE,
        True,
        _edited(_assign(StudyInstanceUID="1.2.840.abc.01")),
    ),
    ("too-long-series-uid", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_assign(SeriesInstanceUID="1." * 40))),
    (
        "invalid-sop-instance-uid",
        Code.REJECTION_CODE_MISSING_ATTRIBUTE,
        True,  # pynetdicom checks only the length of a UID unless told to enforce conformance
        _edited(_assign(SOPInstanceUID="1.2.3.04")),
    ),
    (
        "series-uid-repeats-study-uid",
        Code.REJECTION_CODE_MISSING_ATTRIBUTE,
        True,
        _edited(lambda ds: setattr(ds, "SeriesInstanceUID", ds.StudyInstanceUID)),
    ),
    ("missing-patient-id", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_delete("PatientID"))),
    ("empty-patient-id", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_assign(PatientID="   "))),
    ("two-patient-ids", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_assign(PatientID=["A1", "B2"]))),
    # the file meta and the dataset disagree
    (
        "meta-sop-instance-mismatch",
        Code.REJECTION_CODE_SOP_MISMATCH,
        False,
        _meta_mismatch("MediaStorageSOPInstanceUID", make_uid(_seed("meta"), "another-instance")),
    ),
    (
        "meta-sop-class-mismatch",
        Code.REJECTION_CODE_SOP_MISMATCH,
        False,
        _meta_mismatch("MediaStorageSOPClassUID", ComputedRadiographyImageStorage),
    ),
    # SOP class and modality
    ("ct-image", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, False, _edited(_other_sop_class(CTImageStorage, "CT"))),
    ("mr-image", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, False, _edited(_other_sop_class(MRImageStorage, "MR"))),
    (
        "us-image",
        Code.REJECTION_CODE_UNSUPPORTED_MODALITY,
        False,
        _edited(_other_sop_class(UltrasoundImageStorage, "US")),
    ),
    (
        "mammogram",
        Code.REJECTION_CODE_UNSUPPORTED_MODALITY,
        False,
        _edited(_other_sop_class(DigitalMammographyXRayImageStorageForPresentation, "MG")),
    ),
    ("dx-class-modality-ct", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, True, _edited(_assign(Modality="CT"))),
    ("dx-class-modality-mg", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, True, _edited(_assign(Modality="MG"))),
    (
        "ct-class-modality-dx",
        Code.REJECTION_CODE_UNSUPPORTED_MODALITY,
        False,
        _edited(_other_sop_class(CTImageStorage, "DX")),
    ),
    ("secondary-capture", Code.REJECTION_CODE_UNSUPPORTED_MODALITY, True, _edited(_secondary_capture)),
    # the chest
    ("body-part-knee", Code.REJECTION_CODE_NOT_CHEST, True, _edited(_assign(BodyPartExamined="KNEE"))),
    (
        "body-part-skull-no-region",
        Code.REJECTION_CODE_NOT_CHEST,
        True,
        _edited(lambda ds: (_assign(BodyPartExamined="SKULL")(ds), _delete("AnatomicRegionSequence")(ds))),
    ),
    ("region-code-knee", Code.REJECTION_CODE_NOT_CHEST, True, _edited(_knee_code)),
    ("described-as-abdomen", Code.REJECTION_CODE_NOT_CHEST, True, _edited(_abdomen_by_description)),
    # transfer syntax
    ("unknown-transfer-syntax", Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX, False, _claims(_UNKNOWN_SYNTAX)),
    ("private-transfer-syntax", Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX, False, _claims(_PRIVATE_SYNTAX)),
    ("jpeg-xl-transfer-syntax", Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX, False, _claims(_JPEG_XL_LOSSLESS)),
    (
        "mpeg4-video",
        Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX,
        False,
        _encapsulated_frame(MPEG4HP41, lambda ds: _garbage("mpeg4", 2048)),
    ),
    (
        "jpeg2000-multi-component",
        Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX,
        False,
        _encapsulated_frame(JPEG2000MCLossless, lambda ds: _garbage("j2k-mc", 2048)),
    ),
    ("no-transfer-syntax", Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX, False, _no_transfer_syntax),
    ("deflate-bomb", Code.REJECTION_CODE_NOT_DICOM, False, _deflate_bomb),
    (
        "implicit-dataset-under-explicit-meta",
        Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX,
        False,
        _implicit_under_explicit_meta,
    ),
    # pixel data that is not what the transfer syntax says
    ("claims-jpeg-baseline-holds-raw", Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE, True, _claims(JPEGBaseline8Bit)),
    ("claims-jpeg-lossless-holds-raw", Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE, True, _claims(JPEGLosslessSV1)),
    ("claims-jpeg2000-holds-raw", Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE, True, _claims(JPEG2000Lossless)),
    ("claims-rle-holds-raw", Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE, True, _claims(RLELossless)),
    (
        "jpeg-fragment-of-garbage",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        _encapsulated_frame(JPEGLosslessSV1, lambda ds: b"\xff\xd8" + _garbage("jpeg-garbage")),
    ),
    (
        "rle-fragment-of-garbage",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        _encapsulated_frame(RLELossless, lambda ds: _garbage("rle-garbage")),
    ),
    (
        "jpeg2000-fragment-holds-raw",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        _encapsulated_frame(JPEG2000Lossless, lambda ds: bytes(ds.PixelData)),
    ),
    (
        "jpeg-of-another-size",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        _encapsulated_frame(JPEGLosslessSV1, lambda ds: _lossless_jpeg(_pixels(ds)[:128, :128], 12)),
    ),
    (
        "jpeg2000-frame-declares-40000-square",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        _encapsulated_frame(JPEG2000Lossless, _j2k_bomb),
    ),
    (
        "jpeg-frame-of-three-components",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        _encapsulated_frame(JPEGBaseline8Bit, _three_component_jpeg),
    ),
    (
        "encapsulated-under-native-syntax",
        Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE,
        True,
        _encapsulated_under_native_syntax,
    ),
    # pixel data absent or incomplete
    ("missing-pixel-data", Code.REJECTION_CODE_NO_PIXEL_DATA, True, _edited(_delete("PixelData"))),
    ("empty-pixel-data", Code.REJECTION_CODE_NO_PIXEL_DATA, True, _edited(_assign(PixelData=b""))),
    ("truncated-pixel-data", Code.REJECTION_CODE_NO_PIXEL_DATA, True, _cut(0.6)),
    ("truncated-compressed-pixel-data", Code.REJECTION_CODE_NO_PIXEL_DATA, False, _truncated_encapsulated),
    ("offset-table-without-frames", Code.REJECTION_CODE_NO_PIXEL_DATA, True, _offset_table_only),
    ("huge-rows-little-data", Code.REJECTION_CODE_NO_PIXEL_DATA, True, _edited(_huge_declared_rows)),
    # image pixel description
    ("missing-rows", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_delete("Rows"))),
    ("negative-rows", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_negative_rows)),
    ("missing-photometric", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_delete("PhotometricInterpretation"))),
    (
        "missing-pixel-representation",
        Code.REJECTION_CODE_MISSING_ATTRIBUTE,
        True,
        _edited(_delete("PixelRepresentation")),
    ),
    ("missing-bits-stored", Code.REJECTION_CODE_MISSING_ATTRIBUTE, True, _edited(_delete("BitsStored"))),
    ("rgb", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, _edited(_rgb)),
    ("palette-color", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, _edited(_palette)),
    ("multi-frame", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, _edited(_two_frames)),
    ("one-bit", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, _edited(_one_bit)),
    ("thirty-two-bit", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, _edited(_thirty_two_bit)),
    ("float-pixel-data", Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT, True, _edited(_float_pixel_data)),
    # images nobody can assess
    ("constant-image", Code.REJECTION_CODE_NOT_ASSESSABLE, True, _edited(_constant)),
    ("blank-with-marker", Code.REJECTION_CODE_NOT_ASSESSABLE, True, _edited(_blank_with_label)),
    ("one-by-one", Code.REJECTION_CODE_NOT_ASSESSABLE, True, _resized(1, 1)),
    ("sixty-four-square", Code.REJECTION_CODE_NOT_ASSESSABLE, True, _resized(64, 64)),
    ("strip-4000x100", Code.REJECTION_CODE_NOT_ASSESSABLE, True, _resized(4000, 100, bits=8)),
    ("aspect-600x140", Code.REJECTION_CODE_NOT_ASSESSABLE, True, _resized(600, 140)),
    ("oversized-compressed", Code.REJECTION_CODE_NOT_ASSESSABLE, True, _oversized_compressed),
    ("infinite-after-rescale", Code.REJECTION_CODE_NOT_ASSESSABLE, True, _edited(_assign(RescaleSlope="1e300"))),
    ("window-outside-image", Code.REJECTION_CODE_NOT_ASSESSABLE, True, _edited(_assign(WindowCenter=60_000))),
)


# Odd but acceptable inputs


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
    ds.PixelData = (4095 - _pixels(ds)).astype("<u2").tobytes()
    del ds.PresentationLUTShape


def _signed(ds: Dataset) -> None:
    ds.PixelRepresentation = 1
    ds.PixelData = (_pixels(ds).astype(np.int16) - 2048).astype("<i2").tobytes()
    ds.RescaleIntercept = 2048


def _cr(ds: Dataset) -> None:
    _set_sop_class(ds, ComputedRadiographyImageStorage, "CR")
    for keyword in ("ImagerPixelSpacing", "DetectorType", "DetectorConfiguration", "PresentationIntentType"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelSpacing = [0.15, 0.15]


def _for_processing(ds: Dataset) -> None:
    _set_sop_class(ds, DigitalXRayImageStorageForProcessing, "DX")
    ds.PresentationIntentType = "FOR PROCESSING"


def _eight_bit(ds: Dataset) -> None:
    ds.PixelData = (_pixels(ds) >> 4).astype(np.uint8).tobytes()
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
    """A builder: the image compressed losslessly, by pydicom's encoders or this module's JPEG writers."""

    def build(name: str) -> bytes:
        ds = _dx(name)
        if syntax == JPEGLosslessSV1:
            _encapsulated(ds, _lossless_jpeg(_pixels(ds), 12), syntax)
        elif syntax in (JPEGBaseline8Bit, JPEGExtended12Bit):
            blocky = _blocky_8bit(ds).astype(np.uint16)
            if syntax == JPEGBaseline8Bit:
                _eight_bit(ds)
                _encapsulated(ds, _dc_only_jpeg(blocky, 8), syntax)
            else:
                _encapsulated(ds, _dc_only_jpeg((blocky * 16).astype(np.uint16), 12), syntax)
        elif syntax == JPEG2000:  # a lossless codestream is valid under the lossy syntax too
            ds.compress(JPEG2000Lossless, generate_instance_uid=False)
            ds.file_meta.TransferSyntaxUID = JPEG2000
        else:
            ds.compress(syntax, generate_instance_uid=False)
        if syntax in (JPEGBaseline8Bit, JPEGExtended12Bit):
            ds.LossyImageCompression = "01"
            ds.LossyImageCompressionMethod = "ISO_10918_1"
            ds.LossyImageCompressionRatio = 1
        return _part10(ds)

    return build


def _in_syntax(syntax: UID) -> Callable[[str], bytes]:
    """A builder: the image as it is, in an uncompressed (or deflated) transfer syntax."""

    def build(name: str) -> bytes:
        ds = _dx(name)
        if syntax == ExplicitVRBigEndian:
            ds.PixelData = _pixels(ds).astype(">u2").tobytes()
        ds.file_meta.TransferSyntaxUID = syntax
        return _part10(ds)

    return build


def _with_preamble(name: str) -> bytes:
    """A Part 10 file whose preamble is not zeros (PS3.10 7.1 lets it hold e.g. a TIFF header)."""
    ds = _dx(name)
    return _raw_part10(ds, _meta(ds, ExplicitVRLittleEndian), preamble=b"II*\0\x08\0\0\0HILUM")


def _padded_pixel_data(ds: Dataset) -> None:
    ds.PixelData = ds.PixelData + bytes(64)  # longer than the image needs: the rest is ignored


ACCEPTABLE_ODDITIES: tuple[tuple[str, _Builder], ...] = (
    ("odd-characters-in-names", _edited(_odd_names)),
    ("malformed-optional-values", _edited(_bad_optional_values)),
    ("unknown-character-set", _edited(_unknown_character_set)),
    ("missing-body-part-described-chest", _edited(_missing_body_part)),
    ("missing-body-part-and-region", _edited(_no_anatomy_at_all)),
    ("lower-case-body-part", _edited(_assign(BodyPartExamined="chest"))),
    ("local-body-part-with-chest-region", _edited(_assign(BodyPartExamined="TORAX"))),
    ("missing-modality", _edited(_delete("Modality"))),
    ("dx-class-modality-cr", _edited(_assign(Modality="CR"))),
    ("computed-radiography", _edited(_cr)),
    ("dx-for-processing", _edited(_for_processing)),
    ("monochrome1", _edited(_monochrome1)),
    ("signed-pixels", _edited(_signed)),
    ("eight-bit", _edited(_eight_bit)),
    ("no-window", _edited(_delete("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"))),
    ("private-elements", _edited(_private_elements)),
    ("pixel-data-longer-than-needed", _edited(_padded_pixel_data)),
    ("rle-lossless", _compressed(RLELossless)),
    ("jpeg-lossless", _compressed(JPEGLosslessSV1)),
    ("jpeg-baseline", _compressed(JPEGBaseline8Bit)),
    ("jpeg-extended-12-bit", _compressed(JPEGExtended12Bit)),
    ("jpeg2000-lossless", _compressed(JPEG2000Lossless)),
    ("jpeg2000-lossless-codestream-as-lossy", _compressed(JPEG2000)),
    ("implicit-vr-little-endian", _in_syntax(ImplicitVRLittleEndian)),
    ("explicit-vr-big-endian", _in_syntax(ExplicitVRBigEndian)),
    ("deflated", _in_syntax(DeflatedExplicitVRLittleEndian)),
    ("bare-dataset-implicit-vr", lambda name: _bare(_dx(name))),
    ("tiff-like-preamble", _with_preamble),
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
