"""Device placement: each sourced rule at and across its limits, adults only, and the age that decides it."""

from __future__ import annotations

from datetime import date

import pytest

from hilum.common.reported_findings import DevicePosition, DeviceType
from hilum.inference.device_geometry import NOT_MEASURABLE, Landmark, Spacing, SpacingSource
from hilum.inference.device_placement import (
    CENTRAL_LINE_MAX_ABOVE_JUNCTION_MM,
    CENTRAL_LINE_MAX_SATISFACTORY_ABOVE_JUNCTION_MM,
    CHILD_REASON,
    ETT_MAX_ABOVE_CARINA_MM,
    ETT_MIN_ABOVE_CARINA_MM,
    NG_MIN_BEYOND_JUNCTION_MM,
    AgeAtStudy,
    AgeGroup,
    age_at_study,
    assess,
    central_line_ruling,
    ett_ruling,
    ng_tube_ruling,
    years_between,
    years_from_patient_age,
)

SATISFACTORY, MALPOSITIONED, INDETERMINATE = (
    DevicePosition.SATISFACTORY,
    DevicePosition.MALPOSITIONED,
    DevicePosition.INDETERMINATE,
)
ADULT = AgeAtStudy(AgeGroup.ADULT, 45, "from Patient's Age")
# 0.125 mm is exact in binary, so whole-pixel offsets give exact millimetres at the limits.
SPACING = Spacing(0.125, 0.125, SpacingSource.IMAGER_PIXEL_SPACING_CORRECTED, 1.1)
REFERENCE = Landmark(2000.0, 1200.0, 0.95)


def tip_above(mm: float, sideways_mm: float = 0.0, confidence: float = 0.9) -> Landmark:
    """A tip mm above REFERENCE (negative: below) and sideways_mm to one side of it, at SPACING."""
    return Landmark(REFERENCE.row - mm / SPACING.row_mm, REFERENCE.column + sideways_mm / SPACING.column_mm, confidence)


def test_device_kinds_are_the_shared_vocabulary() -> None:
    assert [kind.value for kind in DeviceType] == ["ett", "ng_tube", "cvc", "picc", "chest_tube", "pacemaker"]


@pytest.mark.parametrize(
    ("mm", "call", "phrase"),
    [
        (-15.0, MALPOSITIONED, "15.0 mm below the carina: at or below"),
        (0.0, MALPOSITIONED, "level with the carina: at or below"),
        (0.1, MALPOSITIONED, "lower than 30 mm"),
        (29.99, MALPOSITIONED, "lower than 30 mm"),
        (30.0, SATISFACTORY, "within 30-70 mm"),
        (50.0, SATISFACTORY, "within 30-70 mm"),
        (70.0, SATISFACTORY, "within 30-70 mm"),
        (70.01, MALPOSITIONED, "higher than 70 mm"),
        (120.0, MALPOSITIONED, "higher than 70 mm"),
    ],
)
def test_ett_rule_at_and_across_its_limits(mm: float, call: DevicePosition, phrase: str) -> None:
    ruling = ett_ruling(mm)
    assert ruling.call is call
    assert phrase in ruling.reason
    assert ("Goodman 1976" in ruling.reason) or ("Godoy 2012" in ruling.reason)
    assert (ETT_MIN_ABOVE_CARINA_MM, ETT_MAX_ABOVE_CARINA_MM) == (30.0, 70.0)


@pytest.mark.parametrize(
    ("above_mm", "straight_mm", "call"),
    [
        (0.01, 150.0, MALPOSITIONED),  # just above the junction, however far from it
        (40.0, 40.0, MALPOSITIONED),
        (0.0, 100.0, SATISFACTORY),  # level with the junction, 100 mm across into the stomach
        (-100.0, 100.0, SATISFACTORY),
        (-60.0, 99.99, INDETERMINATE),
        (-20.0, 25.0, INDETERMINATE),
        (0.0, 0.0, INDETERMINATE),  # on the junction
    ],
)
def test_ng_tube_rule_at_and_across_its_limits(above_mm: float, straight_mm: float, call: DevicePosition) -> None:
    assert ng_tube_ruling(above_mm, straight_mm).call is call
    assert NG_MIN_BEYOND_JUNCTION_MM == 100.0


def test_ng_tube_reasons_name_the_rule_and_what_is_not_judged() -> None:
    assert "below the hemidiaphragm (NPSA 2011)" in ng_tube_ruling(12.0, 30.0).reason
    assert "tube's course is not assessed" in ng_tube_ruling(-110.0, 130.0).reason
    assert "side holes may lie in the esophagus" in ng_tube_ruling(-30.0, 45.0).reason


LOWER_THIRD = CENTRAL_LINE_MAX_SATISFACTORY_ABOVE_JUNCTION_MM


