"""Report labeler quality: the rule labeler vs a keyword baseline on the Indiana University chest X-ray reports.

The 3,955 reports (FINDINGS and IMPRESSION) and their manual MeSH annotations come from the NLMCXR_reports.tgz that
the torchxrayvision wheel carries. The wheel is fetched at run time with pip into a cache folder outside the
repository (~/.cache/hilum-bench by default): the corpus is CC BY-NC-ND and is never copied into Hilum.

A report's reference labels are its manual ("major") MeSH terms mapped to the cxr_findings codes by MESH_LABELS
below, the one place the mapping lives (bench/README.md explains it). Reports split by sha256 of their id: 30% test,
70% train. Rules were tuned by reading train reports only (`--errors CODE` prints train errors, never test ones).
A label counts as predicted when the labeler calls it present; uncertain counts as not predicted (on the train
split the annotators left most hedged findings uncoded). Scores on the test split: per-label precision, recall and
F1; macro-F1 over the labels with at least 10 test positives and micro-F1 over the same labels, each with a
bootstrap 95% interval (reports resampled); beside them the baseline, which labels every finding any term names,
ignoring negation and hedges.

Devices are scored on the constructed device sentences (tests/unit/priors/device_sentences.json), which the unit
tests also check: per device kind and status, side, and ETT tip distance.

Drafting round trip, on the same split: each report's reference labels become the current findings of a
PriorComparison (validated weights, no prior), Hilum drafts it (reporting/draft.py), and the labeler re-reads the
draft's FINDINGS and IMPRESSION sentences: label micro-F1 against the reference, with the labels it adds
(hallucinated) or misses (omitted). ROUGE-L F (LCS over lower-case words) of the draft against the original
FINDINGS + IMPRESSION, beside a constant normal report and a retrieval baseline (the other split's report whose
reference labels are nearest by Jaccard, ties to the lowest id).

    .venv/bin/python bench/report_labeler.py [--json] [--bootstrap 1000] [--split train] [--errors effusion]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np

from hilum.common.reported_findings import reported_findings
from hilum.common.wording import DEMO_NOTICE
from hilum.inference.labels import LabelSpec, load_label_map
from hilum.priors.report_labeler import MentionStatus, keyword_codes, label_report
from hilum.priors.report_vocabulary import FINDING_CODES
from hilum.reporting.draft import draft_report
from hilum.v1 import messages_pb2

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_CACHE = Path.home() / ".cache" / "hilum-bench"
# The constructed device sentences and their expected devices, as `hilum labels --json` prints them; the unit tests
# check the same file.
DEVICE_SENTENCES = REPO_ROOT / "tests" / "unit" / "priors" / "device_sentences.json"
CORPUS_MEMBER = "torchxrayvision/data/NLMCXR_reports.tgz"
TEST_PERCENT = 30
MIN_TEST_POSITIVES = 10
PREDICTED = frozenset({MentionStatus.PRESENT})
MODEL_DIR = REPO_ROOT / "model_repository" / "cxr_findings"
# The drafting round trip's constant baseline: every report drafted as this normal text.
NORMAL_REPORT = "The lungs are clear. The heart size is normal. No pleural effusion or pneumothorax."
_SECTION_HEADING = re.compile(r"^(FINDINGS|IMPRESSION):\s*", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]+")

# Manual MeSH heading (the part before the first "/", lower case) -> cxr_findings codes. A heading with a qualifier
# ("costophrenic angle/blunted") matches when the term's qualifiers include it. Headings not listed (granuloma,
# scarring, degenerative spine, tortuous aorta, ...) name nothing in the cxr_findings vocabulary.
MESH_LABELS: dict[str, tuple[str, ...]] = {
    "pulmonary atelectasis": ("atelectasis",),
    "consolidation": ("consolidation",),
    "infiltrate": ("infiltration",),
    "pneumothorax": ("pneumothorax",),
    "hydropneumothorax": ("pneumothorax", "effusion"),
    "hemopneumothorax": ("pneumothorax",),
    "pulmonary edema": ("edema",),
    "emphysema": ("emphysema",),
    "pulmonary emphysema": ("emphysema",),
    "bullous emphysema": ("emphysema",),
    "pulmonary fibrosis": ("fibrosis",),
    "fibrosis": ("fibrosis",),
    "pleural effusion": ("effusion",),
    "costophrenic angle/blunted": ("effusion",),
    "pleura/blunted": ("effusion",),
    "pneumonia": ("pneumonia",),
    "thickening/pleura": ("pleural_thickening",),
    "cardiomegaly": ("cardiomegaly",),
    "cardiac shadow/enlarged": ("cardiomegaly",),
    "nodule": ("nodule",),
    "mass": ("mass",),
    "hernia, hiatal": ("hernia",),
    "hernia, diaphragmatic": ("hernia",),
    "fractures, bone": ("fracture",),
    "opacity": ("lung_opacity",),
    "airspace disease": ("lung_opacity",),
    "density": ("lung_opacity",),
    "mediastinum/enlarged": ("enlarged_cardiomediastinum",),
    "mediastinum/prominent": ("enlarged_cardiomediastinum",),
}


@dataclass(frozen=True)
class Report:
    """One IU report: its id, the FINDINGS/IMPRESSION text and the codes its manual MeSH terms map to."""

    uid: str
    text: str
    mesh: tuple[str, ...]
    reference: frozenset[str]

    @property
    def in_test(self) -> bool:
        """The fixed split: the first 8 hex digits of sha256(id), mod 100, below TEST_PERCENT."""
        return int(hashlib.sha256(self.uid.encode()).hexdigest()[:8], 16) % 100 < TEST_PERCENT


def mesh_codes(terms: Sequence[str]) -> frozenset[str]:
    """The cxr_findings codes a report's manual MeSH terms name (MESH_LABELS)."""
    codes: set[str] = set()
    for term in terms:
        heading, *qualifiers = (part.strip() for part in term.lower().split("/"))
        codes.update(MESH_LABELS.get(heading, ()))
        for qualifier in qualifiers:
            codes.update(MESH_LABELS.get(f"{heading}/{qualifier}", ()))
    return frozenset(codes)


