"""Constructed longitudinal cases: a current study and its prior, and the change called for each finding and each
tube or line, through the priors stage's comparison functions and, for a few, the stage itself and the draft."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import results, studies
from hilum.common.reported_findings import reported_findings
from hilum.common.study import PatientInfo
from hilum.priors.comparison import compare_devices, compare_findings
from hilum.priors.report_findings import findings_of_report
from hilum.priors.report_labeler import label_report
from hilum.priors.service import Priors
from hilum.reporting.draft import draft_report
from hilum.v1 import messages_pb2
from tests.helpers import record_study

STATE = {"P": messages_pb2.FINDING_STATE_PRESENT, "A": messages_pb2.FINDING_STATE_ABSENT,
         "U": messages_pb2.FINDING_STATE_UNCERTAIN}
CHANGE = {"new": messages_pb2.CHANGE_NEW, "unchanged": messages_pb2.CHANGE_UNCHANGED,
          "resolved": messages_pb2.CHANGE_RESOLVED, "not-compared": messages_pb2.CHANGE_NOT_COMPARED,
          "improved": messages_pb2.CHANGE_IMPROVED, "worsened": messages_pb2.CHANGE_WORSENED}
SIDE = {"": messages_pb2.LATERALITY_UNSPECIFIED, "left": messages_pb2.LATERALITY_LEFT,
        "right": messages_pb2.LATERALITY_RIGHT, "bilateral": messages_pb2.LATERALITY_BILATERAL}
KIND = {"ett": messages_pb2.DEVICE_KIND_ETT, "ng": messages_pb2.DEVICE_KIND_NG_TUBE,
        "cvc": messages_pb2.DEVICE_KIND_CVC, "picc": messages_pb2.DEVICE_KIND_PICC,
        "chest_tube": messages_pb2.DEVICE_KIND_CHEST_TUBE, "pacemaker": messages_pb2.DEVICE_KIND_PACEMAKER}
DEVICE_CHANGE = {"inserted": messages_pb2.DEVICE_CHANGE_INSERTED, "removed": messages_pb2.DEVICE_CHANGE_REMOVED,
                 "moved": messages_pb2.DEVICE_CHANGE_MOVED, "unchanged": messages_pb2.DEVICE_CHANGE_UNCHANGED,
                 "not-compared": messages_pb2.DEVICE_CHANGE_NOT_COMPARED}
LANDMARK = {"ett": "carina", "ng": "gastroesophageal junction", "cvc": "cavoatrial junction",
            "picc": "cavoatrial junction", "chest_tube": "", "pacemaker": ""}


@dataclass(frozen=True)
class Case:
    """Findings as "code:STATE" (P, A, U), or "code:STATE:side:extent" where a side or an extent is stated; devices as
    "kind" or "kind@mm" (tip mm above its landmark); expected changes as "code:change", "code:change:now<before"
    where the sides changed, and "kind#n:change" or "kind#n:moved:mm" (the tip's movement, current minus prior).
    projections_differ: one study AP, the other PA."""

    name: str
    current: tuple[str, ...] = ()
    prior: tuple[str, ...] = ()
    expected: tuple[str, ...] = ()
    current_devices: tuple[str, ...] = ()
    prior_devices: tuple[str, ...] = ()
    expected_devices: tuple[str, ...] = field(default=())
    projections_differ: bool = False


CASES = [
    Case("a new effusion", ("effusion:P",), ("effusion:A",), ("effusion:new",)),
    Case("a resolved pneumothorax", ("pneumothorax:A",), ("pneumothorax:P",), ("pneumothorax:resolved",)),
    Case("stable cardiomegaly", ("cardiomegaly:P",), ("cardiomegaly:P",), ("cardiomegaly:unchanged",)),
    Case("absent on both is not stated", ("nodule:A",), ("nodule:A",), ()),
    Case("uncertain now", ("atelectasis:U",), ("atelectasis:A",), ("atelectasis:not-compared",)),
    Case("uncertain before", ("atelectasis:P",), ("atelectasis:U",), ("atelectasis:not-compared",)),
    Case("uncertain on both", ("edema:U",), ("edema:U",), ("edema:not-compared",)),
    Case("uncertain now, present before", ("effusion:U",), ("effusion:P",), ("effusion:not-compared",)),
    Case("a label the prior does not state", ("mass:P",), (), ("mass:not-compared",)),
    Case("an absent label the prior does not state", ("mass:A",), (), ("mass:not-compared",)),
    Case("several at once", ("effusion:P", "edema:A", "cardiomegaly:P", "nodule:A"),
         ("effusion:A", "edema:P", "cardiomegaly:P", "nodule:A"),
         ("effusion:new", "edema:resolved", "cardiomegaly:unchanged")),
    Case("new pneumothorax beside resolved effusion", ("pneumothorax:P", "effusion:A"),
         ("pneumothorax:A", "effusion:P"), ("pneumothorax:new", "effusion:resolved")),
    Case("the prior's extra labels are not reported", ("effusion:P",), ("effusion:P", "fracture:P"),
         ("effusion:unchanged",)),
    Case("an ETT inserted", current_devices=("ett@45",), expected_devices=("ett#1:inserted",)),
    Case("an NG tube removed", prior_devices=("ng@80",), expected_devices=("ng#1:removed",)),
    Case("an ETT advanced 20 mm", current_devices=("ett@30",), prior_devices=("ett@50",),
         expected_devices=("ett#1:moved:-20.0",)),
    Case("an ETT withdrawn 15 mm", current_devices=("ett@65",), prior_devices=("ett@50",),
         expected_devices=("ett#1:moved:15.0",)),
    Case("an ETT within 10 mm", current_devices=("ett@48",), prior_devices=("ett@50",),
         expected_devices=("ett#1:unchanged:-2.0",)),
    Case("exactly 10 mm is a move", current_devices=("ett@40",), prior_devices=("ett@50",),
         expected_devices=("ett#1:moved:-10.0",)),
    Case("an ETT below the carina now", current_devices=("ett@-5",), prior_devices=("ett@20",),
         expected_devices=("ett#1:moved:-25.0",)),
    Case("a tip measured only now", current_devices=("ett@45",), prior_devices=("ett",),
         expected_devices=("ett#1:not-compared",)),
    Case("a chest tube has no landmark distance", current_devices=("chest_tube",), prior_devices=("chest_tube",),
         expected_devices=("chest_tube#1:not-compared",)),
    Case("a pacemaker unchanged in kind", current_devices=("pacemaker",), prior_devices=("pacemaker",),
         expected_devices=("pacemaker#1:not-compared",)),
    Case("a second central line inserted", current_devices=("cvc@10", "cvc@25"), prior_devices=("cvc@12",),
         expected_devices=("cvc#1:unchanged:-2.0", "cvc#2:inserted")),
    Case("one of two central lines removed", current_devices=("cvc@10",), prior_devices=("cvc@12", "cvc@30"),
         expected_devices=("cvc#1:unchanged:-2.0", "cvc#2:removed")),
    Case("a PICC exchanged for a CVC", current_devices=("cvc@10",), prior_devices=("picc@15",),
         expected_devices=("cvc#1:inserted", "picc#1:removed")),
    Case("tube and lines all at once", current_devices=("ett@30", "ng@90", "chest_tube"),
         prior_devices=("ett@55", "picc@5"),
         expected_devices=("ett#1:moved:-25.0", "ng#1:inserted", "chest_tube#1:inserted", "picc#1:removed")),
    Case("an NG tube advanced into the stomach", current_devices=("ng@-60",), prior_devices=("ng@40",),
         expected_devices=("ng#1:moved:-100.0",)),
    Case("nothing before, nothing now", ("effusion:A",), ("effusion:A",), ()),
    Case("an effusion grown from small to large", ("effusion:P::large",), ("effusion:P::small",),
         ("effusion:worsened",)),
    Case("an effusion shrunk from moderate to trace", ("effusion:P::trace",), ("effusion:P::moderate",),
         ("effusion:improved",)),
    Case("mild to moderate, then moderate: no change", ("edema:P::moderate",), ("edema:P::mild to moderate",),
         ("edema:unchanged",)),
    Case("an extent stated on the prior only", ("effusion:P",), ("effusion:P::large",), ("effusion:unchanged",)),
    Case("a right effusion now on the left", ("effusion:P:left",), ("effusion:P:right",),
         ("effusion:new:left<right",)),
    Case("a left effusion now on both sides", ("effusion:P:bilateral",), ("effusion:P:left",),
         ("effusion:worsened:bilateral<left",)),
    Case("bilateral effusions now on the right only", ("effusion:P:right",), ("effusion:P:bilateral",),
         ("effusion:improved:right<bilateral",)),
    Case("the same side, larger", ("pneumothorax:P:left:moderate",), ("pneumothorax:P:left:small",),
         ("pneumothorax:worsened",)),
    Case("a side stated on the prior only", ("effusion:P",), ("effusion:P:right:small",), ("effusion:unchanged",)),
    Case("heart size between AP and PA is not comparable", ("cardiomegaly:P", "effusion:P"),
         ("cardiomegaly:A", "effusion:A"), ("cardiomegaly:not-compared", "effusion:new"), projections_differ=True),
    Case("findings and a device", ("effusion:P",), ("effusion:P",), ("effusion:unchanged",),
         current_devices=("ett@45",), prior_devices=("ett@50",), expected_devices=("ett#1:unchanged:-5.0",)),
]


def _findings(specs: tuple[str, ...]) -> list[messages_pb2.Finding]:
    findings = []
    for spec in specs:
        code, state, side, extent = (spec.split(":") + ["", ""])[:4]
        findings.append(messages_pb2.Finding(code=code, display=code.capitalize(), probability=0.5, threshold=0.5,
                                             state=STATE[state], laterality=SIDE[side], severity=extent))
    return findings


def _finding_calls(changes: list[messages_pb2.FindingChange]) -> list[str]:
    sides = {value: name for name, value in SIDE.items()}
    calls = []
    for change in changes:
        named = next(name for name, value in CHANGE.items() if value == change.change)
        moved = f":{sides[change.laterality]}<{sides[change.prior_laterality]}" if change.prior_laterality else ""
        calls.append(f"{change.code}:{named}{moved}")
    return calls


def _devices(specs: tuple[str, ...]) -> list[messages_pb2.DeviceFinding]:
    devices = []
    for spec in specs:
        kind, _, mm = spec.partition("@")
        device = messages_pb2.DeviceFinding(kind=KIND[kind], probability=0.9, landmark=LANDMARK[kind])
        if mm:
            device.tip_distance_mm = float(mm)
        devices.append(device)
    return devices


def _device_calls(changes: list[messages_pb2.DeviceComparison]) -> list[str]:
    names = {value: name for name, value in KIND.items()}
    calls = []
    for change in changes:
        named = next(name for name, value in DEVICE_CHANGE.items() if value == change.change)
        movement = f":{round(change.tip_movement_mm, 1)}" if change.HasField("tip_movement_mm") else ""
        calls.append(f"{names[change.kind]}#{change.number}:{named}{movement}")
    return calls


def test_there_are_at_least_thirty_cases_covering_every_call() -> None:
    assert len(CASES) >= 30
    called = {e.split(":")[1] for case in CASES for e in case.expected}
    moved = {e.split(":")[1] for case in CASES for e in case.expected_devices}
    assert called == set(CHANGE) and moved == set(DEVICE_CHANGE)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_each_case_gets_its_calls(case: Case) -> None:
    changes = compare_findings(_findings(case.current), _findings(case.prior),
                               heart_size_comparable=not case.projections_differ)
    assert _finding_calls(changes) == list(case.expected)
    assert _device_calls(compare_devices(_devices(case.current_devices), _devices(case.prior_devices))) == list(
        case.expected_devices)


PATIENT = PatientInfo(patient_id="L1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
MODEL = messages_pb2.ModelInfo(name="cxr_findings", version="1.0.0")
DEVICES_MODEL = messages_pb2.ModelInfo(name="cxr_devices", version="1.0.0")


def _study_findings(uid: str, case: Case, prior: bool) -> messages_pb2.StudyFindings:
    return messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=uid), model=MODEL, devices_model=DEVICES_MODEL,
        findings=_findings(case.prior if prior else case.current),
        devices=_devices(case.prior_devices if prior else case.current_devices))


def test_the_stage_and_the_draft_say_the_same_as_the_functions(sqlite_sessions: sessionmaker[Session]) -> None:
    case = next(c for c in CASES if c.name == "findings and a device")
    now = datetime(2026, 11, 30, 10, 0)
    record_study(sqlite_sessions, "3.1", PATIENT, now - timedelta(days=2), view_positions=("PA",))
    record_study(sqlite_sessions, "3.2", PATIENT, now, view_positions=("PA",))
    with sqlite_sessions.begin() as session:
        results.save_findings(session, _study_findings("3.1", case, prior=True))
    comparison = Priors(sqlite_sessions).compare(_study_findings("3.2", case, prior=False))
    assert [c.change for c in comparison.changes] == [messages_pb2.CHANGE_UNCHANGED]
    assert _device_calls(list(comparison.device_changes)) == list(case.expected_devices)
    sentences = [s.text for s in draft_report(reported_findings(comparison)).findings]
    assert any(s.endswith("; position unchanged from 2026-11-28.") for s in sentences), sentences
    assert "Effusion, unchanged from 2026-11-28." in sentences


def test_a_prior_whose_findings_never_came_is_not_compared(sqlite_sessions: sessionmaker[Session]) -> None:
    now = datetime(2026, 11, 30, 10, 0)
    record_study(sqlite_sessions, "4.1", PATIENT, now - timedelta(days=400), view_positions=("PA",))  # never analysed
    record_study(sqlite_sessions, "4.2", PATIENT, now, view_positions=("PA",))
    with sqlite_sessions.begin() as session:
        studies.fail(session, "4.1", "inference failed")
    case = CASES[0]
    comparison = Priors(sqlite_sessions).compare(_study_findings("4.2", case, prior=False))
    assert comparison.prior.study_instance_uid == "4.1" and list(comparison.changes) == []
    draft = draft_report(reported_findings(comparison))
    assert draft.comparison.endswith("its findings were not available, so no change is reported.")


def test_the_stage_does_not_compare_heart_size_between_an_ap_and_a_pa(sqlite_sessions: sessionmaker[Session]) -> None:
    case = next(c for c in CASES if c.projections_differ)
    now = datetime(2026, 11, 30, 10, 0)
    record_study(sqlite_sessions, "5.1", PATIENT, now - timedelta(days=2), view_positions=("PA",))
    record_study(sqlite_sessions, "5.2", PATIENT, now, view_positions=("AP",))  # a portable film
    record_study(sqlite_sessions, "5.3", PATIENT, now + timedelta(days=1), view_positions=("AP",))
    for uid, prior in (("5.1", True), ("5.2", False)):
        with sqlite_sessions.begin() as session:
            findings = _study_findings(uid, case, prior=prior)
            findings.analysed_object_key = f"dicom/{uid}/1.dcm"
            results.save_findings(session, findings)
    current = _study_findings("5.2", case, prior=False)
    current.analysed_object_key = "dicom/5.2/1.dcm"
    comparison = Priors(sqlite_sessions).compare(current)
    assert _finding_calls(list(comparison.changes)) == list(case.expected)
    # AP to AP, heart size is compared again.
    later = _study_findings("5.3", case, prior=False)
    later.analysed_object_key = "dicom/5.3/1.dcm"
    assert _finding_calls(list(Priors(sqlite_sessions).compare(later).changes)) == [
        "cardiomegaly:unchanged", "effusion:unchanged"]


@pytest.mark.parametrize(("report", "current", "sentence"), [
    ("FINDINGS: Small right pleural effusion.", "effusion:P:left",
     "Left effusion, new since 2026-06-01 (on the right then)."),
    ("IMPRESSION: Small left effusion.", "effusion:P:left:large", "Left effusion, worsened since 2026-06-01."),
    ("IMPRESSION: Large bilateral effusions.", "effusion:P:right:small",
     "Right effusion, improved since 2026-06-01 (bilateral then)."),
    ("IMPRESSION: Moderate pulmonary edema.", "edema:P::moderate", "Edema, unchanged from 2026-06-01."),
])
def test_a_prior_report_s_side_and_extent_reach_the_draft(report: str, current: str, sentence: str) -> None:
    """What a lateralising, grading model would get: the prior's report, labelled, against its findings."""
    prior = findings_of_report(label_report(report))
    now = _findings((current,))
    comparison = messages_pb2.PriorComparison(
        current=messages_pb2.StudyFindings(study=messages_pb2.StudyReference(study_instance_uid="6.2"), model=MODEL,
                                           findings=now),
        prior=messages_pb2.PriorStudy(study_instance_uid="6.1", study_date="20260601", findings=prior,
                                      from_report=True),
        changes=compare_findings(now, prior))
    assert sentence in [s.text for s in draft_report(reported_findings(comparison)).findings]
