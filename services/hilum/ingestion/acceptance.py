"""Hilum's acceptance rules for one incoming DICOM instance: is it a chest radiograph Hilum can read?

Every door (gRPC, DIMSE C-STORE, STOW-RS) calls accept_instance before it acknowledges an instance, so a
PACS learns at once, in its own standard's terms, what Hilum will not analyse and why. The checks run in
this order and the first that fails decides the RejectionCode:

  1. NOT_DICOM: the bytes are a DICOM object (Part 10, or a bare dataset), not cut short in its header.
  2. UNSUPPORTED_TRANSFER_SYNTAX: the transfer syntax is named (file meta; a bare dataset's own encoding),
     one the installed pixel decoders read, and the one the dataset is encoded in; checked first because
     the rest was parsed with it. (1 and 2: rules_encoding)
  3. MISSING_ATTRIBUTE: Study, Series and SOP Instance UIDs (three distinct UIDs), SOP Class UID and one
     non-empty Patient ID are present and valid in the dataset itself; the file meta never fills them in.
  4. SOP_MISMATCH: the file meta (Media Storage SOP Class/Instance UID) and, on DIMSE, the C-STORE
     request's Affected SOP Class/Instance UID agree with the dataset. (3 and 4: rules_identifiers)
  5. UNSUPPORTED_MODALITY: a CR or DX image storage SOP class (Secondary Capture when the rules allow it)
     whose Modality agrees with it.
  6. NOT_CHEST: the chest rule (rules_anatomy.CHEST_RULE). (5 and 6: rules_anatomy)
  7. NO_PIXEL_DATA, MISSING_ATTRIBUTE, UNSUPPORTED_PIXEL_FORMAT, PIXEL_DATA_UNDECODABLE: Pixel Data is
     present and complete, described by its Image Pixel attributes, single-frame greyscale of 8 to 16 bits,
     encoded as the transfer syntax says. (rules_pixels)
  8. NOT_ASSESSABLE: the image is of a plausible size and shape, then, decoded once through
     hilum.common.dicom.pixels (the decode inference uses), finite and not blank. (rules_image)

The door's decode is the only one an image needs: for an accepted image that can be its study's frontal view
(views.may_be_frontal), the caller's model_inputs makes the models' inputs from it, and inference takes those.

A RejectedInstance carries the code and a reason a PACS administrator can act on. Reasons never quote
attribute values except code strings (printable) and the names of SOP classes and transfer syntaxes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from hilum.common.dicom.attributes import integer
from hilum.common.dicom.header import read_header
from hilum.common.dicom.pixels import DECODE_SLOTS, Radiograph
from hilum.common.model_inputs import ModelInputs
from hilum.common.settings import IngestionSection
from hilum.common.study import InstanceHeader
from hilum.ingestion.rejection import RejectedInstance
from hilum.ingestion.rules_anatomy import chest_body_part, judged_modality
from hilum.ingestion.rules_encoding import parse, transfer_syntax
from hilum.ingestion.rules_identifiers import check_identifiers, check_sop_agreement
from hilum.ingestion.rules_image import check_codestream, check_geometry, check_image, decode
from hilum.ingestion.rules_pixels import check_pixel_data, check_pixel_format, check_pixel_length
from hilum.ingestion.views import may_be_frontal

__all__ = ["AcceptanceRules", "AcceptedInstance", "RejectedInstance", "accept_instance"]

_DEFAULTS = IngestionSection()


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
    """An accepted instance: its header, notes for the administrator (e.g. no Body Part Examined), and the models'
    inputs made from its decode when it may be the frontal view and the caller asked for them."""

    header: InstanceHeader
    notes: tuple[str, ...] = ()
    model_inputs: ModelInputs | None = None


def accept_instance(
    content: bytes, rules: AcceptanceRules, affected_sop: tuple[str, str] | None = None,
    model_inputs: Callable[[Radiograph], ModelInputs | None] | None = None,
) -> AcceptedInstance:
    """The header of content when it is a single-frame greyscale chest radiograph Hilum can read.

    content: a DICOM Part 10 file, or a bare dataset without preamble and file meta.
    affected_sop: on DIMSE, the C-STORE request's (Affected SOP Class UID, Affected SOP Instance UID).
    model_inputs: makes the models' inputs from the decoded image of an instance that may be the frontal view.
    Returns the header with the judged modality and body part ("CHEST" when the chest is judged from codes,
    text or by default) and object_key ""; notes say what was accepted on weaker evidence. Raises
    RejectedInstance for the first check that fails, in the order of the module docstring. The pixels
    are decoded once; a 2500 x 2000 12-bit image takes well under a tenth of a second.
    """
    ds = parse(content)
    syntax = transfer_syntax(ds, part10=content[128:132] == b"DICM")
    check_identifiers(ds)
    check_sop_agreement(ds, affected_sop)
    notes: list[str] = []
    modality = judged_modality(ds, rules.accept_secondary_capture, notes)
    body_part = chest_body_part(ds, rules.chest_body_parts, modality, notes)
    first_fragment = check_pixel_data(ds, syntax)
    rows, columns = check_pixel_format(ds)
    check_pixel_length(ds, syntax, rows * columns * (integer(ds, "BitsAllocated") or 0) // 8)
    check_geometry(rows, columns, rules.min_image_side_px, rules.max_aspect_ratio)
    check_codestream(first_fragment, syntax, rows, columns)
    header = read_header(ds)
    inputs = None
    with DECODE_SLOTS:  # the decoded image is dropped before the slot is given back
        image = decode(ds, syntax, rows, columns)
        check_image(image)
        if model_inputs is not None and may_be_frontal(header.instance):
            inputs = model_inputs(image)
    return AcceptedInstance(
        header=replace(header, body_part=body_part, instance=replace(header.instance, modality=modality)),
        notes=tuple(notes), model_inputs=inputs,
    )