def fetch_wheel(cache: Path) -> Path:
    """The torchxrayvision wheel in `cache`, downloaded with the project's pip (no dependencies) when absent."""
    wheels = sorted(cache.glob("torchxrayvision-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        python = REPO_ROOT / ".venv" / "bin" / "python"
        subprocess.run([str(python if python.exists() else sys.executable), "-m", "pip", "download", "--no-deps",
                        "--only-binary", ":all:", "torchxrayvision", "-d", str(cache)], check=True)
        wheels = sorted(cache.glob("torchxrayvision-*.whl"))
    if not wheels:
        raise SystemExit(f"no torchxrayvision wheel in {cache}")
    return wheels[-1]


def read_reports(wheel: Path) -> list[Report]:
    """Every report in the wheel's NLMCXR_reports.tgz, read in memory, in id order."""
    with zipfile.ZipFile(wheel) as archive:
        corpus = archive.read(CORPUS_MEMBER)
    reports = []
    with tarfile.open(fileobj=io.BytesIO(corpus), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.name.endswith(".xml") else None
            if handle is None:
                continue
            root = ElementTree.parse(handle).getroot()
            uid_node = root.find("uId")
            uid = uid_node.attrib["id"] if uid_node is not None else member.name
            sections = {node.get("Label", "").upper(): (node.text or "").strip()
                        for node in root.iter("AbstractText")}
            text = "\n".join(f"{name}: {sections[name]}" for name in ("FINDINGS", "IMPRESSION") if sections.get(name))
            mesh = tuple(node.text.strip() for node in root.findall(".//MeSH/major") if node.text)
            reports.append(Report(uid, text, mesh, mesh_codes(mesh)))
    return sorted(reports, key=lambda r: int("".join(c for c in r.uid if c.isdigit()) or 0))


def predicted_codes(text: str) -> frozenset[str]:
    """The codes the labeler calls present."""
    return frozenset(f.code for f in label_report(text).findings if f.status in PREDICTED)


def matrix(rows: Sequence[frozenset[str]]) -> np.ndarray:
    """Reports x FINDING_CODES, True where the code is in the report's set."""
    return np.array([[code in row for code in FINDING_CODES] for row in rows], dtype=bool)


def f1_scores(gold: np.ndarray, pred: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per-label F1 (0 where a label has neither positives nor predictions), macro and micro over `eligible`."""
    tp = (gold & pred).sum(0).astype(float)
    fp = (~gold & pred).sum(0).astype(float)
    fn = (gold & ~pred).sum(0).astype(float)
    denominator = 2 * tp + fp + fn
    per_label = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    micro_denominator = (2 * tp + fp + fn)[eligible].sum()
    micro = float(2 * tp[eligible].sum() / micro_denominator) if micro_denominator else 0.0
    return per_label, float(per_label[eligible].mean()), micro


def bootstrap(gold: np.ndarray, pred: np.ndarray, eligible: np.ndarray, rounds: int,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile 95% intervals from `rounds` resamples of the reports: (per-label F1 x [low, high], and
    [[macro low, macro high], [micro low, micro high]])."""
    rng = np.random.default_rng(seed)
    labels, summaries = [], []
    for _ in range(rounds):
        sample = rng.integers(0, len(gold), len(gold))
        per_label, macro, micro = f1_scores(gold[sample], pred[sample], eligible)
        labels.append(per_label)
        summaries.append((macro, micro))
    return (np.percentile(np.array(labels), [2.5, 97.5], axis=0).T,
            np.percentile(np.array(summaries), [2.5, 97.5], axis=0).T)


@dataclass(frozen=True)
class Scores:
    """One system's predictions on the test split and their scores: per-label F1 (and 95% intervals, labels x
    [low, high]), macro- and micro-F1 (intervals: [[macro low, high], [micro low, high]])."""

    pred: np.ndarray
    per_label: np.ndarray
    macro: float
    micro: float
    label_bounds: np.ndarray
    summary_bounds: np.ndarray

    @classmethod
    def of(cls, gold: np.ndarray, pred: np.ndarray, eligible: np.ndarray, rounds: int) -> Scores:
        """Scores `pred` against `gold`, with `rounds` bootstrap resamples."""
        per_label, macro, micro = f1_scores(gold, pred, eligible)
        return cls(pred, per_label, macro, micro, *bootstrap(gold, pred, eligible, rounds))


@dataclass(frozen=True)
class DeviceScore:
    """The labeler on the constructed device sentences."""

    cases: int
    exact: int  # cases whose whole device list is right
    precision: float  # over (kind, status) pairs
    recall: float
    side_right: int  # of the found devices that have an expected side or none
    side_total: int
    distance_right: int  # ETT tip distances within 0.5 mm, of those expected
    distance_total: int


def score_devices(cases: Sequence[dict[str, Any]], label: Callable[[str], list[dict[str, Any]]]) -> DeviceScore:
    """Scores `label` (a sentence -> its devices as `hilum labels --json` prints them) on the device cases."""
    exact = tp = fp = fn = side_right = side_total = distance_right = distance_total = 0
    for case in cases:
        found = label(case["text"])
        exact += found == case["devices"]
        got = {(d["kind"], d["status"]): d for d in found}
        want = {(d["kind"], d["status"]): d for d in case["devices"]}
        tp += len(got.keys() & want.keys())
        fp += len(got.keys() - want.keys())
        fn += len(want.keys() - got.keys())
        for key in got.keys() & want.keys():
            side_total += 1
            side_right += got[key]["laterality"] == want[key]["laterality"]
            expected = want[key]["mm_above_carina"]
            if isinstance(expected, float | int):
                distance_total += 1
                value = got[key]["mm_above_carina"]
                distance_right += isinstance(value, float | int) and abs(value - expected) <= 0.5
    return DeviceScore(len(cases), exact, tp / max(tp + fp, 1), tp / max(tp + fn, 1), side_right, side_total,
                       distance_right, distance_total)


def print_errors(reports: Sequence[Report], code: str) -> None:
    """False positives and negatives of one label on the TRAIN split, for tuning the rules."""
    for report in reports:
        if report.in_test:
            continue
        predicted = code in predicted_codes(report.text)
        if predicted != (code in report.reference):
            kind = "FP" if predicted else "FN"
            print(f"--- {kind} {report.uid}  MeSH: {'; '.join(report.mesh)}\n{report.text}")


def draft_of(labels: Sequence[LabelSpec], present: frozenset[str], uid: str) -> messages_pb2.DraftReport:
    """Hilum's draft for a study whose findings are exactly `present` (every other label assessed and absent),
    under validated weights and with no prior: what the drafter writes when the model is right."""
    state = messages_pb2.FindingState
    findings = [messages_pb2.Finding(code=label.code, display=label.display, snomed_code=label.snomed or "",
                                     probability=0.9 if label.code in present else 0.1, threshold=label.threshold,
                                     state=state.FINDING_STATE_PRESENT if label.code in present
                                     else state.FINDING_STATE_ABSENT)
                for label in labels]
    current = messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=uid),
        model=messages_pb2.ModelInfo(name="cxr_findings", version="1", demo_weights=False),
        findings=findings,
    )
    return draft_report(reported_findings(messages_pb2.PriorComparison(current=current)))


def draft_text(draft: messages_pb2.DraftReport) -> str:
    """The draft's FINDINGS and IMPRESSION as the corpus writes a report ("FINDINGS: ...\nIMPRESSION: ...")."""
    return "\n".join(f"{name}: {' '.join(s.text for s in sentences)}"
                     for name, sentences in (("FINDINGS", draft.findings), ("IMPRESSION", draft.impression)))


def words(text: str) -> list[str]:
    """Lower-case word tokens of a report's text, without its FINDINGS/IMPRESSION headings."""
    return _WORD.findall(_SECTION_HEADING.sub(" ", text).lower())


def rouge_l(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F-measure (beta 1): the longest common subsequence of the two token lists, as precision over the
    candidate and recall over the reference; 0 when either is empty."""
    if not candidate or not reference:
        return 0.0
    previous = [0] * (len(reference) + 1)
    for token in candidate:
        current = [0]
        for j, other in enumerate(reference):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b|; 1 for two empty sets (two normal reports agree)."""
    return len(a & b) / len(a | b) if a | b else 1.0


def nearest(pool: Sequence[Report], codes: frozenset[str]) -> Report:
    """The report of `pool` (in id order) whose reference labels are most similar to `codes` (Jaccard); ties go to
    the lowest id."""
    return pool[max(range(len(pool)), key=lambda index: (jaccard(pool[index].reference, codes), -index))]


@dataclass(frozen=True)
class RoundTrip:
    """The drafting round trip on one split: labels re-read from Hilum's drafts of the reference labels, and the
    mean ROUGE-L of the drafts and the two baselines against the original reports."""

    reports: int
    micro: float
    hallucinated: dict[str, int]  # label -> drafts that the labeler reads it in, though not in the reference
    omitted: dict[str, int]  # label -> reference positives the labeler does not read in the draft
    normal: int  # reports with no reference label
    rouge: dict[str, tuple[float, float, float]]  # draft -> mean ROUGE-L F over all reports, those with no reference
    # label, those with some
    single_labels: list[str]  # labels that a draft of that label alone does not read back as exactly that label
    example: str  # one draft's text, as the labeler and ROUGE-L read it


def round_trip(scored: Sequence[Report], pool: Sequence[Report]) -> RoundTrip:
    """Drafts every scored report from its reference labels, re-labels and scores the drafts; `pool` (the other
    split) feeds the retrieval baseline."""
    labels = load_label_map(MODEL_DIR)
    # One representative per distinct label set (the lowest id), so the nearest search stays small.
    representatives: dict[frozenset[str], Report] = {}
    for report in pool:
        representatives.setdefault(report.reference, report)
    candidates = sorted(representatives.values(), key=pool.index)
    tp = fp = fn = 0
    hallucinated: dict[str, int] = {}
    omitted: dict[str, int] = {}
    rouge: dict[str, list[float]] = {"hilum draft": [], "constant normal": [], "retrieval": []}
    normal = words(NORMAL_REPORT)
    example = ""
    for report in scored:
        draft = draft_of(labels, report.reference, report.uid)
        if DEMO_NOTICE in draft.text:
            raise SystemExit("the round trip's draft carries the demo notice")
        text = draft_text(draft)
        example = example or (text if len(report.reference) > 1 else "")
        got = predicted_codes(text)
        tp += len(got & report.reference)
        fp += len(got - report.reference)
        fn += len(report.reference - got)
        for code in got - report.reference:
            hallucinated[code] = hallucinated.get(code, 0) + 1
        for code in report.reference - got:
            omitted[code] = omitted.get(code, 0) + 1
        original = words(report.text)
        rouge["hilum draft"].append(rouge_l(words(text), original))
        rouge["constant normal"].append(rouge_l(normal, original))
        rouge["retrieval"].append(rouge_l(words(nearest(candidates, report.reference).text), original))
    micro = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    normal_rows = np.array([not report.reference for report in scored])
    means = {name: (float(np.mean(values)), float(np.mean(np.array(values)[normal_rows])),
                    float(np.mean(np.array(values)[~normal_rows]))) for name, values in rouge.items()}
    # Every label drafted alone, the ones no reference report holds (lung_lesion) included.
    single = [label.code for label in labels
              if predicted_codes(draft_text(draft_of(labels, frozenset({label.code}), label.code))) != {label.code}]
    return RoundTrip(len(scored), micro, hallucinated, omitted, int(normal_rows.sum()), means, single, example)


def print_round_trip(trip: RoundTrip) -> None:
    """The round trip's table."""
    print(f"\ndrafting round trip, {trip.reports} reports: Hilum's draft of the reference labels (validated weights, "
          "no prior), FINDINGS + IMPRESSION re-labelled")
    print(f"  label micro-F1 {trip.micro:.4f} (goal >= 0.98); hallucinated {sum(trip.hallucinated.values())} "
          f"{dict(sorted(trip.hallucinated.items()))}; omitted {sum(trip.omitted.values())} "
          f"{dict(sorted(trip.omitted.items()))} (goal 0 and 0)")
    exact = len(FINDING_CODES) - len(trip.single_labels)
    print(f"  each label drafted alone and read back as exactly itself: {exact} of {len(FINDING_CODES)} "
          f"{trip.single_labels or ''}")
    print("  mean ROUGE-L F vs the original FINDINGS + IMPRESSION, over all reports and those with no or some "
          "reference label")
    print(f"  {'draft':20} {'all':>7} {'none':>7} {'some':>7}")
    print(f"  {'(reports)':20} {trip.reports:7d} {trip.normal:7d} {trip.reports - trip.normal:7d}")
    for name, (every, normal, abnormal) in trip.rouge.items():
        print(f"  {name:20} {every:7.4f} {normal:7.4f} {abnormal:7.4f}")
    print(f"  constant normal: \"{NORMAL_REPORT}\"; retrieval: the other split's report with the most similar "
          "reference labels (Jaccard, ties to the lowest id)")
    print("  example draft:\n    " + trip.example.replace("\n", "\n    "))


def interval(bounds: np.ndarray) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the wheel is kept (outside the repo)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    parser.add_argument("--errors", metavar="CODE", help="print the TRAIN split's errors for one label and stop")
    parser.add_argument("--split", choices=["test", "train"], default="test",
                        help="score this split (rules are tuned on train; the figures reported are test's)")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON holding the figures")
    args = parser.parse_args()

    reports = read_reports(fetch_wheel(args.cache))
    if args.errors:
        print_errors(reports, args.errors)
        return 0
    scored = [r for r in reports if r.in_test == (args.split == "test")]
    gold = matrix([r.reference for r in scored])
    systems = {"labeler": matrix([predicted_codes(r.text) for r in scored]),
               "keywords": matrix([keyword_codes(r.text) for r in scored])}
    positives = gold.sum(0)
    eligible = positives >= MIN_TEST_POSITIVES
    print(f"{len(reports)} reports, {len(scored)} in the {args.split} split (test: {TEST_PERCENT}% by sha256 of the "
          f"id); macro and micro over the {int(eligible.sum())} labels with >= {MIN_TEST_POSITIVES} positives in it")
    scores = {name: Scores.of(gold, pred, eligible, args.bootstrap) for name, pred in systems.items()}
    labeler, baseline = scores["labeler"], scores["keywords"]

    print(f"\n{'label':27} {'pos':>5} {'P':>6} {'R':>6} {'labeler F1 [95% CI]':>24}   {'keywords F1 [95% CI]':>24}")
    for index, code in enumerate(FINDING_CODES):
        tp = int((gold[:, index] & labeler.pred[:, index]).sum())
        precision = tp / max(int(labeler.pred[:, index].sum()), 1)
        recall = tp / max(int(positives[index]), 1)
        cells = [f"{s.per_label[index]:.3f} {interval(s.label_bounds[index])}" for s in (labeler, baseline)]
        mark = "" if eligible[index] else "  (not in macro)"
        print(f"{code:27} {int(positives[index]):5d} {precision:6.3f} {recall:6.3f} {cells[0]:>24}   "
              f"{cells[1]:>24}{mark}")
    for name, score in scores.items():
        print(f"{name:9} macro-F1 {score.macro:.3f} {interval(score.summary_bounds[0])}   "
              f"micro-F1 {score.micro:.3f} {interval(score.summary_bounds[1])}")
    print("goal: labeler macro-F1 >= 0.90 and micro-F1 >= 0.93")

    cases = json.loads(DEVICE_SENTENCES.read_text())
    devices = score_devices(cases, lambda text: label_report(text).as_json()["devices"])
    print(f"\ndevices, {devices.cases} constructed sentences: {devices.exact} exactly right; kind+status precision "
          f"{devices.precision:.3f} recall {devices.recall:.3f}; side {devices.side_right}/{devices.side_total}; "
          f"ETT tip distance {devices.distance_right}/{devices.distance_total}")
    trip = round_trip(scored, [r for r in reports if r.in_test != (args.split == "test")])
    print_round_trip(trip)
    if args.json:
        summary = {
            "reports": len(reports), "split": args.split, "scored_reports": len(scored),
            "macro_labels": [code for code, ok in zip(FINDING_CODES, eligible, strict=True) if ok],
            **{f"{name}_{measure}": round(getattr(score, measure), 4)
               for name, score in scores.items() for measure in ("macro", "micro")},
            **{f"{name}_{measure}_ci": [round(float(v), 4) for v in score.summary_bounds[row]]
               for name, score in scores.items() for row, measure in enumerate(("macro", "micro"))},
            "labeler_f1": {code: round(float(f1), 4)
                           for code, f1 in zip(FINDING_CODES, labeler.per_label, strict=True)},
            "devices": {"cases": devices.cases, "exact": devices.exact, "precision": round(devices.precision, 4),
                        "recall": round(devices.recall, 4), "side": [devices.side_right, devices.side_total],
                        "ett_distance": [devices.distance_right, devices.distance_total]},
            "round_trip": {"micro": round(trip.micro, 4), "hallucinated": trip.hallucinated, "omitted": trip.omitted,
                           "single_label_misread": trip.single_labels, "normal_reports": trip.normal,
                           "rouge_l": {name: round(value[0], 4) for name, value in trip.rouge.items()},
                           "rouge_l_normal_abnormal": {name: [round(value[1], 4), round(value[2], 4)]
                                                       for name, value in trip.rouge.items()}},
        }
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
