"""Acceptance rules 5 and 6: a radiograph SOP class with a Modality that agrees, showing the chest.

UNSUPPORTED_MODALITY unless the SOP class is CR or DX image storage (Secondary Capture when the rules
allow it) and Modality agrees with it; NOT_CHEST unless CHEST_RULE below finds the chest.
"""

from __future__ import annotations

import re

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
)

from hilum.common.dicom.attributes import codes, printable, text, uid
from hilum.common.study import RADIOGRAPH_MODALITIES
from hilum.ingestion.rejection import RejectedInstance
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode

# The image storage SOP classes of chest radiographs, and the modality each implies.
RADIOGRAPH_SOP_CLASSES: dict[str, str] = {
    ComputedRadiographyImageStorage: "CR",
    DigitalXRayImageStorageForPresentation: "DX",
    DigitalXRayImageStorageForProcessing: "DX",
}
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

_ACCEPTS = "Hilum accepts chest radiographs (CR, DX)"


# 5. SOP class and modality


def judged_modality(ds: Dataset, accept_secondary_capture: bool, notes: list[str]) -> str:
    """The modality of a radiograph SOP class (or an allowed Secondary Capture) that agrees with Modality."""
    sop_class = UID(uid(ds, "SOPClassUID"))
    modality = text(ds, "Modality").upper()
    unsupported = Code.REJECTION_CODE_UNSUPPORTED_MODALITY
    if sop_class in SECONDARY_CAPTURE_SOP_CLASSES:
        if not accept_secondary_capture:
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


def chest_body_part(ds: Dataset, chest_body_parts: frozenset[str], modality: str, notes: list[str]) -> str:
    """The body part of a chest instance, by CHEST_RULE; other body parts are rejected."""
    body_part = text(ds, "BodyPartExamined").upper()
    region_codes = codes(ds, "AnatomicRegionSequence")
    not_chest = Code.REJECTION_CODE_NOT_CHEST
    if body_part in chest_body_parts:
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
            f"({', '.join(sorted(chest_body_parts))})",
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
