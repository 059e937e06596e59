"""Whether a tube or line tip lies where it should: sourced placement rules on landmark distances, adults only.

A rule judges the tip's height above its reference landmark (craniocaudal, mm, positive above: see
device_geometry.height_above_mm), and for a nasogastric tube also the straight-line distance to it. Every
threshold names its clinical source beside it. Where no source gives a numeric rule, no satisfactory or
malpositioned call is made and the reason says why: chest drains and pacemaker leads get no call at all, and a
central-line tip in the right atrium or the upper superior vena cava, where sources differ, is indeterminate.

Limits are inclusive and stated as the source states its range: a tip exactly 30 mm or 70 mm above the carina
is within "3-7 cm"; a tip exactly level with the carina is "at or below" it. The reason sentences name no
patient and no dates.

The thresholds are for adults. Under 18 the distances are still measured but no call is made; when the age
is unknown no call is made either (the conservative choice: an adult limit applied to a child would misjudge
a tube sized and placed for a child, and nothing on the image says which the patient is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from hilum.common.reported_findings import DevicePosition, DeviceType
from hilum.inference.device_geometry import Landmark, Measurement, Spacing, distance_mm, height_above_mm

# The landmark each kind's tip is judged against. Chest drains and pacemaker leads have none: the British
# Thoracic Society pleural guideline (Havelock T et al., Thorax 2010;65 Suppl 2:ii61-ii76) gives no tip
# position as a distance, and a lead tip is judged by the chamber it lies in, which no landmark here marks.
REFERENCE_LANDMARK: dict[DeviceType, str] = {
    DeviceType.ETT: "carina",
    DeviceType.NG_TUBE: "gastroesophageal junction",
    DeviceType.CVC: "cavoatrial junction",
    DeviceType.PICC: "cavoatrial junction",
}

# Landmarks below this confidence are treated as not found. A model operating point, not a clinical
# threshold: a placeholder until the landmark model is validated.
DEFAULT_MIN_CONFIDENCE = 0.5

# Endotracheal tube. Goodman LR, Conrardy PA, Laing F, Singer MM. Radiographic evaluation of endotracheal tube
# position. AJR 1976;127:433-434: with the neck neutral the tip lies 5 +/- 2 cm above the carina; flexion and
# extension move it about 2 cm towards or away from the carina.
ETT_MIN_ABOVE_CARINA_MM = 30.0
ETT_MAX_ABOVE_CARINA_MM = 70.0
# Godoy MCB, Leitman BS, de Groot PM, Vlahos I, Naidich DP. Chest radiography in the ICU: Part 1, Evaluation
# of airway, enteric, and pleural tubes. AJR 2012;198:563-571: a tip at or beyond the carina may enter a main
# bronchus (main-stem intubation).
ETT_AT_CARINA_MM = 0.0

# Nasogastric tube. NPSA/2011/PSA002, Reducing the harm caused by misplaced nasogastric feeding tubes in
# adults, children and infants (National Patient Safety Agency, March 2011): the tip must lie below the
# (left) hemidiaphragm; a tip above the gastroesophageal junction has not reached the stomach.
NG_MAX_ABOVE_JUNCTION_MM = 0.0
# Godoy et al., AJR 2012;198:563-571 (above): the tip should lie at least 10 cm beyond the gastroesophageal
# junction so that the side holes are in the stomach.
NG_MIN_BEYOND_JUNCTION_MM = 100.0

# Central venous catheters and PICCs. Gorski LA et al. Infusion Therapy Standards of Practice, 8th ed.
# J Infus Nurs 2021;44(1S):S1-S224: the tip belongs in the lower third of the superior vena cava, at or near
# the cavoatrial junction. Standring S (ed). Gray's Anatomy, 41st ed., 2016: the adult superior vena cava is
# about 7 cm long, so its lower third is the lowest 7/3 cm above the junction.
SVC_LENGTH_MM = 70.0
CENTRAL_LINE_MAX_SATISFACTORY_ABOVE_JUNCTION_MM = SVC_LENGTH_MM / 3
# A tip higher above the junction than the vein is long has left the superior vena cava (a brachiocephalic
# vein), outside the range every source advises (INS 2021; Bodenham A et al., Association of Anaesthetists of
# Great Britain and Ireland: Safe vascular access 2016, Anaesthesia 2016;71:573-585; Pittiruti M et al., ESPEN
# guidelines on parenteral nutrition: central venous catheters, Clin Nutr 2009;28:365-377).
CENTRAL_LINE_MAX_ABOVE_JUNCTION_MM = SVC_LENGTH_MM
# Between these, in the upper or middle superior vena cava, sources differ: INS advises the lower third, while
# UK practice accepts a tip above the carina, outside the pericardium (Stonelake PA, Bodenham AR. The carina
# as a radiological landmark for central venous catheter tip position. Br J Anaesth 2006;96:335-340). Below
# the junction, in the right atrium, AAGBI 2016 and ESPEN 2009 accept the upper atrium, INS only "near" the
# junction, and none gives a depth limit. Both are indeterminate.

ADULT_AGE_YEARS = 18
CHILD_REASON = "placement thresholds are for adults; patient is under 18"
# Above this an age is a broken header (or a placeholder birth date), not a patient.
MAX_PLAUSIBLE_AGE_YEARS = 130
_DAYS_PER_YEAR = 365.25
# DICOM AS: three digits and a unit (days, weeks, months, years); shorter numbers are accepted as sent.
_AGE_STRING = re.compile(r"(\d{1,3})([DWMY])")


class AgeGroup(StrEnum):
    """Whether adult placement thresholds apply to the patient."""

    ADULT = "adult"
    CHILD = "child"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class AgeAtStudy:
    """The patient's age at the study: group, completed years (None when unknown), and the basis of the decision
    or why the age is unknown (never the age or dates themselves, which identify)."""

    group: AgeGroup
    years: int | None
    basis: str


def years_from_patient_age(value: str) -> int | None:
    """Completed years in a DICOM Patient's Age (AS) value such as "045Y", "006M", "010W" or "003D"; None when
    malformed or implausible. Days and weeks count 365.25 days a year, months 12 a year.
    """
    match = _AGE_STRING.fullmatch(value.strip().upper())
    if match is None:
        return None
    number, unit = int(match.group(1)), match.group(2)
    if unit == "Y":
        years = number
    elif unit == "M":
        years = number // 12
    else:
        years = int(number * (7 if unit == "W" else 1) // _DAYS_PER_YEAR)
    return years if years <= MAX_PLAUSIBLE_AGE_YEARS else None


def years_between(birth_date: date, study_date: date) -> int | None:
    """Completed years from birth to the study date (a birthday counts from its day; 29 February from
    1 March in other years); None when birth follows the study or the age is implausible."""
    if birth_date > study_date:
        return None
    years = study_date.year - birth_date.year
    if (study_date.month, study_date.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years if years <= MAX_PLAUSIBLE_AGE_YEARS else None


def age_at_study(patient_age: str, birth_date: date | None, study_date: date | None) -> AgeAtStudy:
    """The patient's age group at the study from Patient's Age (AS, "" when absent) and Patient's Birth Date
    with Study Date.

    The dates give the exact age and are preferred; Patient's Age is used without them. When both are usable
    and disagree on whether the patient is an adult, the age is unknown: one of them is wrong, and which
    cannot be told.
    """
    by_age = years_from_patient_age(patient_age)
    by_dates = years_between(birth_date, study_date) if birth_date is not None and study_date is not None else None
    if by_age is not None and by_dates is not None and _group(by_age) != _group(by_dates):
        return AgeAtStudy(
            AgeGroup.UNKNOWN, None, "Patient's Age and the birth date disagree on whether the patient is an adult"
        )
    if by_dates is not None:
        return AgeAtStudy(_group(by_dates), by_dates, "from the birth date and the study date")
    if by_age is not None:
        return AgeAtStudy(_group(by_age), by_age, "from Patient's Age")
    return AgeAtStudy(
        AgeGroup.UNKNOWN, None, "neither Patient's Age nor a birth date with a study date gives a usable age"
    )


def _group(years: int) -> AgeGroup:
    """ADULT from 18 completed years, else CHILD."""
    return AgeGroup.ADULT if years >= ADULT_AGE_YEARS else AgeGroup.CHILD


@dataclass(frozen=True)
class Ruling:
    """A placement rule's call on a measured tip, with the reason in a clause fit for a report."""

    call: DevicePosition
    reason: str


