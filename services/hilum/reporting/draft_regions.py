"""The drafter's tables: which region of the chest each finding belongs to, and how urgent each is.

Kept apart from the sentence building so that a radiologist can review the clinical ordering in one place.
"""

from __future__ import annotations

from enum import StrEnum

from hilum.common.reported_findings import DevicePosition, FindingStatus, ReportedDevice, ReportedFinding

DEVICE_CODE_PREFIX = "device:"


class Region(StrEnum):
    """A FINDINGS subsection, in report order; the value is its heading."""

    LINES_AND_TUBES = "Lines and tubes"
    LUNGS = "Lungs"
    PLEURA = "Pleura"
    HEART_AND_MEDIASTINUM = "Heart and mediastinum"
    BONES = "Bones"
    OTHER = "Other"  # a label code this table does not know (a changed label map): stated, never dropped


_REGION_OF_LABEL = {
    "atelectasis": Region.LUNGS,
    "consolidation": Region.LUNGS,
    "infiltration": Region.LUNGS,
    "edema": Region.LUNGS,
    "emphysema": Region.LUNGS,
    "fibrosis": Region.LUNGS,
    "pneumonia": Region.LUNGS,
    "nodule": Region.LUNGS,
    "mass": Region.LUNGS,
    "lung_lesion": Region.LUNGS,
    "lung_opacity": Region.LUNGS,
    "pneumothorax": Region.PLEURA,
    "effusion": Region.PLEURA,
    "pleural_thickening": Region.PLEURA,
    "cardiomegaly": Region.HEART_AND_MEDIASTINUM,
    "enlarged_cardiomediastinum": Region.HEART_AND_MEDIASTINUM,
    "hernia": Region.HEART_AND_MEDIASTINUM,
    "fracture": Region.BONES,
}

# A normal region's concise sentence; it cites the region's assessed-and-absent labels.
NORMAL_SENTENCE = {
    Region.LUNGS: "The lungs are clear.",
    Region.PLEURA: "No pleural effusion or pneumothorax.",
    Region.HEART_AND_MEDIASTINUM: "The cardiomediastinal silhouette is within normal limits.",
    Region.BONES: "No acute osseous abnormality.",
    Region.OTHER: "No other abnormality.",
}

# The normal study's impression; it cites every assessed-and-absent label.
NORMAL_IMPRESSION = "No acute cardiopulmonary abnormality."


def region_of(code: str) -> Region:
    """The FINDINGS region of a finding or device code ("device:..." codes are lines and tubes)."""
    if code.startswith(DEVICE_CODE_PREFIX):
        return Region.LINES_AND_TUBES
    return _REGION_OF_LABEL.get(code, Region.OTHER)


# IMPRESSION order, most urgent first. First what needs action within minutes (air in the pleural space, a tube
# or line in the wrong place), then a device whose position needs checking, then acute disease that changes
# today's management, then findings that need follow-up, then chronic or incidental ones. Resolved findings come
# last of all whatever their label, and a label not in this table ranks after every listed one.
MALPOSITIONED_DEVICE = "malpositioned device"
INDETERMINATE_DEVICE = "device of indeterminate position"
URGENCY: tuple[str, ...] = (
    "pneumothorax",
    MALPOSITIONED_DEVICE,
    INDETERMINATE_DEVICE,
    "edema",
    "consolidation",
    "pneumonia",
    "effusion",
    "enlarged_cardiomediastinum",
    "fracture",
    "mass",
    "lung_opacity",
    "infiltration",
    "atelectasis",
    "cardiomegaly",
    "nodule",
    "lung_lesion",
    "hernia",
    "emphysema",
    "fibrosis",
    "pleural_thickening",
)
_UNLISTED, _RESOLVED = len(URGENCY), len(URGENCY) + 1


def finding_urgency(finding: ReportedFinding) -> int:
    """The finding's rank in URGENCY (0 most urgent); resolved findings rank after everything else."""
    if finding.status == FindingStatus.RESOLVED:
        return _RESOLVED
    return URGENCY.index(finding.code) if finding.code in URGENCY else _UNLISTED


def device_urgency(device: ReportedDevice) -> int | None:
    """The device's rank in URGENCY; None for a satisfactory device, which the impression leaves out."""
    if device.position == DevicePosition.MALPOSITIONED:
        return URGENCY.index(MALPOSITIONED_DEVICE)
    if device.position == DevicePosition.INDETERMINATE:
        return URGENCY.index(INDETERMINATE_DEVICE)
    return None
