"""The CDS view of a published report: what the CDS Hooks service will show for the patient."""

from __future__ import annotations

from datetime import datetime

from hilum.common.cds_view import CdsFinding, CdsView, ChangeSincePrior
from hilum.common.study import StudyInfo
from hilum.reporting.draft import impression_text
from hilum.v1 import messages_pb2

_CHANGES = {
    messages_pb2.Change.CHANGE_NEW: ChangeSincePrior.NEW,
    messages_pb2.Change.CHANGE_UNCHANGED: ChangeSincePrior.UNCHANGED,
    messages_pb2.Change.CHANGE_RESOLVED: ChangeSincePrior.RESOLVED,
    messages_pb2.Change.CHANGE_NOT_COMPARED: ChangeSincePrior.NOT_COMPARED,
}


def cds_view_of(study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport,
                diagnostic_report_id: str, published_at: datetime) -> CdsView:
    """The view for the study's patient: present findings (most probable first) with change since prior."""
    current = comparison.current
    compared = comparison.HasField("prior") and len(comparison.prior.findings) > 0
    changes = {c.code: c.change for c in comparison.changes}
    present = sorted((f for f in current.findings if f.state == messages_pb2.FindingState.FINDING_STATE_PRESENT),
                     key=lambda f: -f.probability)
    return CdsView(
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        study_date=(study.started or published_at).date(),
        study_time=study.started.time() if study.started else None,
        impression=impression_text(draft),
        findings=[
            CdsFinding(code=f.code, display=f.display, probability=f.probability,
                       change=_CHANGES.get(changes.get(f.code, messages_pb2.Change.CHANGE_NOT_COMPARED))
                       if compared else None)
            for f in present
        ],
        demo_weights=current.model.demo_weights,
        model_name=current.model.name,
        model_version=current.model.version,
        diagnostic_report_id=diagnostic_report_id,
        published_at=published_at,
    )