@dataclass(frozen=True)
class Placement:
    """A device tip's placement.

    call: None when no call is made (no sourced rule for the kind, a patient under 18, an unknown age); the
    reason says why. tip_above_reference: the tip's height above REFERENCE_LANDMARK[device] (positive above);
    tip_to_reference: the straight-line distance to it. Both are None when the kind has no reference or a
    landmark was not located, and "not measurable" (value None) without a usable pixel spacing.
    """

    device: DeviceType
    call: DevicePosition | None
    reason: str
    tip_above_reference: Measurement | None = None
    tip_to_reference: Measurement | None = None


def ett_ruling(tip_above_carina_mm: float) -> Ruling:
    """The endotracheal tube call from the tip's height above the carina (Goodman 1976; Godoy 2012)."""
    where = _where(tip_above_carina_mm, "carina")
    if tip_above_carina_mm <= ETT_AT_CARINA_MM:
        return Ruling(
            DevicePosition.MALPOSITIONED,
            f"tip {where}: at or below the carina the tube may lie in a main bronchus (Godoy 2012)",
        )
    if tip_above_carina_mm < ETT_MIN_ABOVE_CARINA_MM:
        return Ruling(
            DevicePosition.MALPOSITIONED,
            f"tip {where}: lower than {ETT_MIN_ABOVE_CARINA_MM:.0f} mm above the carina, the limit for a neutral "
            "neck (Goodman 1976); neck flexion moves the tip about 20 mm further down",
        )
    if tip_above_carina_mm <= ETT_MAX_ABOVE_CARINA_MM:
        return Ruling(
            DevicePosition.SATISFACTORY,
            f"tip {where}: within {ETT_MIN_ABOVE_CARINA_MM:.0f}-{ETT_MAX_ABOVE_CARINA_MM:.0f} mm above the "
            "carina for a neutral neck (Goodman 1976)",
        )
    return Ruling(
        DevicePosition.MALPOSITIONED,
        f"tip {where}: higher than {ETT_MAX_ABOVE_CARINA_MM:.0f} mm above the carina, the limit for a neutral "
        "neck (Goodman 1976); neck extension moves the tip about 20 mm further up, towards the larynx",
    )


