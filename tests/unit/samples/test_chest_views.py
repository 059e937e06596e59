"""Chest views: every view has a geometry, and only the bedside AP goes without calibrated spacing."""

from __future__ import annotations

from hilum.samples.chest_views import VIEW_GEOMETRY, ViewPosition


def test_every_view_has_a_geometry_with_a_distinct_description_and_code() -> None:
    assert set(VIEW_GEOMETRY) == set(ViewPosition)
    geometries = list(VIEW_GEOMETRY.values())
    assert len({g.description for g in geometries}) == len({g.view_code for g in geometries}) == 3
    assert all(g.description.startswith("XR CHEST") for g in geometries)


def test_magnification_is_above_one_and_largest_at_the_bedside() -> None:
    factors = {view: geometry.magnification for view, geometry in VIEW_GEOMETRY.items()}
    assert all(factor > 1.0 for factor in factors.values())
    assert factors[ViewPosition.AP] == max(factors.values())
    assert round(factors[ViewPosition.PA], 4) == 1.0909


def test_only_the_portable_ap_is_uncalibrated() -> None:
    assert [view for view, g in VIEW_GEOMETRY.items() if not g.calibrated] == [ViewPosition.AP]
    assert VIEW_GEOMETRY[ViewPosition.AP].kvp < VIEW_GEOMETRY[ViewPosition.PA].kvp


def test_lateral_shares_the_pa_setup_but_faces_sideways() -> None:
    pa, lateral = VIEW_GEOMETRY[ViewPosition.PA], VIEW_GEOMETRY[ViewPosition.LL]
    assert (lateral.source_to_detector_mm, lateral.kvp) == (pa.source_to_detector_mm, pa.kvp)
    assert (pa.patient_orientation, lateral.patient_orientation) == (("L", "F"), ("P", "F"))
    assert lateral.view_code == ("399173006", "left lateral")