@pytest.mark.parametrize(
    ("mm", "call", "phrase"),
    [
        (-40.0, INDETERMINATE, "in the right atrium"),
        (-0.01, INDETERMINATE, "in the right atrium"),
        (0.0, SATISFACTORY, "level with the cavoatrial junction"),
        (10.0, SATISFACTORY, "lower third"),
        (LOWER_THIRD, SATISFACTORY, "lower third"),
        (LOWER_THIRD + 0.01, INDETERMINATE, "upper or middle superior vena cava"),
        (70.0, INDETERMINATE, "upper or middle superior vena cava"),
        (70.01, MALPOSITIONED, "brachiocephalic vein"),
    ],
)
def test_central_line_rule_at_and_across_its_limits(mm: float, call: DevicePosition, phrase: str) -> None:
    ruling = central_line_ruling(mm)
    assert ruling.call is call and phrase in ruling.reason
    assert LOWER_THIRD == pytest.approx(70.0 / 3) and CENTRAL_LINE_MAX_ABOVE_JUNCTION_MM == 70.0


@pytest.mark.parametrize(
    ("mm", "call"), [(-0.125, MALPOSITIONED), (29.875, MALPOSITIONED), (30.0, SATISFACTORY), (70.0, SATISFACTORY)]
)
def test_assess_ett_from_landmarks_at_the_limits(mm: float, call: DevicePosition) -> None:
    placement = assess(DeviceType.ETT, tip_above(mm, sideways_mm=4.0), REFERENCE, SPACING, ADULT)
    assert placement.call is call
    assert placement.tip_above_reference is not None and placement.tip_above_reference.value_mm == mm
    assert placement.tip_to_reference is not None and placement.tip_to_reference.value_mm == pytest.approx(
        (mm**2 + 16.0) ** 0.5
    )
    assert placement.tip_above_reference.note == SPACING.describe()


def test_assess_ett_just_past_the_upper_limit_from_landmarks() -> None:
    placement = assess(DeviceType.ETT, tip_above(70.125), REFERENCE, SPACING, ADULT)
    assert placement.call is MALPOSITIONED and "70.1 mm above the carina" in placement.reason


def test_assess_ng_tube_uses_the_straight_line_beyond_the_junction() -> None:
    into_stomach = assess(DeviceType.NG_TUBE, tip_above(-60.0, sideways_mm=80.0), REFERENCE, SPACING, ADULT)
    assert into_stomach.call is SATISFACTORY  # 100 mm in a straight line, though only 60 mm lower
    short = assess(DeviceType.NG_TUBE, tip_above(-60.0, sideways_mm=30.0), REFERENCE, SPACING, ADULT)
    assert short.call is INDETERMINATE
    in_chest = assess(DeviceType.NG_TUBE, tip_above(25.0), REFERENCE, SPACING, ADULT)
    assert in_chest.call is MALPOSITIONED


@pytest.mark.parametrize("kind", [DeviceType.CVC, DeviceType.PICC])
def test_assess_central_lines_share_one_rule(kind: DeviceType) -> None:
    assert assess(kind, tip_above(10.0), REFERENCE, SPACING, ADULT).call is SATISFACTORY
    assert assess(kind, tip_above(-20.0), REFERENCE, SPACING, ADULT).call is INDETERMINATE
    assert assess(kind, tip_above(90.0), REFERENCE, SPACING, ADULT).call is MALPOSITIONED


@pytest.mark.parametrize("kind", [DeviceType.CHEST_TUBE, DeviceType.PACEMAKER])
def test_drains_and_pacing_leads_get_no_call(kind: DeviceType) -> None:
    detected = assess(kind, tip_above(10.0), REFERENCE, SPACING, ADULT)
    assert detected.call is None
    assert detected.reason.startswith("tip detected; position not assessed by rule")
    assert detected.tip_above_reference is None and detected.tip_to_reference is None
    missing = assess(kind, None, None, SPACING, ADULT)
    assert missing.call is None and missing.reason.startswith("tip not located")


def test_without_spacing_the_call_is_indeterminate_and_nothing_is_a_number() -> None:
    placement = assess(DeviceType.ETT, tip_above(50.0), REFERENCE, None, ADULT)
    assert placement.call is INDETERMINATE and placement.reason.startswith(NOT_MEASURABLE)
    assert placement.tip_above_reference is not None and placement.tip_above_reference.value_mm is None
    assert placement.tip_to_reference is not None and placement.tip_to_reference.value_mm is None


def test_a_missing_or_doubtful_landmark_is_indeterminate() -> None:
    no_carina = assess(DeviceType.ETT, tip_above(50.0), None, SPACING, ADULT)
    assert no_carina.call is INDETERMINATE and no_carina.reason == "the carina was not located with confidence"
    assert no_carina.tip_above_reference is None
    faint = Landmark(REFERENCE.row, REFERENCE.column, 0.3)
    assert assess(DeviceType.NG_TUBE, tip_above(-120.0), faint, SPACING, ADULT).reason == (
        "the gastroesophageal junction was not located with confidence"
    )
    no_tip = assess(DeviceType.CVC, None, REFERENCE, SPACING, ADULT)
    assert no_tip.call is INDETERMINATE and no_tip.reason == "the tip was not located with confidence"
    faint_tip = assess(DeviceType.CVC, tip_above(10.0, confidence=0.49), REFERENCE, SPACING, ADULT)
    assert faint_tip.call is INDETERMINATE


