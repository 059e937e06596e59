"""View selection: PA before AP before unknown for the frontal view, LL/RL/LAT for the lateral, deterministic."""

from __future__ import annotations

import itertools
from dataclasses import FrozenInstanceError

import pytest

from hilum.common.study import InstanceInfo
from hilum.ingestion.views import ChosenViews, choose_views


def instance(uid: str, view: str = "", series: int | None = 1, number: int | None = 1) -> InstanceInfo:
    """A stored DX instance whose SOP Instance UID is uid."""
    return InstanceInfo(
        sop_instance_uid=uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
        series_instance_uid=f"{uid}.0",
        series_number=series,
        instance_number=number,
        modality="DX",
        view_position=view,
        rows=64,
        columns=52,
        pixel_spacing_mm=None,
        object_key=f"dicom/{uid}.dcm",
    )


def uids(views: ChosenViews) -> tuple[str | None, str | None]:
    frontal, lateral = views.frontal, views.lateral
    return (frontal.sop_instance_uid if frontal else None, lateral.sop_instance_uid if lateral else None)


def test_no_instances_choose_nothing() -> None:
    assert choose_views([]) == ChosenViews(frontal=None, lateral=None)


def test_pa_and_lateral() -> None:
    assert uids(choose_views([instance("1.1", "LL"), instance("1.2", "PA")])) == ("1.2", "1.1")


@pytest.mark.parametrize(
    ("views", "frontal"),
    [
        (("", "AP", "PA"), "PA"),
        (("", "AP"), "AP"),
        (("RLO", "AP"), "AP"),
        (("",), ""),
        (("RLO",), "RLO"),  # an unknown View Position is a frontal candidate of last resort
    ],
)
def test_frontal_preference(views: tuple[str, ...], frontal: str) -> None:
    instances = [instance(f"1.{i}", view) for i, view in enumerate(views, start=1)]
    for order in itertools.permutations(instances):
        chosen = choose_views(order).frontal
        assert chosen is not None and chosen.view_position == frontal


@pytest.mark.parametrize(
    ("views", "lateral"),
    [
        (("LATERAL", "RL", "LL"), "LL"),
        (("LAT", "RL"), "RL"),
        (("LAT",), "LAT"),
        (("LATERAL",), "LATERAL"),
        (("PA", "AP", ""), None),
    ],
)
def test_lateral_preference(views: tuple[str, ...], lateral: str | None) -> None:
    instances = [instance(f"1.{i}", view) for i, view in enumerate(views, start=1)]
    for order in itertools.permutations(instances):
        chosen = choose_views(order).lateral
        assert (chosen.view_position if chosen else None) == lateral


def test_a_lateral_is_never_the_frontal_view() -> None:
    views = choose_views([instance("1.1", "LL"), instance("1.2", "LAT")])
    assert uids(views) == (None, "1.1")


def test_view_position_is_compared_without_case_or_padding() -> None:
    assert uids(choose_views([instance("1.1", " pa "), instance("1.2", "ll ")])) == ("1.1", "1.2")
    assert uids(choose_views([instance("1.1", "ap"), instance("1.2", "PA")])) == ("1.2", None)


def test_ties_go_to_series_then_instance_number_then_uid() -> None:
    candidates = [
        instance("1.9", "PA", series=2, number=1),
        instance("1.8", "PA", series=1, number=3),
        instance("1.7", "PA", series=1, number=2),
        instance("1.6", "PA", series=1, number=2),
        instance("1.5", "PA", series=None, number=1),
        instance("1.4", "PA", series=1, number=None),
    ]
    expected = ["1.6", "1.7", "1.8", "1.4", "1.9", "1.5"]  # absent numbers sort last
    remaining = list(candidates)
    for uid in expected:
        for order in (remaining, remaining[::-1]):
            chosen = choose_views(order).frontal
            assert chosen is not None and chosen.sop_instance_uid == uid
        remaining = [i for i in remaining if i.sop_instance_uid != uid]


def test_lateral_ties_are_deterministic_too() -> None:
    laterals = [instance("1.3", "LL", series=2), instance("1.2", "LL", series=1, number=2), instance("1.1", "LL")]
    for order in itertools.permutations(laterals):
        assert uids(choose_views(order)) == (None, "1.1")


def test_chosen_views_are_frozen() -> None:
    views = choose_views([instance("1.1", "PA")])
    with pytest.raises(FrozenInstanceError):
        views.frontal = None  # type: ignore[misc]
    assert views.frontal is not None and views.frontal.object_key == "dicom/1.1.dcm"