def ng_tube_ruling(tip_above_junction_mm: float, tip_to_junction_mm: float) -> Ruling:
    """The nasogastric tube call from the tip's height above the gastroesophageal junction and its straight-line
    distance from it (NPSA 2011; Godoy 2012).

    The straight line is the shortest the tube beyond the junction can be, so a tip at least 100 mm away has
    100 mm of tube in the stomach; a nearer tip may too, along a curved course, so it is indeterminate. The
    tube's course (NPSA's other criteria) is not judged from its tip.
    """
    where = _where(tip_above_junction_mm, "gastroesophageal junction")
    if tip_above_junction_mm > NG_MAX_ABOVE_JUNCTION_MM:
        return Ruling(
            DevicePosition.MALPOSITIONED,
            f"tip {where}: it has not passed the junction into the stomach, and must lie below the "
            "hemidiaphragm (NPSA 2011)",
        )
    if tip_to_junction_mm >= NG_MIN_BEYOND_JUNCTION_MM:
        return Ruling(
            DevicePosition.SATISFACTORY,
            f"tip {tip_to_junction_mm:.1f} mm beyond the gastroesophageal junction, at least the "
            f"{NG_MIN_BEYOND_JUNCTION_MM:.0f} mm that puts the side holes in the stomach (Godoy 2012); judged "
            "on the tip alone, the tube's course is not assessed (NPSA 2011)",
        )
    return Ruling(
        DevicePosition.INDETERMINATE,
        f"tip not above the gastroesophageal junction but only {tip_to_junction_mm:.1f} mm from it in a straight "
        f"line, less than the {NG_MIN_BEYOND_JUNCTION_MM:.0f} mm advised (Godoy 2012): the side holes may lie in "
        "the esophagus, and the length of tube beyond the junction cannot be measured from its tip",
    )


