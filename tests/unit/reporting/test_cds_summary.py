"""The CDS view of a published report: the reported findings with their status, the draft's impression."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from hilum.common.reported_findings import ChangeSincePrior, DevicePosition, FindingStatus, reported_findings
from hilum.common.study import PatientInfo, StudyInfo
from hilum.reporting.cds_summary import cds_view_of
from hilum.reporting.draft import draft_report, impression_text
from hilum.v1 import messages_pb2

S = messages_pb2.FindingState
C = messages_pb2.Change
PUBLISHED = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)
PATIENT = PatientInfo(patient_id="P7", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")

MRN_SYSTEM = "urn:oid:1.2.3.4"


def _study(started: datetime | None = datetime(2025, 3, 2, 10, 5)) -> StudyInfo:
    return StudyInfo(study_instance_uid="1.2.3", patient=PATIENT, started=started, accession_number="A1",
                     description="XR CHEST PA")


def _comparison(demo: bool = True) -> messages_pb2.PriorComparison:
    """Pneumothorax new, effusion uncertain, edema resolved, nodule absent on both."""
    def finding(code: str, probability: float, state: messages_pb2.FindingState.ValueType) -> messages_pb2.Finding:
        return messages_pb2.Finding(code=code, display=code.capitalize(), probability=probability, threshold=0.5,
                                    state=state)

    comparison = messages_pb2.PriorComparison(current=messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid="1.2.3"),
        model=messages_pb2.ModelInfo(name="cxr_findings", version="demo-untrained", demo_weights=demo),
        findings=[
            finding("nodule", 0.05, S.FINDING_STATE_ABSENT),
            finding("edema", 0.1, S.FINDING_STATE_ABSENT),
            finding("effusion", 0.45, S.FINDING_STATE_UNCERTAIN),
            finding("pneumothorax", 0.91, S.FINDING_STATE_PRESENT),
        ],
    ))
    comparison.prior.study_instance_uid = "1.2.2"
    comparison.prior.study_date = "20250301"
    comparison.prior.findings.extend([finding("edema", 0.8, S.FINDING_STATE_PRESENT)])
    comparison.changes.extend([
        messages_pb2.FindingChange(code="pneumothorax", change=C.CHANGE_NEW),
        messages_pb2.FindingChange(code="effusion", change=C.CHANGE_NOT_COMPARED),
        messages_pb2.FindingChange(code="edema", change=C.CHANGE_RESOLVED),
    ])
    return comparison


def test_view_carries_every_reported_finding_with_its_status_and_change() -> None:
    reported = reported_findings(_comparison())
    view = cds_view_of(_study(), reported, draft_report(reported), "report-1", PUBLISHED, MRN_SYSTEM)
    assert [(f.code, f.status, f.change) for f in view.findings] == [
        ("pneumothorax", FindingStatus.PRESENT, ChangeSincePrior.NEW),
        ("effusion", FindingStatus.UNCERTAIN, ChangeSincePrior.NOT_COMPARED),
        ("edema", FindingStatus.RESOLVED, ChangeSincePrior.RESOLVED),
    ]
    assert view.findings[0].display == "Pneumothorax"
    assert view.findings[0].probability == pytest.approx(0.91)


def test_view_names_the_patient_study_model_and_report() -> None:
    reported = reported_findings(_comparison())
    draft = draft_report(reported)
    view = cds_view_of(_study(), reported, draft, "report-1", PUBLISHED, MRN_SYSTEM)
    assert (view.patient_id, view.study_instance_uid) == ("P7", "1.2.3")
    assert (view.study_date, view.study_time) == (date(2025, 3, 2), time(10, 5))
    assert view.impression == impression_text(draft)
    assert (view.model_name, view.model_version, view.demo_weights) == ("cxr_findings", "demo-untrained", True)
    assert (view.diagnostic_report_id, view.published_at) == ("report-1", PUBLISHED)


def test_validated_weights_are_not_demo() -> None:
    reported = reported_findings(_comparison(demo=False))
    assert not cds_view_of(_study(), reported, draft_report(reported), "report-1", PUBLISHED, MRN_SYSTEM).demo_weights


def test_a_study_without_start_is_dated_by_publication() -> None:
    reported = reported_findings(_comparison())
    view = cds_view_of(_study(started=None), reported, draft_report(reported), "report-1", PUBLISHED, MRN_SYSTEM)
    assert (view.study_date, view.study_time) == (date(2025, 3, 2), None)


def test_findings_of_another_study_are_refused() -> None:
    comparison = _comparison()
    comparison.current.study.study_instance_uid = "9.9"
    reported = reported_findings(comparison)
    with pytest.raises(ValueError, match="not 1.2.3"):
        cds_view_of(_study(), reported, draft_report(reported), "report-1", PUBLISHED, MRN_SYSTEM)


def test_view_dates_the_compared_prior() -> None:
    reported = reported_findings(_comparison())
    view = cds_view_of(_study(), reported, draft_report(reported), "report-1", PUBLISHED, MRN_SYSTEM)
    assert view.prior_study_date == date(2025, 3, 1)


def test_a_prior_without_known_findings_was_not_compared_and_is_not_dated() -> None:
    comparison = _comparison()
    del comparison.prior.findings[:]
    reported = reported_findings(comparison)
    view = cds_view_of(_study(), reported, draft_report(reported), "report-1", PUBLISHED, MRN_SYSTEM)
    assert view.prior_study_date is None


def test_view_carries_each_tube_and_line_with_its_call_and_the_reports_sentence() -> None:
    comparison = _comparison(demo=False)
    comparison.current.devices.extend([
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9, tip_distance_mm=-5.0,
                                   landmark="carina", position=messages_pb2.DEVICE_POSITION_MALPOSITIONED,
                                   position_called=True),
        messages_pb2.DeviceFinding(kind=messages_pb2.DEVICE_KIND_NG_TUBE, probability=0.8,
                                   position_reason="no sourced placement rule"),
    ])
    reported = reported_findings(comparison)
    draft = draft_report(reported)
    view = cds_view_of(_study(), reported, draft, "report-1", PUBLISHED, MRN_SYSTEM)
    assert [(d.code, d.position, d.tip_distance_mm, d.landmark) for d in view.devices] == [
        ("device:ett", DevicePosition.MALPOSITIONED, -5.0, "carina"),
        ("device:ng_tube", None, None, "gastroesophageal junction"),
    ]
    # The card says what the report says.
    sentences = {sentence.text for sentence in draft.findings}
    assert all(device.text in sentences for device in view.devices)
    assert view.devices[0].text == "Endotracheal tube tip 0.5 cm below the carina, malpositioned."
