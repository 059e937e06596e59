"""The draft is faithful by construction: over constructed and random finding sets, every sentence cites what it
states, every reported finding and device is stated once, the impression follows urgency, distances are in cm."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pytest

from hilum.common.reported_findings import (
    ChangeSincePrior,
    DevicePosition,
    FindingStatus,
    Laterality,
    ModelProvenance,
    PriorReference,
    ReportedDevice,
    ReportedFinding,
    ReportedFindings,
    reported_devices,
)
from hilum.common.wording import DEMO_DETAIL, DEMO_NOTICE, DRAFT_NOTICE
from hilum.inference.labels import load_label_map
from hilum.reporting.draft import draft_report, render_html
from hilum.reporting.draft_regions import NORMAL_IMPRESSION, device_urgency, finding_urgency
from hilum.v1 import messages_pb2

LABELS = load_label_map(Path(__file__).parents[3] / "model_repository" / "cxr_findings")
DISPLAY = {label.code: label.display for label in LABELS}
CODES = tuple(DISPLAY)
DEMO = ModelProvenance(name="cxr_findings", version="demo-untrained", demo_weights=True)
VALIDATED = ModelProvenance(name="cxr_findings", version="1.0.0", demo_weights=False)
PRIOR = PriorReference(study_instance_uid="1.2.2", study_date=date(2025, 3, 1))
HEADINGS = ("EXAMINATION:", "COMPARISON:", "FINDINGS:", "IMPRESSION:")
K, P = messages_pb2.DeviceKind, messages_pb2.DevicePosition
KINDS = [K.DEVICE_KIND_ETT, K.DEVICE_KIND_NG_TUBE, K.DEVICE_KIND_CVC, K.DEVICE_KIND_PICC, K.DEVICE_KIND_CHEST_TUBE,
         K.DEVICE_KIND_PACEMAKER]
# UNSPECIFIED stands for no placement call (made with the reason a child gets).
POSITIONS = [P.DEVICE_POSITION_SATISFACTORY, P.DEVICE_POSITION_MALPOSITIONED, P.DEVICE_POSITION_INDETERMINATE,
             P.DEVICE_POSITION_UNSPECIFIED]
NO_CALL_REASON = "placement thresholds are for adults; patient is under 18"


def _finding(code: str, status: FindingStatus = FindingStatus.PRESENT, change: ChangeSincePrior | None = None,
             side: Laterality = Laterality.UNSPECIFIED, probability: float = 0.8,
             model: ModelProvenance = DEMO) -> ReportedFinding:
    return ReportedFinding(code=code, display=DISPLAY.get(code, ""), snomed_code="", status=status,
                           probability=probability, threshold=0.5, laterality=side, change=change, model=model)


def _devices(*devices: tuple[messages_pb2.DeviceKind.ValueType, messages_pb2.DevicePosition.ValueType,
                             float | None]) -> tuple[ReportedDevice, ...]:
    findings = []
    for kind, position, distance in devices:
        called = position != P.DEVICE_POSITION_UNSPECIFIED
        finding = messages_pb2.DeviceFinding(kind=kind, probability=0.9, position=position, position_called=called,
                                             position_reason="" if called else NO_CALL_REASON)
        if distance is not None:
            finding.tip_distance_mm = distance
        findings.append(finding)
    return reported_devices(findings)


def _reported(*findings: ReportedFinding, devices: tuple[ReportedDevice, ...] = (), prior: PriorReference | None = None,
              compared: bool = False, model: ModelProvenance = DEMO,
              assessed: tuple[str, ...] = CODES) -> ReportedFindings:
    findings = tuple(replace(f, model=model) for f in findings)
    return ReportedFindings(study_instance_uid="1.2.3", model=model, prior=prior, compared=compared,
                            findings=findings, assessed_codes=assessed, devices=devices)


@dataclass(frozen=True)
class Case:
    """A finding set, with phrases its text must and must not contain."""

    name: str
    reported: ReportedFindings
    says: tuple[str, ...] = ()
    never: tuple[str, ...] = ()


def _cases() -> list[Case]:
    cases = [
        Case("normal", _reported(), says=("The lungs are clear.", NORMAL_IMPRESSION)),
        Case("normal, validated", _reported(model=VALIDATED), never=(DEMO_NOTICE,)),
        Case("normal, devices only", _reported(devices=_devices((KINDS[0], POSITIONS[0], 50.0))),
             says=("Endotracheal tube tip 5.0 cm above the carina, satisfactory position.", NORMAL_IMPRESSION)),
        Case("nothing assessed", _reported(assessed=()), never=(NORMAL_IMPRESSION,)),
    ]
    cases += [Case(f"single {code}", _reported(_finding(code)), says=(f"{DISPLAY[code]}.",),
                   never=(NORMAL_IMPRESSION,)) for code in CODES]
    cases += [
        Case("multiple", _reported(_finding("cardiomegaly", probability=0.9), _finding("effusion", probability=0.7),
                                   _finding("pneumothorax", probability=0.6), _finding("fracture")),
             says=("Pleura: Pleural effusion. Pneumothorax.\n", "1. Pneumothorax.\n2. Pleural effusion.\n")),
        Case("multiple with devices and resolved", _reported(
            _finding("consolidation", change=ChangeSincePrior.NEW),
            _finding("atelectasis", FindingStatus.UNCERTAIN, ChangeSincePrior.UNCHANGED),
            _finding("edema", FindingStatus.RESOLVED, ChangeSincePrior.RESOLVED, probability=0.1),
            devices=_devices((KINDS[2], POSITIONS[1], 30.0), (KINDS[0], POSITIONS[0], 40.0)),
            prior=PRIOR, compared=True),
            says=("Consolidation, new since 2025-03-01.", "Possible atelectasis, unchanged from 2025-03-01.",
                  "Pulmonary edema, resolved since 2025-03-01.")),
        Case("change new", _reported(_finding("effusion", change=ChangeSincePrior.NEW), prior=PRIOR, compared=True),
             says=("Pleural effusion, new since 2025-03-01.",)),
        Case("change unchanged", _reported(_finding("nodule", change=ChangeSincePrior.UNCHANGED), prior=PRIOR,
                                           compared=True), says=("Lung nodule, unchanged from 2025-03-01.",)),
        Case("change resolved", _reported(_finding("pneumothorax", FindingStatus.RESOLVED, ChangeSincePrior.RESOLVED),
                                          prior=PRIOR, compared=True),
             says=("Pneumothorax, resolved since 2025-03-01.", NORMAL_IMPRESSION)),
        Case("change not compared", _reported(_finding("mass", change=ChangeSincePrior.NOT_COMPARED), prior=PRIOR,
                                              compared=True), says=("Lung mass.",),
             never=("new since", "unchanged from", "resolved since")),
        Case("prior not compared", _reported(_finding("mass"), prior=PRIOR),
             says=("its findings were not available",), never=("new since",)),
        Case("prior of unknown date", _reported(_finding("hernia", change=ChangeSincePrior.NEW),
                                                prior=replace(PRIOR, study_date=None), compared=True),
             says=("Hiatal hernia, new since the prior study.", "Prior chest radiograph of unknown date.")),
        Case("uncertain", _reported(_finding("pneumonia", FindingStatus.UNCERTAIN, probability=0.45)),
             says=("Possible pneumonia.",)),
        Case("uncertain and new", _reported(_finding("pneumothorax", FindingStatus.UNCERTAIN, ChangeSincePrior.NEW),
                                            prior=PRIOR, compared=True),
             says=("Possible pneumothorax, new since 2025-03-01.",)),
        Case("unknown label", _reported(_finding("rib_lesion")), says=("Other: Rib_lesion.",)),
        Case("two of a kind",
             _reported(devices=_devices((KINDS[2], POSITIONS[0], 10.0), (KINDS[2], POSITIONS[1], None))),
             says=("Central venous catheter tip 1.0 cm above the cavoatrial junction",
                   "Malpositioned second central venous catheter.")),
        Case("ett below the carina", _reported(devices=_devices((KINDS[0], POSITIONS[1], -8.0))),
             says=("Endotracheal tube tip 0.8 cm below the carina, malpositioned.",)),
        Case("ett at the carina", _reported(devices=_devices((KINDS[0], POSITIONS[1], 0.4))),
             says=("Endotracheal tube tip at the carina, malpositioned.",)),
        Case("ng tube below the junction", _reported(devices=_devices((KINDS[1], POSITIONS[0], -104.6))),
             says=("Nasogastric tube tip 10.5 cm below the gastroesophageal junction, satisfactory position.",)),
        Case("picc in a child", _reported(devices=_devices((KINDS[3], POSITIONS[3], 12.0))),
             says=("Peripherally inserted central catheter tip 1.2 cm above the cavoatrial junction, position not "
                   f"assessed: {NO_CALL_REASON}.",),
             never=("satisfactory", "malpositioned", "indeterminate")),
    ]
    cases += [Case(f"{side.value} side", _reported(_finding("effusion", side=side)),
                   says=(f"{side.value.capitalize()} pleural effusion.",)) for side in Laterality
              if side != Laterality.UNSPECIFIED]
    for kind in KINDS:
        for position in POSITIONS:
            for distance in (None, 25.0):
                devices = _devices((kind, position, distance))
                called = devices[0].position.value if devices[0].position_called else "not called"
                name = f"device {devices[0].kind.value} {called} {distance}"
                cases.append(Case(name, _reported(_finding("atelectasis"), devices=devices)))
    return cases


CASES = _cases()


def test_there_are_at_least_forty_constructed_cases() -> None:
    assert len(CASES) >= 40


def _check_faithful(reported: ReportedFindings) -> messages_pb2.DraftReport:
    """Draft the set and check every invariant of a faithful draft; returns the draft."""
    draft = draft_report(reported)
    ids = {f.code for f in reported.findings} | {d.code for d in reported.devices}
    absent = set(reported.absent_codes)
    # Every sentence cites one reported id, or (a normal statement) only labels assessed and absent.
    for sentence in [*draft.findings, *draft.impression]:
        codes = list(sentence.finding_codes)
        assert codes, sentence.text
        assert (len(codes) == 1 and codes[0] in ids) or set(codes) <= absent, sentence.text
    # FINDINGS states every reported finding and device exactly once; IMPRESSION at most once.
    findings_cited = [c for s in draft.findings for c in s.finding_codes if c in ids]
    impression_cited = [c for s in draft.impression for c in s.finding_codes if c in ids]
    assert sorted(findings_cited) == sorted(ids)
    assert len(impression_cited) == len(set(impression_cited))
    must = {f.code for f in reported.findings if f.status == FindingStatus.PRESENT or f.change == ChangeSincePrior.NEW}
    must |= {d.code for d in reported.devices if d.position != DevicePosition.SATISFACTORY}
    assert must <= set(impression_cited)
    # IMPRESSION follows urgency; a normal sentence comes last.
    rank = {f.code: finding_urgency(f) for f in reported.findings}
    rank |= {d.code: u for d in reported.devices if (u := device_urgency(d)) is not None}
    ranks = [rank[s.finding_codes[0]] for s in draft.impression if s.finding_codes[0] in ids]
    assert ranks == sorted(ranks)
    normal = [s for s in draft.impression if s.text == NORMAL_IMPRESSION]
    assert normal == ([draft.impression[-1]] if not reported.present and not reported.uncertain and absent else [])
    # Distances: centimetres, one decimal.
    for device in reported.devices:
        (stated,) = [s.text for s in draft.findings if device.code in s.finding_codes]
        if device.tip_distance_mm is not None and abs(device.tip_distance_mm) >= 0.5:
            assert f" {abs(device.tip_distance_mm) / 10:.1f} cm " in stated
        elif device.tip_distance_mm is None:
            assert " cm " not in stated
        # A device without a placement call says so, with the reason, and names no position.
        assert (f"position not assessed: {NO_CALL_REASON}." in stated) is not device.position_called
        assert not device.position_called or "not assessed" not in stated
    assert all(re.fullmatch(r"\d+\.\d", n) for n in re.findall(r"(\S+) cm\b", draft.text))
    # Hedging, sides and the sections.
    for finding in reported.findings:
        (stated,) = [s.text for s in draft.findings if finding.code in s.finding_codes]
        assert stated.startswith("Possible ") is (finding.status == FindingStatus.UNCERTAIN)
        if finding.laterality != Laterality.UNSPECIFIED:
            assert f"{finding.laterality.value} " in stated.lower()
    text = draft.text
    assert [text.index(f"\n{h}\n") for h in HEADINGS] == sorted(text.index(f"\n{h}\n") for h in HEADINGS)
    assert (DEMO_NOTICE in text and DEMO_DETAIL in text) is reported.model.demo_weights
    assert text.startswith(DEMO_NOTICE if reported.model.demo_weights else DRAFT_NOTICE)
    assert ET.fromstring(render_html(draft)).tag == "{http://www.w3.org/1999/xhtml}div"
    return draft


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_constructed_finding_sets_are_drafted_faithfully(case: Case) -> None:
    text = _check_faithful(case.reported).text
    for phrase in case.says:
        assert phrase in text
    for phrase in case.never:
        assert phrase not in text


def _random_set(rng: random.Random) -> ReportedFindings:
    """A random but consistent finding set: change only with a compared prior, resolved only then."""
    prior = rng.choice([None, PRIOR, replace(PRIOR, study_date=None)])
    compared = prior is not None and rng.random() < 0.7
    findings = []
    for code in rng.sample(CODES, rng.randint(0, 6)):
        statuses = list(FindingStatus) if compared else [FindingStatus.PRESENT, FindingStatus.UNCERTAIN]
        status = rng.choice(statuses)
        change: ChangeSincePrior | None = None
        if status == FindingStatus.RESOLVED:
            change = ChangeSincePrior.RESOLVED
        elif compared:
            change = rng.choice([ChangeSincePrior.NEW, ChangeSincePrior.UNCHANGED, ChangeSincePrior.NOT_COMPARED])
        findings.append(_finding(code, status, change, rng.choice(list(Laterality)), round(rng.random(), 2)))
    devices = _devices(*((rng.choice(KINDS), rng.choice(POSITIONS),
                          rng.choice([None, round(rng.uniform(-150, 150), 1)])) for _ in range(rng.randint(0, 4))))
    model = rng.choice([DEMO, VALIDATED])
    return _reported(*findings, devices=devices, prior=prior, compared=compared, model=model)


def test_random_finding_sets_are_drafted_faithfully() -> None:
    rng = random.Random(20250302)
    for _ in range(500):
        _check_faithful(_random_set(rng))
