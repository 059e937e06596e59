"""Hilum's acceptance rules for one incoming DICOM instance: is it a chest radiograph Hilum can read?

Every door (gRPC, DIMSE C-STORE, STOW-RS) calls accept_instance before it acknowledges an instance, so a
PACS learns at once, in its own standard's terms, what Hilum will not analyse and why. The checks run in
this order and the first that fails decides the RejectionCode:

  1. NOT_DICOM: the bytes are a DICOM object (Part 10, or a bare dataset), not cut short in its header.
  2. UNSUPPORTED_TRANSFER_SYNTAX: the transfer syntax is named (file meta; a bare dataset's own encoding),
     one the installed pixel decoders read, and the one the dataset is encoded in; checked first because
     the rest was parsed with it.
  3. MISSING_ATTRIBUTE: Study, Series and SOP Instance UIDs (three distinct UIDs), SOP Class UID and one
     non-empty Patient ID are present and valid in the dataset itself; the file meta never fills them in.
  4. SOP_MISMATCH: the file meta (Media Storage SOP Class/Instance UID) and, on DIMSE, the C-STORE
     request's Affected SOP Class/Instance UID agree with the dataset.
  5. UNSUPPORTED_MODALITY: a CR or DX image storage SOP class (Secondary Capture when the rules allow it)
     whose Modality agrees with it.
  6. NOT_CHEST: the chest rule (CHEST_RULE below).
  7. NO_PIXEL_DATA, MISSING_ATTRIBUTE, UNSUPPORTED_PIXEL_FORMAT, PIXEL_DATA_UNDECODABLE: Pixel Data is
     present and complete, described by its Image Pixel attributes, single-frame greyscale of 8 to 16 bits,
     encoded as the transfer syntax says.
  8. NOT_ASSESSABLE: the image is of a plausible size and shape, then, decoded once through
     hilum.common.dicom.pixels (the decode inference uses), finite and not blank.

A RejectedInstance carries the code and a reason a PACS administrator can act on. Reasons never quote
attribute values except code strings (printable) and the names of SOP classes and transfer syntaxes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.multival import MultiValue
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)

from hilum.common.dicom.attributes import codes, integer, printable, raw_value, text, uid
from hilum.common.dicom.header import InflatesTooLarge, NotDicom, parse_dataset, read_header
from hilum.common.dicom.pixels import ImageUnreadable, Radiograph, decode_radiograph
from hilum.common.settings import IngestionSection
from hilum.common.study import InstanceHeader
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode

# The image storage SOP classes of chest radiographs, and the modality each implies.
RADIOGRAPH_SOP_CLASSES: dict[str, str] = {
    ComputedRadiographyImageStorage: "CR",
    DigitalXRayImageStorageForPresentation: "DX",
    DigitalXRayImageStorageForProcessing: "DX",
}
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX"})
# Every Secondary Capture image storage SOP class (PS3.4 B.5): accepted only when the rules allow it.
SECONDARY_CAPTURE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
    }
)
# A Secondary Capture of a radiograph says the source modality, OT (other), or nothing.
SECONDARY_CAPTURE_MODALITIES = frozenset({"CR", "DX", "OT", ""})

# CHEST_RULE. An instance shows the chest when:
#  1. Body Part Examined is one of the rules' chest_body_parts; or
#  2. Anatomic Region Sequence codes the chest (CHEST_REGION_CODES), unless Body Part Examined names
#     another body part (OTHER_BODY_PARTS): a header that contradicts itself is not trusted; or
#  3. both are absent, and Study Description or Protocol Name has a chest word (CHEST, THORAX, CXR,
#     LUNG, LUNGS), modalities that send no body part usually name the exam; or
#  4. both are absent, the descriptions name no other body part, and the image is CR or DX: a radiograph
#     sent to a chest service without a body part is taken as a chest. The instance is accepted with a
#     note, so the administrator can fix the modality's configuration; a Secondary Capture gets no such
#     benefit of the doubt.
CHEST_REGION_CODES = frozenset(
    {
        ("SCT", "816094009"),  # Chest (CID 4009)
        ("SCT", "51185008"),  # Thoracic structure, the chest code of older DICOM editions
        ("SCT", "43799004"),  # Thoracic cavity
        ("SCT", "39607008"),  # Lung
        ("SRT", "T-D3000"),  # the same concepts in the retired SNOMED RT codes
        ("SRT", "T-D3200"),
        ("SRT", "T-28000"),
        ("SNM3", "T-D3000"),
    }
)
# Body Part Examined defined terms (PS3.16 Annex L) and common words for body parts that are not the chest.
OTHER_BODY_PARTS = frozenset(
    """
    ABDOMEN ANKLE ARM BREAST CALCANEUS CLAVICLE COCCYX CSPINE ELBOW EXTREMITY FACE FEMUR FIBULA FINGER
    FOOT FOREARM HAND HEAD HEEL HIP HUMERUS JAW KNEE LEG LSPINE MANDIBLE NECK NOSE ORBIT PATELLA PELVIS
    RIB RIBS SACRUM SCAPULA SHOULDER SIJOINT SINUS SKULL SPINE SSPINE STERNUM THUMB TIBIA TMJ TOE TSPINE
    WRIST ZYGOMA
    """.split()
)
# In free text some of those words describe positioning (PORTABLE HEAD UP, ARM RAISED), not the exam.
_OTHER_BODY_PART_WORDS = OTHER_BODY_PARTS - {"ARM", "HEAD", "LEG"}
_CHEST_WORDS = re.compile(r"\b(CHEST|THORAX|CXR|LUNGS?)\b", re.IGNORECASE)
_WORDS = re.compile(r"[A-Z]+")

SUPPORTED_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")
# No chest detector comes near this many pixels (43 cm at 70 µm is 6100 on a side); declared sizes
# beyond it are refused before decoding, so a forged header cannot make the decoder allocate gigabytes.
MAX_IMAGE_PIXELS = 50_000_000
# An image where fewer than this share of pixels differ from the most common value is blank (a blank
# plate with a marker or a label): nothing a model or a radiologist can read.
MIN_VARYING_SHARE = 0.01
_BLANK_SAMPLE_PIXELS = 250_000  # the blank test looks at a regular subsample of about this many pixels

_ACCEPTS = "Hilum accepts chest radiographs (CR, DX)"
_PIXEL_DATA = 0x7FE00010
_OTHER_PIXEL_DATA = {"FloatPixelData": "Float Pixel Data", "DoubleFloatPixelData": "Double Float Pixel Data"}
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Start-of-frame markers: SOF0 to SOF15 but DHT (C4), JPG (C8) and DAC (CC), and JPEG-LS SOF55 (F7).
_JPEG_START_OF_FRAME = frozenset(set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {0xF7}
_IDENTIFIERS = (
    ("StudyInstanceUID", "Study Instance UID"),
    ("SeriesInstanceUID", "Series Instance UID"),
    ("SOPClassUID", "SOP Class UID"),
    ("SOPInstanceUID", "SOP Instance UID"),
)
_DEFAULTS = IngestionSection()


class RejectedInstance(Exception):
    """An instance Hilum does not accept: a RejectionCode and a reason without patient data."""

    def __init__(self, code: ingestion_pb2.RejectionCode.ValueType, reason: str) -> None:
        """code: an ingestion_pb2.RejectionCode value; reason: one sentence for a PACS administrator."""
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class AcceptanceRules:
    """The configurable part of acceptance; the defaults are IngestionSection's.

    chest_body_parts: Body Part Examined values that mean the chest, upper case.
    accept_secondary_capture: accept Secondary Capture images (of the chest) as well as CR and DX.
    min_image_side_px: an image shorter than this on either side is not assessable.
    max_aspect_ratio: an image whose long side exceeds its short side by more than this is not assessable.
    """

    chest_body_parts: frozenset[str] = frozenset(_DEFAULTS.chest_body_parts)
    accept_secondary_capture: bool = _DEFAULTS.accept_secondary_capture
    min_image_side_px: int = _DEFAULTS.min_image_side_px
    max_aspect_ratio: float = _DEFAULTS.max_aspect_ratio

    def __post_init__(self) -> None:
        if self.min_image_side_px < 1 or not self.max_aspect_ratio >= 1:
            raise ValueError("min_image_side_px must be at least 1 and max_aspect_ratio at least 1")
        object.__setattr__(self, "chest_body_parts", frozenset(part.upper() for part in self.chest_body_parts))

    @classmethod
    def from_settings(cls, section: IngestionSection) -> AcceptanceRules:
        """The rules an ingestion settings section configures."""
        return cls(
            chest_body_parts=frozenset(section.chest_body_parts),
            accept_secondary_capture=section.accept_secondary_capture,
            min_image_side_px=section.min_image_side_px,
            max_aspect_ratio=section.max_aspect_ratio,
        )


@dataclass(frozen=True)
class AcceptedInstance:
    """An accepted instance: its header, and notes for the administrator (e.g. no Body Part Examined)."""

    header: InstanceHeader
    notes: tuple[str, ...] = ()


def accept_instance(
    content: bytes, rules: AcceptanceRules, affected_sop: tuple[str, str] | None = None
) -> AcceptedInstance:
    """The header of content when it is a single-frame greyscale chest radiograph Hilum can read.

    content: a DICOM Part 10 file, or a bare dataset without preamble and file meta.
    affected_sop: on DIMSE, the C-STORE request's (Affected SOP Class UID, Affected SOP Instance UID).
    Returns the header with the judged modality and body part ("CHEST" when the chest is judged from codes,
    text or by default) and object_key ""; notes say what was accepted on weaker evidence. Raises
    RejectedInstance for the first check that fails, in the order of the module docstring. The pixels
    are decoded once; a 2500 x 2000 12-bit image takes well under a tenth of a second.
    """
    ds = _parse(content)
    syntax = _transfer_syntax(ds, part10=content[128:132] == b"DICM")
    _check_identifiers(ds)
    _check_sop_agreement(ds, affected_sop)
    notes: list[str] = []
    modality = _modality(ds, rules, notes)
    body_part = _chest_body_part(ds, rules, modality, notes)
    first_fragment = _check_pixel_data(ds, syntax)
    rows, columns = _check_pixel_format(ds)
    _check_pixel_length(ds, syntax, rows * columns * (integer(ds, "BitsAllocated") or 0) // 8)
    _check_geometry(rows, columns, rules)
    _check_codestream(first_fragment, syntax, rows, columns)
    _check_image(_decode(ds, syntax, rows, columns))
    header = read_header(ds)
    return AcceptedInstance(
        header=replace(header, body_part=body_part, instance=replace(header.instance, modality=modality)),
        notes=tuple(notes),
    )


# 1. Readable DICOM


def _parse(content: bytes) -> Dataset:
    """The dataset in content; NOT_DICOM when it is none, or its header is cut short."""
    try:
        ds = parse_dataset(content)
    except InflatesTooLarge as error:
        raise RejectedInstance(Code.REJECTION_CODE_NOT_DICOM, str(error)) from error
    except NotDicom as error:
        if _header_is_whole(content):
            # pydicom gives up on the whole file when encapsulated Pixel Data runs past its end.
            raise _incomplete_pixel_data("its encapsulated frames end before their sequence delimiter") from error
        raise RejectedInstance(Code.REJECTION_CODE_NOT_DICOM, str(error)) from error
    last = _raw_element(ds, max(ds.keys()))
    if last is not None and last.tag != _PIXEL_DATA and _is_cut_short(last):
        raise RejectedInstance(
            Code.REJECTION_CODE_NOT_DICOM,
            "The content is truncated: it ends inside an attribute of its header, before the image",
        )
    return ds


def _header_is_whole(content: bytes) -> bool:
    """Whether the header before Pixel Data parses into a DICOM object."""
    try:
        parse_dataset(content, stop_before_pixels=True)
    except NotDicom:
        return False
    return True


def _raw_element(ds: Dataset, tag: int) -> Any:
    """The element as read (a RawDataElement until something converts it), or None."""
    try:
        return ds.get_item(tag)
    except Exception:  # a damaged element can fail on any access
        return None


def _is_cut_short(element: Any) -> bool:
    """Whether an element read from a file holds fewer bytes than its length says (the file ended)."""
    if not isinstance(element, RawDataElement) or element.length == _UNDEFINED_LENGTH:
        return False
    return isinstance(element.value, bytes) and len(element.value) < element.length


# 2. Transfer syntax


def _transfer_syntax(ds: Dataset, part10: bool) -> UID:
    """The transfer syntax the dataset is encoded in, when the installed pixel decoders read it.

    A Part 10 file names it in its file meta; a bare dataset is read in its own (uncompressed) encoding.
    """
    unsupported = Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX
    file_meta = getattr(ds, "file_meta", None)
    if not isinstance(file_meta, Dataset):
        file_meta = Dataset()
    if text(file_meta, "TransferSyntaxUID").rstrip("\0"):
        syntax = UID(uid(file_meta, "TransferSyntaxUID"))
        if not syntax:
            raise RejectedInstance(unsupported, "The Transfer Syntax UID in the file meta information is not a UID")
        try:
            readable = get_decoder(syntax).is_available
        except Exception:  # NotImplementedError: no decoder exists for this UID at all
            readable = False
        if not readable:
            raise RejectedInstance(
                unsupported,
                f"Transfer syntax {syntax.name} is not supported: Hilum reads uncompressed, deflated, RLE, "
                "JPEG, JPEG-LS and JPEG 2000 images",
            )
        if _read_encoding(ds) != (syntax.is_implicit_VR, syntax.is_little_endian):
            # pydicom guessed its way through; the stored object would mislead every other reader.
            raise RejectedInstance(
                unsupported, f"The dataset is not encoded as its file meta's transfer syntax ({syntax.name}) says"
            )
        return syntax
    if part10:
        raise RejectedInstance(unsupported, "The file meta information names no Transfer Syntax UID (0002,0010)")
    pixel_data = _raw_element(ds, _PIXEL_DATA)
    implicit, little_endian = _read_encoding(ds)
    if (pixel_data is not None and _is_encapsulated(pixel_data)) or little_endian is None:
        raise RejectedInstance(
            unsupported,
            "The dataset has compressed Pixel Data but no file meta information to name its transfer syntax",
        )
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little_endian else ExplicitVRBigEndian


def _read_encoding(ds: Dataset) -> tuple[bool | None, bool | None]:
    """(implicit VR, little endian) as the dataset was actually read.

    pydicom records the encoding it found on each element still as read, while Dataset.original_encoding
    repeats what the file meta said even when pydicom had to guess otherwise.
    """
    for tag in ds.keys():
        element = _raw_element(ds, tag)
        if isinstance(element, RawDataElement):
            return element.is_implicit_VR, element.is_little_endian
    return ds.original_encoding


def _is_encapsulated(element: Any) -> bool:
    """Whether Pixel Data was sent encapsulated (undefined length, fragments), as compressed frames are."""
    if isinstance(element, RawDataElement):
        return bool(element.length == _UNDEFINED_LENGTH)
    return bool(getattr(element, "is_undefined_length", False))


# 3 and 4. Identifiers, and their agreement


def _check_identifiers(ds: Dataset) -> None:
    """The UIDs and Patient ID every stored instance needs, valid in the dataset itself."""
    seen: dict[str, str] = {}
    for keyword, name in _IDENTIFIERS:
        value = uid(ds, keyword)
        if not value:
            raise RejectedInstance(
                Code.REJECTION_CODE_MISSING_ATTRIBUTE,
                f"{name} is missing or is not a valid UID: every instance needs one in its dataset",
            )
        if value in seen and keyword != "SOPClassUID":
            raise RejectedInstance(
                Code.REJECTION_CODE_MISSING_ATTRIBUTE,
                f"{name} is not a valid UID for it: it repeats the {seen[value]}, and each identifies one thing",
            )
        seen.setdefault(value, name)
    patient_id = raw_value(ds, "PatientID")
    if isinstance(patient_id, MultiValue | list | tuple) or not text(ds, "PatientID"):
        raise RejectedInstance(
            Code.REJECTION_CODE_MISSING_ATTRIBUTE,
            "Patient ID is missing, empty or has several values: Hilum files every study under one patient",
        )


def _check_sop_agreement(ds: Dataset, affected_sop: tuple[str, str] | None) -> None:
    """A C-STORE request's Affected SOP UIDs, and the file meta, name the dataset's own SOP class and instance.

    The request is checked first: over DIMSE the file meta is rebuilt from it, so a sender reads the
    fault in the terms of what it sent.
    """
    sop_class, sop_instance = uid(ds, "SOPClassUID"), uid(ds, "SOPInstanceUID")
    names = ("SOP Class UID", "SOP Instance UID")
    if affected_sop is not None:
        for requested, value, name in zip(affected_sop, (sop_class, sop_instance), names, strict=True):
            if requested.strip().rstrip("\0") != value:
                raise RejectedInstance(
                    Code.REJECTION_CODE_SOP_MISMATCH,
                    f"The dataset's {name} differs from the C-STORE request's Affected {name}",
                )
    file_meta = getattr(ds, "file_meta", None)
    if isinstance(file_meta, Dataset):
        for keyword, value, name in zip(
            ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID"), (sop_class, sop_instance), names, strict=True
        ):
            meta_value = text(file_meta, keyword).rstrip("\0")
            if meta_value and meta_value != value:
                raise RejectedInstance(
                    Code.REJECTION_CODE_SOP_MISMATCH,
                    f"The file meta information's Media Storage {name} differs from the dataset's {name}",
                )


# 5. SOP class and modality


def _modality(ds: Dataset, rules: AcceptanceRules, notes: list[str]) -> str:
    """The modality of a radiograph SOP class (or an allowed Secondary Capture) that agrees with Modality."""
    sop_class = UID(uid(ds, "SOPClassUID"))
    modality = text(ds, "Modality").upper()
    unsupported = Code.REJECTION_CODE_UNSUPPORTED_MODALITY
    if sop_class in SECONDARY_CAPTURE_SOP_CLASSES:
        if not rules.accept_secondary_capture:
            raise RejectedInstance(
                unsupported,
                f"Secondary Capture images ({sop_class.name}) are not accepted: {_ACCEPTS}; "
                "an administrator can allow Secondary Capture in the ingestion settings",
            )
        if modality not in SECONDARY_CAPTURE_MODALITIES:
            raise RejectedInstance(
                unsupported,
                f"A Secondary Capture of modality {printable(modality)} is not supported: {_ACCEPTS}",
            )
        return modality or "OT"
    implied = RADIOGRAPH_SOP_CLASSES.get(sop_class)
    if implied is None:
        raise RejectedInstance(unsupported, f"SOP Class {sop_class.name} is not supported: {_ACCEPTS}")
    if not modality:
        notes.append(f"Modality is missing; taken as {implied} from the SOP Class ({sop_class.name})")
        return implied
    if modality not in RADIOGRAPH_MODALITIES:
        raise RejectedInstance(
            unsupported,
            f"Modality {printable(modality)} is not supported, and contradicts the SOP Class ({sop_class.name}): "
            f"{_ACCEPTS}",
        )
    if modality != implied:
        # CR and DX are both projection radiographs; field systems mix the two up, and nothing Hilum
        # does depends on which, so the mismatch is reported rather than refused.
        notes.append(f"Modality {modality} does not match the SOP Class ({sop_class.name}); accepted as a radiograph")
    return modality


# 6. The chest


def _chest_body_part(ds: Dataset, rules: AcceptanceRules, modality: str, notes: list[str]) -> str:
    """The body part of a chest instance, by CHEST_RULE; other body parts are rejected."""
    body_part = text(ds, "BodyPartExamined").upper()
    region_codes = codes(ds, "AnatomicRegionSequence")
    not_chest = Code.REJECTION_CODE_NOT_CHEST
    if body_part in rules.chest_body_parts:
        return body_part
    if body_part in OTHER_BODY_PARTS:
        raise RejectedInstance(
            not_chest, f"Body part {printable(body_part)} is not supported: Hilum accepts chest radiographs only"
        )
    if any(code in CHEST_REGION_CODES for code in region_codes):
        if body_part:
            notes.append("Body Part Examined is not a chest term Hilum knows; accepted by its Anatomic Region Sequence")
        return "CHEST"
    if body_part:
        raise RejectedInstance(
            not_chest,
            f"Body part {printable(body_part)} is not one of the chest terms Hilum accepts "
            f"({', '.join(sorted(rules.chest_body_parts))})",
        )
    if region_codes:
        raise RejectedInstance(
            not_chest, "Anatomic Region Sequence does not code the chest: Hilum accepts chest radiographs only"
        )
    descriptions = f"{text(ds, 'StudyDescription')} {text(ds, 'ProtocolName')}"
    if _CHEST_WORDS.search(descriptions):
        notes.append(
            "Body Part Examined is missing; accepted as a chest radiograph by its Study Description or Protocol Name"
        )
        return "CHEST"
    if _OTHER_BODY_PART_WORDS.intersection(_WORDS.findall(descriptions.upper())):
        raise RejectedInstance(
            not_chest,
            "Body Part Examined is missing, and the Study Description or Protocol Name names another body part: "
            "Hilum accepts chest radiographs only",
        )
    if modality in RADIOGRAPH_MODALITIES:
        notes.append(
            "Body Part Examined is missing; accepted as a chest radiograph by default, as nothing in the header "
            "names another body part: please configure the modality to send it"
        )
        return "CHEST"
    raise RejectedInstance(
        not_chest,
        "The instance does not identify the chest: Body Part Examined and Anatomic Region Sequence are absent, "
        "and neither Study Description nor Protocol Name names a chest exam",
    )


# 7. Pixel data


def _check_pixel_data(ds: Dataset, syntax: UID) -> bytes:
    """Pixel Data is present, not empty, and encapsulated exactly when the transfer syntax compresses.

    Returns the first fragment of compressed Pixel Data (the start of the first frame); b"" when native.
    """
    for keyword, name in _OTHER_PIXEL_DATA.items():
        if keyword in ds and _PIXEL_DATA not in ds:
            raise RejectedInstance(
                Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT,
                f"{name} is not supported: Hilum reads integer Pixel Data (7FE0,0010)",
            )
    element = _raw_element(ds, _PIXEL_DATA)
    value = getattr(element, "value", None)
    if element is None or not isinstance(value, bytes) or not value:
        raise RejectedInstance(
            Code.REJECTION_CODE_NO_PIXEL_DATA,
            "The instance has no Pixel Data (7FE0,0010), or it is empty: Hilum needs the image itself",
        )
    undecodable = Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE
    if syntax.is_encapsulated != _is_encapsulated(element):
        expected = "compressed frames (encapsulated)" if syntax.is_encapsulated else "uncompressed pixels"
        raise RejectedInstance(
            undecodable,
            f"Pixel Data does not match its transfer syntax: {syntax.name} needs {expected}, the instance "
            "holds the other",
        )
    if syntax.is_encapsulated:
        try:
            items = list(generate_fragments(value))
        except ValueError as error:
            raise RejectedInstance(
                undecodable, f"Pixel Data is not valid {syntax.name} data: its fragment items are damaged"
            ) from error
        fragments = [item for item in items[1:] if item]  # the first item is the Basic Offset Table
        if not fragments:
            raise RejectedInstance(
                Code.REJECTION_CODE_NO_PIXEL_DATA,
                "Pixel Data holds no compressed frame, only an offset table: Hilum needs the image itself",
            )
        return fragments[0]
    return b""


def _check_pixel_format(ds: Dataset) -> tuple[int, int]:
    """(rows, columns) of one frame of 1-sample greyscale with 8 to 16 bits stored in 8 or 16 allocated."""
    photometric = text(ds, "PhotometricInterpretation").upper()
    if not photometric:
        raise _missing("Photometric Interpretation")
    rows = _required_count(ds, "Rows", "Rows")
    columns = _required_count(ds, "Columns", "Columns")
    samples = _required_count(ds, "SamplesPerPixel", "Samples per Pixel")
    bits_allocated = _required_count(ds, "BitsAllocated", "Bits Allocated")
    bits_stored = _required_count(ds, "BitsStored", "Bits Stored")
    if integer(ds, "PixelRepresentation") not in (0, 1):
        raise _missing("Pixel Representation")

    unsupported = Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT
    if photometric not in SUPPORTED_PHOTOMETRIC or samples != 1:
        raise RejectedInstance(
            unsupported,
            f"Photometric Interpretation {printable(photometric)} with {samples} samples per pixel is not "
            "supported: Hilum reads greyscale images (MONOCHROME1, MONOCHROME2)",
        )
    frames = integer(ds, "NumberOfFrames")
    if frames is not None and frames != 1:
        shown = f"{frames} frames" if frames > 1 else "an invalid Number of Frames"
        raise RejectedInstance(
            unsupported, f"Multi-frame images ({shown}) are not supported: Hilum reads single-frame images"
        )
    if bits_allocated not in (8, 16) or not 8 <= bits_stored <= bits_allocated:
        raise RejectedInstance(
            unsupported,
            f"{bits_stored} bits stored in {bits_allocated} allocated is not supported: "
            "Hilum reads 8 to 16 bits stored in 8 or 16 allocated",
        )
    return rows, columns


def _required_count(ds: Dataset, keyword: str, name: str) -> int:
    """A positive integer attribute the image cannot be read without."""
    value = integer(ds, keyword)
    if value is None or value <= 0:
        raise _missing(name)
    return value


def _missing(name: str) -> RejectedInstance:
    """The rejection for a pixel description attribute that is absent or invalid."""
    return RejectedInstance(
        Code.REJECTION_CODE_MISSING_ATTRIBUTE, f"{name} is missing or invalid: it is needed to read the image"
    )


def _check_pixel_length(ds: Dataset, syntax: UID, expected: int) -> None:
    """Uncompressed Pixel Data holds every byte the image needs (a transfer cut short holds fewer)."""
    if syntax.is_encapsulated:
        return  # compressed frames are checked by decoding them
    value = getattr(_raw_element(ds, _PIXEL_DATA), "value", b"")
    if isinstance(value, bytes) and len(value) < expected:
        raise _incomplete_pixel_data(
            f"it holds {len(value)} bytes where Rows, Columns and Bits Allocated need {expected}"
        )


def _incomplete_pixel_data(why: str) -> RejectedInstance:
    return RejectedInstance(Code.REJECTION_CODE_NO_PIXEL_DATA, f"Pixel Data is incomplete: {why}")


# 8. An image that can be assessed


def _check_geometry(rows: int, columns: int, rules: AcceptanceRules) -> None:
    """The declared size is that of a radiograph: not tiny, not a strip, not beyond any detector."""
    not_assessable = Code.REJECTION_CODE_NOT_ASSESSABLE
    if min(rows, columns) < rules.min_image_side_px:
        raise RejectedInstance(
            not_assessable,
            f"The image is {rows} x {columns} pixels: too small to assess "
            f"(at least {rules.min_image_side_px} on each side)",
        )
    if max(rows, columns) > rules.max_aspect_ratio * min(rows, columns):
        raise RejectedInstance(
            not_assessable,
            f"The image is {rows} x {columns} pixels: its aspect ratio is beyond {rules.max_aspect_ratio:g} to 1, "
            "which no chest radiograph has",
        )
    if rows * columns > MAX_IMAGE_PIXELS:
        raise RejectedInstance(
            not_assessable,
            f"The image is {rows} x {columns} pixels: larger than any radiograph detector "
            f"(at most {MAX_IMAGE_PIXELS} pixels)",
        )


def _check_codestream(fragment: bytes, syntax: UID, rows: int, columns: int) -> None:
    """A JPEG, JPEG-LS or JPEG 2000 frame's own header agrees with Rows and Columns and holds one component.

    Decoders size their output by the codestream's header, not the dataset's: without this check a
    small frame declaring 40000 x 40000 pixels makes the JPEG 2000 decoder allocate gigabytes.
    """
    if syntax in JPEG2000TransferSyntaxes:
        size = _j2k_size(fragment)
    elif syntax in JPEGTransferSyntaxes or syntax in JPEGLSTransferSyntaxes:
        size = _jpeg_size(fragment)
    else:
        return  # RLE and native pixels are decoded into Rows x Columns
    undecodable = Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE
    if size is None:
        raise RejectedInstance(
            undecodable, f"Pixel Data is not {syntax.name} data: its first frame has no readable frame header"
        )
    if size != (rows, columns, 1):
        frame_rows, frame_columns, components = size
        raise RejectedInstance(
            undecodable,
            f"The compressed frame is {frame_rows} x {frame_columns} pixels of {components} components where the "
            f"dataset says {rows} x {columns} greyscale",
        )


def _jpeg_size(frame: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) from a JPEG or JPEG-LS frame's start-of-frame segment (T.81 B.2.2)."""
    if not frame.startswith(b"\xff\xd8"):
        return None
    position = 2
    while position + 4 <= len(frame):
        if frame[position] != 0xFF:
            return None
        marker = frame[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        (length,) = struct.unpack_from(">H", frame, position + 2)
        if marker in _JPEG_START_OF_FRAME and position + 10 <= len(frame):
            rows, columns = struct.unpack_from(">HH", frame, position + 5)
            return rows, columns, frame[position + 9]
        if marker == 0xDA:  # start of scan before any frame header
            return None
        position += 2 + length
    return None


def _j2k_size(frame: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) from a JPEG 2000 codestream's SIZ segment (T.800 A.5.1), found in a bare
    codestream or inside a JP2 file."""
    start = frame.find(b"\xff\x4f\xff\x51")
    if start < 0 or start + 42 > len(frame):
        return None
    width, height, x_offset, y_offset = struct.unpack_from(">IIII", frame, start + 8)
    (components,) = struct.unpack_from(">H", frame, start + 40)
    return height - y_offset, width - x_offset, components


def _decode(ds: Dataset, syntax: UID, rows: int, columns: int) -> Radiograph:
    """The image as inference will see it; PIXEL_DATA_UNDECODABLE when its bytes do not decode to it."""
    undecodable = Code.REJECTION_CODE_PIXEL_DATA_UNDECODABLE
    try:
        image = decode_radiograph(ds)
    except ImageUnreadable as error:
        raise RejectedInstance(undecodable, str(error)) from error
    except Exception as error:  # decoders meet adversarial bytes: any failure is the data's
        raise RejectedInstance(undecodable, f"Pixel Data could not be decoded ({syntax.name})") from error
    if image.pixels.shape != (rows, columns):
        raise RejectedInstance(
            undecodable,
            f"Pixel Data decodes to {image.pixels.shape[0]} x {image.pixels.shape[1]} pixels where Rows and "
            f"Columns say {rows} x {columns}",
        )
    return image


def _check_image(image: Radiograph) -> None:
    """The decoded image has finite values that vary: it can show something."""
    not_assessable = Code.REJECTION_CODE_NOT_ASSESSABLE
    pixels = image.pixels
    if not np.isfinite(pixels).all():
        raise RejectedInstance(
            not_assessable,
            "The image has values that are not finite after its Modality and VOI LUTs (e.g. an absurd Rescale Slope)",
        )
    if _varying_share(pixels) < MIN_VARYING_SHARE:
        raise RejectedInstance(
            not_assessable,
            "The image is blank: after its Modality and VOI LUTs almost every pixel has the same value",
        )


def _varying_share(pixels: npt.NDArray[np.float32]) -> float:
    """The share of pixels that differ from the most common value, from a regular subsample.

    When more than half the pixels share one value, that value is the median; otherwise the share is
    at least one half anyway, so the median is as good as the mode for telling a blank image.
    """
    step = max(1, int(np.sqrt(pixels.size / _BLANK_SAMPLE_PIXELS)))
    sample = pixels[::step, ::step]
    return float(np.count_nonzero(sample != np.median(sample))) / sample.size
