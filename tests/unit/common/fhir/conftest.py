"""Hand-made studies, comparisons and drafts that the FHIR builder tests share."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from hilum.common.reported_findings import ReportedFindings, reported_findings
from hilum.common.study import InstanceInfo, PatientInfo, StudyInfo
from hilum.common.wording import DEMO_WARNING
from hilum.v1 import messages_pb2

STUDY_UID = "1.2.826.0.1.3680043.8.498.1001"
PRIOR_UID = "1.2.826.0.1.3680043.8.498.900"
MRN_SYSTEM = "urn:oid:1.2.3.4.5.6"
ISSUED = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)
PATIENT = PatientInfo(
    patient_id="MRN-0042", issuer="HOSP-A", name="DOE^JANE^Q^DR^", birth_date=date(1961, 7, 4), sex="F"
)


def _instance(series: str, number: int, view: str, sop: str) -> InstanceInfo:
    """A DX image of the chest."""
    return InstanceInfo(
        sop_instance_uid=sop,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
        series_instance_uid=series,
        series_number=int(series.rsplit(".", 1)[1]),
        instance_number=number,
        modality="DX",
        view_position=view,
        rows=2048,
        columns=2048,
        pixel_spacing_mm=(0.139, 0.139),
        object_key=f"objects/{sop}.dcm",
    )


def make_study(
    uid: str = STUDY_UID,
    *,
    views: tuple[str, ...] = ("PA", "LL"),
    accession: str = "ACC-7",
    started: datetime | None = datetime(2024, 3, 5, 8, 15, tzinfo=timezone(timedelta(hours=1))),
) -> StudyInfo:
    """A study with one series per view."""
    instances = tuple(
        _instance(f"{uid}.{index + 1}", 1, view, f"{uid}.{index + 1}.1") for index, view in enumerate(views)
    )
    return StudyInfo(
        study_instance_uid=uid,
        patient=PATIENT,
        started=started,
        accession_number=accession,
        description="XR CHEST PA AND LATERAL",
        instances=instances,
    )


def make_finding(
    code: str, display: str, probability: float, state: messages_pb2.FindingState.ValueType, snomed: str = ""
) -> messages_pb2.Finding:
    """One scored label."""
    return messages_pb2.Finding(
        code=code, display=display, probability=probability, threshold=0.5, state=state, snomed_code=snomed
    )


def make_comparison(*, demo: bool = True, with_prior: bool = True) -> messages_pb2.PriorComparison:
    """Pneumothorax new, effusion uncertain and unchanged, cardiomegaly resolved, nodule absent throughout."""
    findings = [
        make_finding("pneumothorax", "Pneumothorax", 0.91, messages_pb2.FINDING_STATE_PRESENT, "36118008"),
        make_finding("effusion", "Pleural effusion", 0.48, messages_pb2.FINDING_STATE_UNCERTAIN, "60046008"),
        make_finding("cardiomegaly", "Cardiomegaly", 0.12, messages_pb2.FINDING_STATE_ABSENT, "8186001"),
        make_finding("nodule", "Nodule", 0.05, messages_pb2.FINDING_STATE_ABSENT),
    ]
    comparison = messages_pb2.PriorComparison(
        current=messages_pb2.StudyFindings(
            study=messages_pb2.StudyReference(study_instance_uid=STUDY_UID),
            model=messages_pb2.ModelInfo(
                name="cxr_findings", version="demo-untrained" if demo else "1.0.0", demo_weights=demo
            ),
            findings=findings,
        ),
    )
    if with_prior:
        comparison.prior.CopyFrom(
            messages_pb2.PriorStudy(
                study_instance_uid=PRIOR_UID,
                study_date="20240101",
                findings=[
                    make_finding("cardiomegaly", "Cardiomegaly", 0.8, messages_pb2.FINDING_STATE_PRESENT)
                ],
            )
        )
        comparison.changes.extend(
            [
                messages_pb2.FindingChange(code="pneumothorax", change=messages_pb2.CHANGE_NEW),
                messages_pb2.FindingChange(code="effusion", change=messages_pb2.CHANGE_UNCHANGED),
                messages_pb2.FindingChange(code="cardiomegaly", change=messages_pb2.CHANGE_RESOLVED),
                messages_pb2.FindingChange(code="nodule", change=messages_pb2.CHANGE_UNCHANGED),
            ]
        )
    return comparison


def make_draft(comparison: messages_pb2.PriorComparison) -> messages_pb2.DraftReport:
    """A two-sentence impression; the text carries the disclaimer when the weights are demo weights."""
    model = comparison.current.model
    disclaimer = f"{DEMO_WARNING}\n" if model.demo_weights else ""
    return messages_pb2.DraftReport(
        study_instance_uid=STUDY_UID,
        model=model,
        findings=[
            messages_pb2.ReportSentence(text="There is a right pneumothorax.", finding_codes=["pneumothorax"])
        ],
        impression=[
            messages_pb2.ReportSentence(text="New right pneumothorax.", finding_codes=["pneumothorax"]),
            messages_pb2.ReportSentence(text="Possible small pleural effusion.", finding_codes=["effusion"]),
        ],
        text=f"{disclaimer}FINDINGS: There is a right pneumothorax.\nIMPRESSION: New right pneumothorax. "
        "Possible small pleural effusion.",
    )


@pytest.fixture
def study() -> StudyInfo:
    """The current two-view study."""
    return make_study()


@pytest.fixture
def prior_study() -> StudyInfo:
    """The prior single-view study of the same patient."""
    return make_study(PRIOR_UID, views=("AP",), accession="", started=datetime(2024, 1, 1, 7, 0, tzinfo=UTC))


@pytest.fixture
def comparison() -> messages_pb2.PriorComparison:
    """Demo-weight comparison with a prior."""
    return make_comparison()


@pytest.fixture
def reported(comparison: messages_pb2.PriorComparison) -> ReportedFindings:
    """The reported findings of the demo-weight comparison."""
    return reported_findings(comparison)


@pytest.fixture
def draft(comparison: messages_pb2.PriorComparison) -> messages_pb2.DraftReport:
    """The draft for the demo-weight comparison."""
    return make_draft(comparison)


@pytest.fixture
def study_factory() -> Callable[..., StudyInfo]:
    """make_study, for tests that need other views, UIDs or start times."""
    return make_study


@pytest.fixture
def comparison_factory() -> Callable[..., messages_pb2.PriorComparison]:
    """make_comparison, for tests that need validated weights or no prior."""
    return make_comparison


@pytest.fixture
def draft_factory() -> Callable[[messages_pb2.PriorComparison], messages_pb2.DraftReport]:
    """make_draft, for drafts of other comparisons."""
    return make_draft
