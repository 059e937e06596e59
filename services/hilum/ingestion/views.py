"""Which instance of a study is its frontal view and which its lateral: decided here, once.

By the view each instance's header gives (hilum.common.dicom.header.view_position: View Position, else
the View Code Sequence, else a lateral told by Patient Orientation): the frontal view is a PA, else an
AP, else an instance whose view is unknown or none of the known values; a lateral (LL, RL, LAT,
LATERAL) is never the frontal view. Among equals the lowest (Series Number, Instance Number, SOP
Instance UID) wins, absent numbers last, so that the same instances always give the same choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hilum.common.dicom.header import FRONTAL_VIEWS, LATERAL_VIEWS
from hilum.common.study import InstanceInfo

# Frontal views rank in FRONTAL_VIEWS order; a value in neither ranks after both frontal values.
_LATERAL_RANK = {"LL": 0, "RL": 1, "LAT": 2, "LATERAL": 2}


@dataclass(frozen=True)
class ChosenViews:
    """The views of one study the models read; None where the study has no such instance."""

    frontal: InstanceInfo | None
    lateral: InstanceInfo | None


def choose_views(instances: Sequence[InstanceInfo]) -> ChosenViews:
    """The frontal and lateral views among a study's instances (any order), by the rules above."""
    laterals = [i for i in instances if not may_be_frontal(i)]
    frontals = [i for i in instances if may_be_frontal(i)]
    return ChosenViews(
        frontal=min(frontals, key=lambda i: (_frontal_rank(i), *_order(i)), default=None),
        lateral=min(laterals, key=lambda i: (_LATERAL_RANK[_view(i)], *_order(i)), default=None),
    )


def may_be_frontal(instance: InstanceInfo) -> bool:
    """True unless the instance is a lateral view: only such an instance can be chosen as a study's frontal view."""
    return _view(instance) not in LATERAL_VIEWS


def _view(instance: InstanceInfo) -> str:
    """The instance's View Position, normalised: stripped, upper case."""
    return instance.view_position.strip().upper()


def _frontal_rank(instance: InstanceInfo) -> int:
    """0 for PA, 1 for AP, 2 for an absent or unknown View Position."""
    view = _view(instance)
    return FRONTAL_VIEWS.index(view) if view in FRONTAL_VIEWS else len(FRONTAL_VIEWS)


def _order(instance: InstanceInfo) -> tuple[bool, int, bool, int, str]:
    """The deterministic tie-break: Series Number, Instance Number (absent last), SOP Instance UID."""
    series, number = instance.series_number, instance.instance_number
    return series is None, series or 0, number is None, number or 0, instance.sop_instance_uid
