"""A prior's findings read from its report: what the labeler states becomes Finding messages, nothing more."""

from __future__ import annotations

from hilum.priors.report_findings import findings_of_report
from hilum.priors.report_labeler import label_report
from hilum.v1 import messages_pb2


def test_each_stated_label_is_a_finding_and_an_unmentioned_one_is_none() -> None:
    labels = label_report("FINDINGS: Small left pleural effusion. No pneumothorax. Possible right basilar "
                          "atelectasis.\nIMPRESSION: Small left effusion.")
    found = {f.code: (f.display, f.state) for f in findings_of_report(labels)}
    assert found == {
        "effusion": ("Effusion", messages_pb2.FINDING_STATE_PRESENT),
        "pneumothorax": ("Pneumothorax", messages_pb2.FINDING_STATE_ABSENT),
        "atelectasis": ("Atelectasis", messages_pb2.FINDING_STATE_UNCERTAIN),
    }
    assert all(f.probability == 0.0 for f in findings_of_report(labels))  # a report gives no model probability
    sides = {f.code: (f.laterality, f.severity) for f in findings_of_report(labels)}
    assert sides == {"effusion": (messages_pb2.LATERALITY_LEFT, "small"),
                     "pneumothorax": (messages_pb2.LATERALITY_UNSPECIFIED, ""),
                     "atelectasis": (messages_pb2.LATERALITY_RIGHT, "")}
    assert findings_of_report(label_report("No acute cardiopulmonary abnormality.")) == []