def test_the_confidence_limit_is_inclusive_and_can_be_set() -> None:
    assert assess(DeviceType.ETT, tip_above(50.0, confidence=0.5), REFERENCE, SPACING, ADULT).call is SATISFACTORY
    faint = Landmark(REFERENCE.row, REFERENCE.column, 0.3)
    assert assess(DeviceType.ETT, tip_above(50.0), faint, SPACING, ADULT, min_confidence=0.3).call is SATISFACTORY


def test_a_child_gets_distances_but_no_call() -> None:
    child = age_at_study("017Y", None, None)
    assert child.group is AgeGroup.CHILD
    placement = assess(DeviceType.ETT, tip_above(5.0), REFERENCE, SPACING, child)
    assert placement.call is None and placement.reason == CHILD_REASON
    assert placement.tip_above_reference is not None and placement.tip_above_reference.value_mm == 5.0


def test_a_child_by_birth_date_gets_no_call() -> None:
    child = age_at_study("", date(2007, 3, 6), date(2025, 3, 5))  # the day before the 18th birthday
    assert (child.group, child.years) == (AgeGroup.CHILD, 17)
    assert assess(DeviceType.NG_TUBE, tip_above(20.0), REFERENCE, SPACING, child).call is None
    adult = age_at_study("", date(2007, 3, 6), date(2025, 3, 6))
    assert (adult.group, adult.years) == (AgeGroup.ADULT, 18)
    assert assess(DeviceType.NG_TUBE, tip_above(20.0), REFERENCE, SPACING, adult).call is MALPOSITIONED


def test_an_unknown_age_gets_distances_but_no_call() -> None:
    unknown = age_at_study("", None, date(2025, 3, 5))
    assert unknown == AgeAtStudy(AgeGroup.UNKNOWN, None, unknown.basis)
    placement = assess(DeviceType.CVC, tip_above(10.0), REFERENCE, SPACING, unknown)
    assert placement.call is None and placement.reason.startswith("age unknown (")
    assert placement.reason.endswith("placement thresholds are for adults")
    assert placement.tip_above_reference is not None and placement.tip_above_reference.value_mm == 10.0


@pytest.mark.parametrize(
    ("value", "years"),
    [
        ("045Y", 45),
        ("018Y", 18),
        ("017Y", 17),
        ("000Y", 0),
        ("45Y", 45),  # not zero-padded, as some modalities write it
        (" 045y ", 45),
        ("006M", 0),
        ("215M", 17),
        ("216M", 18),
        ("010W", 0),
        ("939W", 17),  # 6573 days
        ("940W", 18),  # 6580 days
        ("003D", 0),
        ("999D", 2),
        ("130Y", 130),
        ("131Y", None),
        ("999Y", None),
        ("", None),
        ("45", None),
        ("Y", None),
        ("045X", None),
        ("-45Y", None),
        ("4.5Y", None),
        ("1045Y", None),
        ("045Y045Y", None),
    ],
)
def test_patient_age_strings(value: str, years: int | None) -> None:
    assert years_from_patient_age(value) == years


def test_completed_years_between_dates() -> None:
    assert years_between(date(1980, 6, 15), date(2024, 6, 14)) == 43
    assert years_between(date(1980, 6, 15), date(2024, 6, 15)) == 44
    assert years_between(date(2024, 6, 15), date(2024, 6, 15)) == 0
    assert years_between(date(2004, 2, 29), date(2022, 2, 28)) == 17  # a leap-day birthday counts from 1 March
    assert years_between(date(2004, 2, 29), date(2022, 3, 1)) == 18
    assert years_between(date(2024, 6, 16), date(2024, 6, 15)) is None  # born after the study
    assert years_between(date(1850, 1, 1), date(2024, 1, 1)) is None  # implausible


def test_birth_date_is_preferred_and_a_disagreement_leaves_the_age_unknown() -> None:
    both = age_at_study("030Y", date(1993, 1, 1), date(2024, 6, 1))
    assert both == AgeAtStudy(AgeGroup.ADULT, 31, "from the birth date and the study date")
    assert age_at_study("045Y", None, date(2024, 6, 1)) == AgeAtStudy(AgeGroup.ADULT, 45, "from Patient's Age")
    conflict = age_at_study("017Y", date(1980, 1, 1), date(2024, 6, 1))
    assert conflict.group is AgeGroup.UNKNOWN and conflict.years is None and "disagree" in conflict.basis
    # A birth date after the study is unusable, so Patient's Age decides.
    assert age_at_study("017Y", date(2025, 1, 1), date(2024, 6, 1)).group is AgeGroup.CHILD


def test_reasons_name_no_age() -> None:
    for age in (age_at_study("017Y", None, None), age_at_study("", date(1931, 5, 2), date(2024, 6, 1))):
        placement = assess(DeviceType.ETT, tip_above(50.0), REFERENCE, SPACING, age)
        assert str(age.years) not in placement.reason
