"""Unit-test fixtures: a CdsView factory shared by the CDS service, card and view tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from hilum.common.cds_view import CdsFinding, CdsView
from hilum.common.reported_findings import ChangeSincePrior, FindingStatus


def make_view(**overrides: Any) -> CdsView:
    """A demo-weight view with a new pneumothorax and an unchanged effusion, both present; fields overridable."""
    fields: dict[str, Any] = {
        "patient_id": "MRN-0042",
        "patient_system": "urn:oid:1.2.36.146.595.217.0.1",
        "study_instance_uid": "1.2.826.0.1.3680043.8.498.1001",
        "study_date": date(2024, 3, 5),
        "study_time": time(8, 15),
        "impression": "New right pneumothorax. Possible small pleural effusion.",
        "findings": [
            CdsFinding(
                code="pneumothorax",
                display="Pneumothorax",
                status=FindingStatus.PRESENT,
                probability=0.91,
                change=ChangeSincePrior.NEW,
            ),
            CdsFinding(
                code="effusion",
                display="Pleural effusion",
                status=FindingStatus.PRESENT,
                probability=0.62,
                change=ChangeSincePrior.UNCHANGED,
            ),
        ],
        "critical": False,
        "demo_weights": True,
        "model_name": "cxr_findings",
        "model_version": "demo-untrained",
        "diagnostic_report_id": "0b7f6c1e-6c55-5c51-9d4e-6f1d1c1b2a3c",
        "published_at": datetime(2024, 3, 5, 9, 30, tzinfo=UTC),
    }
    fields.update(overrides)
    return CdsView(**fields)


@pytest.fixture
def view_factory() -> Callable[..., CdsView]:
    """make_view: a view, with any field overridden by keyword."""
    return make_view