def central_line_ruling(tip_above_junction_mm: float) -> Ruling:
    """The central venous catheter or PICC call from the tip's height above the cavoatrial junction (INS 2021;
    Gray's Anatomy; AAGBI 2016; ESPEN 2009)."""
    where = _where(tip_above_junction_mm, "cavoatrial junction")
    if tip_above_junction_mm < 0.0:
        return Ruling(
            DevicePosition.INDETERMINATE,
            f"tip {where}, in the right atrium: the upper atrium is accepted by AAGBI 2016 and ESPEN 2009 but lies "
            "beyond the junction INS 2021 advises, and no source gives a depth limit",
        )
    if tip_above_junction_mm <= CENTRAL_LINE_MAX_SATISFACTORY_ABOVE_JUNCTION_MM:
        return Ruling(
            DevicePosition.SATISFACTORY,
            f"tip {where}: at the junction or in the lower third of the superior vena cava (INS 2021), the lowest "
            f"{CENTRAL_LINE_MAX_SATISFACTORY_ABOVE_JUNCTION_MM:.1f} mm of its typical {SVC_LENGTH_MM:.0f} mm "
            "(Gray's Anatomy)",
        )
    if tip_above_junction_mm <= CENTRAL_LINE_MAX_ABOVE_JUNCTION_MM:
        return Ruling(
            DevicePosition.INDETERMINATE,
            f"tip {where}, in the upper or middle superior vena cava: INS 2021 advises the lower third, while UK "
            "practice accepts a tip above the carina (Stonelake and Bodenham 2006)",
        )
    return Ruling(
        DevicePosition.MALPOSITIONED,
        f"tip {where}: higher than the superior vena cava's typical {SVC_LENGTH_MM:.0f} mm length (Gray's "
        "Anatomy), so likely in a brachiocephalic vein, outside the range INS 2021, AAGBI 2016 and ESPEN 2009 "
        "advise",
    )


def assess(
    device: DeviceType,
    tip: Landmark | None,
    reference: Landmark | None,
    spacing: Spacing | None,
    age: AgeAtStudy,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> Placement:
    """A device tip's placement: measured against REFERENCE_LANDMARK[device] (reference; ignored for kinds with
    none), then judged by the kind's rule for an adult.

    tip, reference: None, or below min_confidence, when the landmark model did not find them. The distances
    are measured whatever the patient's age; the call is None for a child, an unknown age or a kind without a
    rule, and INDETERMINATE when a landmark or the pixel spacing is missing.
    """
    if device not in REFERENCE_LANDMARK:
        found = "tip detected" if _located(tip, min_confidence) else "tip not located with confidence"
        return Placement(device, None, f"{found}; position not assessed by rule: no sourced numeric rule applies")
    landmark = REFERENCE_LANDMARK[device]
    height: Measurement | None = None
    straight: Measurement | None = None
    if tip is not None and reference is not None and min(tip.confidence, reference.confidence) >= min_confidence:
        height, straight = height_above_mm(tip, reference, spacing), distance_mm(tip, reference, spacing)

    def placed(call: DevicePosition | None, reason: str) -> Placement:
        return Placement(device, call, reason, height, straight)

    if age.group is AgeGroup.CHILD:
        return placed(None, CHILD_REASON)
    if age.group is AgeGroup.UNKNOWN:
        return placed(None, f"age unknown ({age.basis}); placement thresholds are for adults")
    if not _located(tip, min_confidence):
        return placed(DevicePosition.INDETERMINATE, "the tip was not located with confidence")
    if height is None or straight is None:
        return placed(DevicePosition.INDETERMINATE, f"the {landmark} was not located with confidence")
    if height.value_mm is None or straight.value_mm is None:
        return placed(DevicePosition.INDETERMINATE, height.note)
    ruling = _rule(device, height.value_mm, straight.value_mm)
    return placed(ruling.call, ruling.reason)


def _rule(device: DeviceType, tip_above_mm: float, tip_to_mm: float) -> Ruling:
    """The ruling of device's rule on its tip's height above, and distance to, its reference landmark."""
    if device is DeviceType.ETT:
        return ett_ruling(tip_above_mm)
    if device is DeviceType.NG_TUBE:
        return ng_tube_ruling(tip_above_mm, tip_to_mm)
    return central_line_ruling(tip_above_mm)


def _located(landmark: Landmark | None, min_confidence: float) -> bool:
    """Whether the landmark model found the landmark with at least min_confidence."""
    return landmark is not None and landmark.confidence >= min_confidence


def _where(tip_above_mm: float, landmark: str) -> str:
    """The tip's height in words: "12.0 mm above the carina", "3.5 mm below …" or "level with …"."""
    if tip_above_mm == 0.0:
        return f"level with the {landmark}"
    side = "above" if tip_above_mm > 0.0 else "below"
    return f"{abs(tip_above_mm):.1f} mm {side} the {landmark}"
