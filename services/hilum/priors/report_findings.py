"""A prior's findings read from its radiologist's report: the labeler's statements as Finding messages, so that the
current study's model findings can be compared with them (comparison.compare_findings)."""

from __future__ import annotations

from hilum.common.reported_findings import SIDE_OF_LATERALITY
from hilum.priors.report_labeler import MentionStatus, ReportLabels
from hilum.v1 import messages_pb2

_STATE = {
    MentionStatus.PRESENT: messages_pb2.FINDING_STATE_PRESENT,
    MentionStatus.ABSENT: messages_pb2.FINDING_STATE_ABSENT,
    MentionStatus.UNCERTAIN: messages_pb2.FINDING_STATE_UNCERTAIN,
}


def findings_of_report(labels: ReportLabels) -> list[messages_pb2.Finding]:
    """One Finding per label the report states (present, absent or uncertain), with the side and extent it states
    and no probability: a label the report does not mention has no Finding, so it is not compared."""
    return [
        messages_pb2.Finding(
            code=f.code, display=f.name, state=_STATE[f.status], severity=f.severity or "",
            laterality=SIDE_OF_LATERALITY[f.laterality] if f.laterality else messages_pb2.LATERALITY_UNSPECIFIED,
        )
        for f in labels.findings
    ]
