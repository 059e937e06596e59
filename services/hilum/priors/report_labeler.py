"""A prior's radiology report as labels: the cxr_findings findings and the tubes and lines it mentions.

Rule-based and offline (ConText/NegEx style, vocabulary in report_vocabulary.py). Only the sections that describe
the images are read (FINDINGS, IMPRESSION, or a report without headings), sentence by sentence:

1. terms are found, longest first, without overlaps ("pleural effusion" is one mention, not two);
2. triggers around them (negation, hedges, hypotheticals, change words) reach the mentions in their scope: to the
   sentence's end (forward) or start (backward), cut short by a terminating word ("but", "which") or a trigger
   that contradicts them; a mention takes the nearest trigger of each kind that reaches it. So
   "no effusion, pneumothorax or consolidation" negates all three, "no effusion; stable cardiomegaly" and
   "no effusion, stable cardiomegaly" do not negate the cardiomegaly, and in "opacity, atelectasis versus scarring"
   only the atelectasis is uncertain. A favoured reading ("likely atelectasis", "probable effusion") is present;
3. a side word ("left", "bibasilar") and a severity word ("small", "mildly") go to the mention they precede closely,
   else to the one they follow ("opacity in the right lower lobe"); a device's side is where it goes in ("right IJ
   line"), never where its tip lies ("... tip in the right atrium"), and an ETT or NG tube has no side;
4. mentions of one label are merged over the report: present beats uncertain beats absent, and the side, severity
   and change come from the mentions that decided the status.

A hypothetical mention ("history of", "rule out") is not a statement about the image and is dropped. A resolved or
removed finding or device is ABSENT with change RESOLVED ("interval removal of the chest tube").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from hilum.common.reported_findings import DeviceType, Laterality
from hilum.priors.report_sections import describing_sentences
from hilum.priors.report_vocabulary import (
    ABOVE_RELATIONS,
    CARINA_DISTANCE,
    FINDING_CODES,
    NO_ACUTE_DISEASE,
    NORMAL_ANCHORS,
    NUMBER_WORDS,
    PUBLISHED_NAMES,
    SEVERITIES,
    SIDES,
    STATUS_MODIFIERS,
    TERMS,
    TRIGGERS,
    Direction,
    Modifier,
    Term,
    Trigger,
)


class MentionStatus(StrEnum):
    """What the report says of a finding or device: there, not there, or hedged."""

    PRESENT = "present"
    ABSENT = "absent"
    UNCERTAIN = "uncertain"


class Change(StrEnum):
    """A finding's change since an earlier study, as the report words it."""

    NEW = "new"
    RESOLVED = "resolved"
    STABLE = "stable"
    IMPROVED = "improved"
    WORSENED = "worsened"


@dataclass(frozen=True)
class LabeledFinding:
    """A cxr_findings label the report mentions. laterality, severity ("small", "mild to moderate") and change:
    None when the report does not say."""

    code: str
    status: MentionStatus
    laterality: Laterality | None
    severity: str | None
    change: Change | None

    @property
    def name(self) -> str:
        """The label's name as torchxrayvision publishes it ("Effusion", "Lung Opacity")."""
        return PUBLISHED_NAMES[self.code]


@dataclass(frozen=True)
class LabeledDevice:
    """A tube or line the report mentions. laterality: the side it enters (None for ETT and NG tube, or unsaid).
    mm_above_carina: ETT tip to carina in millimetres, positive above, negative below; None when not stated."""

    kind: DeviceType
    status: MentionStatus
    laterality: Laterality | None
    mm_above_carina: float | None


@dataclass(frozen=True)
class ReportLabels:
    """Everything the labeler read in one report: findings in labels.json order, devices in DeviceType order.

    no_acute_disease: the report says "no acute cardiopulmonary abnormality", "normal chest" or the like; no
    finding is labelled from that alone.
    """

    findings: tuple[LabeledFinding, ...]
    devices: tuple[LabeledDevice, ...]
    no_acute_disease: bool = False

    def finding(self, code: str) -> LabeledFinding | None:
        """The finding with this cxr_findings code, None when the report does not mention it."""
        return next((f for f in self.findings if f.code == code), None)

    def device(self, kind: DeviceType) -> LabeledDevice | None:
        """The device of this kind, None when the report does not mention one."""
        return next((d for d in self.devices if d.kind == kind), None)

    def as_json(self) -> dict[str, list[dict[str, str | float | None]]]:
        """The `hilum labels --json` object: findings by published name, devices by kind, null where unsaid."""
        return {
            "findings": [
                {"label": f.name, "status": f.status.value, "laterality": _value(f.laterality),
                 "severity": f.severity, "change": _value(f.change)}
                for f in self.findings
            ],
            "devices": [
                {"kind": d.kind.value, "status": d.status.value, "laterality": _value(d.laterality),
                 "mm_above_carina": d.mm_above_carina}
                for d in self.devices
            ],
        }


    def as_text(self) -> str:
        """The `hilum labels` table: one row per finding, then per device; "-" where the report does not say."""
        lines = [_row("finding", "status", "side", "severity", "change")]
        lines += [_row(f.name, f.status.value, _value(f.laterality), f.severity, _value(f.change))
                  for f in self.findings]
        if not self.findings:
            lines = ["no cxr_findings label mentioned"]
        if self.devices:
            lines += ["", _row("device", "status", "side", "tip above carina")]
            lines += [_row(d.kind.value, d.status.value, _value(d.laterality),
                           None if d.mm_above_carina is None else f"{d.mm_above_carina:g} mm") for d in self.devices]
        if self.no_acute_disease:
            lines += ["", "the report states no acute disease (no label follows from that alone)"]
        return "\n".join(lines)


def _row(first: str, *cells: str | None) -> str:
    return (f"{first:<26}" + "".join(f"  {cell or '-':<10}" for cell in cells)).rstrip()


def _value(member: StrEnum | None) -> str | None:
    return None if member is None else member.value


@dataclass(frozen=True)
class _Found:
    """A term or trigger found in a sentence: characters [start, end), and its rank in its table (ties)."""

    start: int
    end: int
    rank: int


@dataclass(frozen=True)
class _Mention:
    """One mention of findings or of a device in one sentence, with what its context says about it."""

    codes: tuple[str, ...]
    device: DeviceType | None
    status: MentionStatus
    sides: frozenset[str]
    severity: str | None
    change: Change | None
    mm_above_carina: float | None = None


_CHANGES = {modifier: Change(modifier.value) for modifier in
            (Modifier.NEW, Modifier.STABLE, Modifier.IMPROVED, Modifier.WORSENED, Modifier.RESOLVED)}
_NOT_MODIFYING = frozenset({Modifier.TERMINATE, Modifier.PSEUDO})
_UNSIDED_DEVICES = frozenset({DeviceType.ETT, DeviceType.NG_TUBE})
_ORDER = {MentionStatus.PRESENT: 0, MentionStatus.UNCERTAIN: 1, MentionStatus.ABSENT: 2}
# The words allowed between a device and the side it enters from: "chest tube on the right".
_DEVICE_SIDE_AFTER = re.compile(r"^\s*(?:(?:is |are )?(?:on|from|via) (?:the |a )?)?$")
_WORD = re.compile(r"[\w/'-]+")
# Between a finding and a side word, a place: "opacity at the left base", "effusion in the right hemithorax".
_LOCATION_AFTER = re.compile(r"^\s*(?:(?:is |are )?(?:seen |noted |present )?(?:at|in|of|within|involving|over|along) "
                             r"(?:the )?)$")


def _whole_words(pattern: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + pattern + r")(?!\w)")


def _at_every_start(pattern: str) -> re.Pattern[str]:
    """The pattern as a lookahead, so that matches may overlap ("there is no" and "no suggestion of"); group 1 is
    the match. The longest of the overlapping ones wins in _longest_first."""
    return re.compile(r"(?=((?<!\w)(?:" + pattern + r")(?!\w)))")


@dataclass(frozen=True)
class _Compiled:
    """The vocabulary's patterns compiled, each list in its table's order."""

    terms: tuple[tuple[re.Pattern[str], int], ...]  # each with its index in TERMS
    triggers: tuple[tuple[re.Pattern[str], int], ...]  # one per phrase, with its trigger's index in TRIGGERS
    severity: re.Pattern[str]
    sides: tuple[tuple[re.Pattern[str], str], ...]
    anchors: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]


@cache
def _compiled() -> _Compiled:
    """The vocabulary compiled once."""
    severity_word = "|".join(sorted(SEVERITIES, key=len, reverse=True))
    return _Compiled(
        terms=tuple((_at_every_start(term.pattern), index) for index, term in enumerate(TERMS)),
        triggers=tuple((_at_every_start(phrase), index) for index, trigger in enumerate(TRIGGERS)
                       for phrase in trigger.phrases),
        severity=_whole_words(f"(?P<first>{severity_word})(?:(?: to |-to-|-|/)(?P<second>{severity_word}))?"),
        sides=tuple((_whole_words(pattern), side) for pattern, side in SIDES.items()),
        anchors=tuple((re.compile(pattern), codes) for pattern, codes in NORMAL_ANCHORS.items()),
    )


def _normalized(sentence: str) -> str:
    return " ".join(sentence.lower().split())


def _longest_first(found: Iterable[_Found]) -> list[_Found]:
    """The matches that no longer (or equally long, earlier listed) match overlaps, in sentence order."""
    kept: list[_Found] = []
    for match in sorted(found, key=lambda m: (m.start - m.end, m.rank, m.start)):
        if all(match.end <= k.start or match.start >= k.end for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)


def _find(patterns: Sequence[tuple[re.Pattern[str], int]], sentence: str) -> list[_Found]:
    """What the patterns find in the sentence, longest first without overlaps; rank: the pattern's table index."""
    return _longest_first(
        _Found(match.start(1), match.end(1), rank)
        for pattern, rank in patterns
        for match in pattern.finditer(sentence)
        if match.end(1) > match.start(1)
    )


def _ends_scope(trigger: Trigger, other: Trigger) -> bool:
    """Whether `other`, met inside `trigger`'s scope, ends it: a terminating word, or a trigger that contradicts
    it ("possible ... no ...", "no ... stable ..."), but not one that agrees with it."""
    if other.modifier == Modifier.TERMINATE:
        return True
    if other.modifier in (trigger.modifier, Modifier.PSEUDO):
        return False
    mine, theirs = trigger.modifier in STATUS_MODIFIERS, other.modifier in STATUS_MODIFIERS
    if mine and theirs:
        return True
    if trigger.modifier == Modifier.NEGATED:  # a word that asserts a change asserts presence
        return other.modifier != Modifier.RESOLVED
    if not mine:
        return not theirs or other.modifier == Modifier.NEGATED
    return False


def _reaches(index: int, target: _Found, triggers: Sequence[_Found], targets: Sequence[_Found]) -> int | None:
    """How far trigger `index` is from the target when its scope reaches it, else None."""
    found = triggers[index]
    trigger = TRIGGERS[found.rank]
    if found.end <= target.start and trigger.direction != Direction.BACKWARD:
        between = [t for t in triggers[index + 1:] if t.end <= target.start]
        distance = target.start - found.end
    elif found.start >= target.end and trigger.direction != Direction.FORWARD:
        if trigger.direction == Direction.EITHER and any(
                _reaches(index, later, triggers, ()) is not None for later in targets if later.start >= found.end):
            return None
        if trigger.direction == Direction.BOTH and any(target.end <= t.start and t.end <= found.start for t in targets):
            return None
        between = [t for t in triggers[:index] if t.start >= target.end]
        distance = found.start - target.end
    else:
        return None
    return None if any(_ends_scope(trigger, TRIGGERS[other.rank]) for other in between) else distance


def _nearest(target: _Found, triggers: Sequence[_Found], targets: Sequence[_Found],
             status_layer: bool) -> Modifier | None:
    """The modifier of the nearest trigger of one layer (status, or change) whose scope reaches the target."""
    best: tuple[int, Modifier] | None = None
    for index, found in enumerate(triggers):
        modifier = TRIGGERS[found.rank].modifier
        if modifier in _NOT_MODIFYING or (modifier in STATUS_MODIFIERS) != status_layer:
            continue
        distance = _reaches(index, target, triggers, targets)
        if distance is not None and (best is None or distance < best[0]):
            best = (distance, modifier)
    return None if best is None else best[1]


def _owner(start: int, end: int, targets: Sequence[_Found], sentence: str, before: int, after: int,
           device_side: bool = False, place: bool = False) -> int | None:
    """The index of the target a modifier word at [start, end) belongs to: the one it lies in, else (with `place`)
    the one it follows as a place ("opacity at the left base"), else the one it closely precedes (at most `before`
    words between, no comma), else the one it follows (at most `after` words)."""
    for index, target in enumerate(targets):
        if target.start <= start and end <= target.end:
            return index
    preceding = next((i for i in reversed(range(len(targets))) if targets[i].end <= start), None)
    if place and preceding is not None and _LOCATION_AFTER.match(sentence[targets[preceding].end:start]):
        return preceding
    following = next((i for i, t in enumerate(targets) if t.start >= end), None)
    if following is not None:
        gap = sentence[end:targets[following].start]
        if "," not in gap and len(_WORD.findall(gap)) <= before:
            return following
    if preceding is not None:
        gap = sentence[targets[preceding].end:start]
        if len(_WORD.findall(gap)) <= after and (not device_side or _DEVICE_SIDE_AFTER.match(gap)):
            return preceding
    return None


def _carina_mm(match: re.Match[str]) -> float:
    """A CARINA_DISTANCE match in millimetres, positive above the carina; the middle of a range."""
    if match.group("at"):
        return 0.0
    low, high = match.group("low"), match.group("high")
    distance = _number(low) if high is None else (_number(low) + _number(high)) / 2
    millimetres = distance * (1 if match.group("unit").startswith("m") else 10)
    return round(millimetres if match.group("relation") in ABOVE_RELATIONS else -millimetres, 1)


def _number(text: str) -> float:
    return NUMBER_WORDS[text] if text in NUMBER_WORDS else float(text)


def _sides(sentence: str, targets: Sequence[_Found]) -> dict[int, set[str]]:
    """The side words of the sentence by the target they belong to: a finding takes those close before or after
    it; a device only those close before it or "on the left" after it."""
    sides: dict[int, set[str]] = {}
    for pattern, side in _compiled().sides:
        for match in pattern.finditer(sentence):
            owner = _owner(match.start(), match.end(), targets, sentence, before=3, after=6, place=True)
            if owner is None or TERMS[targets[owner].rank].device is not None:
                owner = _owner(match.start(), match.end(), targets, sentence, before=3, after=3, device_side=True)
                if owner is None or TERMS[targets[owner].rank].device is None:
                    continue
            sides.setdefault(owner, set()).add(side)
    return sides


def _severities(sentence: str, targets: Sequence[_Found]) -> dict[int, str]:
    """The first severity ("small", "mild to moderate") close to each target, by target."""
    severities: dict[int, str] = {}
    for match in _compiled().severity.finditer(sentence):
        owner = _owner(match.start(), match.end(), targets, sentence, before=3, after=4)
        if owner is not None and owner not in severities:
            words = [SEVERITIES[w] for w in (match.group("first"), match.group("second")) if w is not None]
            severities[owner] = " to ".join(dict.fromkeys(words))
    return severities


def _tip_distances(sentence: str, targets: Sequence[_Found]) -> dict[int, float]:
    """Carina distances (mm, positive above) by the device target they follow (else precede); -1: no device."""
    distances: dict[int, float] = {}
    for match in CARINA_DISTANCE.finditer(sentence):
        devices = [i for i, t in enumerate(targets) if TERMS[t.rank].device]
        before = [i for i in devices if targets[i].end <= match.start()]
        after = [i for i in devices if targets[i].start >= match.end()]
        distances.setdefault(before[-1] if before else after[0] if after else -1, _carina_mm(match))
    return distances


def _status(term: Term, target: _Found, triggers: Sequence[_Found],
            targets: Sequence[_Found]) -> tuple[MentionStatus | None, Change | None]:
    """A mention's status (None: hypothetical, so no statement) and change, from the term and the triggers."""
    implied = term.implied
    status_modifier = implied if implied in STATUS_MODIFIERS else _nearest(target, triggers, targets, True)
    change_modifier = implied if implied == Modifier.RESOLVED else _nearest(target, triggers, targets, False)
    change = _CHANGES.get(change_modifier) if change_modifier else None
    if status_modifier == Modifier.HYPOTHETICAL:
        return None, change
    if status_modifier == Modifier.UNCERTAIN:
        return MentionStatus.UNCERTAIN, change
    if status_modifier == Modifier.NEGATED or change == Change.RESOLVED:
        return MentionStatus.ABSENT, change
    return MentionStatus.PRESENT, change


def _sentence_mentions(sentence: str, previous_device: DeviceType | None) -> list[_Mention]:
    """The mentions in one normalized sentence; `previous_device`: the last device an earlier sentence named, which
    a tip distance in this sentence belongs to when the sentence names none."""
    compiled = _compiled()
    targets = _find(compiled.terms, sentence)
    triggers = [t for t in _find(compiled.triggers, sentence)
                if all(t.end <= x.start or t.start >= x.end for x in targets)]
    sides, severities = _sides(sentence, targets), _severities(sentence, targets)
    distances = _tip_distances(sentence, targets)
    mentions: list[_Mention] = []
    for index, target in enumerate(targets):
        term = TERMS[target.rank]
        codes = _anchored_codes(sentence[target.start:target.end], compiled.anchors) if term.anchored else term.codes
        if not codes and term.device is None:
            continue  # a blocking term
        status, change = _status(term, target, triggers, targets)
        if status is None:
            continue
        mentions.append(_Mention(
            codes=codes,
            device=term.device,
            status=status,
            sides=frozenset() if term.device in _UNSIDED_DEVICES else frozenset(sides.get(index, ())),
            severity=severities.get(index) if term.device is None else None,
            change=change,
            mm_above_carina=distances.get(index) if term.device == DeviceType.ETT else None,
        ))
    if -1 in distances and previous_device == DeviceType.ETT:  # "ETT in place. Its tip is 4 cm above the carina."
        mentions.append(_Mention((), DeviceType.ETT, MentionStatus.PRESENT, frozenset(), None, None, distances[-1]))
    return mentions


def _anchored_codes(text: str, anchors: Iterable[tuple[re.Pattern[str], tuple[str, ...]]]) -> tuple[str, ...]:
    """The labels of the organs a normality statement names, in labels.json order."""
    named = {code for pattern, codes in anchors if pattern.search(text) for code in codes}
    return tuple(code for code in FINDING_CODES if code in named)


def _laterality(sides: Iterable[str]) -> Laterality | None:
    found = set(sides)
    if "bilateral" in found or {"left", "right"} <= found:
        return Laterality.BILATERAL
    return Laterality(found.pop()) if found else None


def _merged(mentions: Sequence[_Mention]) -> tuple[MentionStatus, list[_Mention]]:
    """The status the mentions decide (present > uncertain > absent) and the mentions that decided it."""
    status = min((m.status for m in mentions), key=_ORDER.__getitem__)
    return status, [m for m in mentions if m.status == status]


def label_report(report: str) -> ReportLabels:
    """The findings and devices a free-text chest radiograph report mentions, with status, side, severity, change
    and (for an ETT) the tip's distance above the carina in millimetres."""
    mentions: list[_Mention] = []
    no_acute_disease = False
    previous_device: DeviceType | None = None
    for _, raw in describing_sentences(report):
        sentence = _normalized(raw)
        no_acute_disease = no_acute_disease or NO_ACUTE_DISEASE.search(sentence) is not None
        found = _sentence_mentions(sentence, previous_device)
        mentions += found
        previous_device = next((m.device for m in reversed(found) if m.device is not None), previous_device)

    findings = []
    for code in FINDING_CODES:
        of_code = [m for m in mentions if code in m.codes]
        if not of_code:
            continue
        status, deciding = _merged(of_code)
        findings.append(LabeledFinding(
            code=code,
            status=status,
            laterality=_laterality(side for m in deciding for side in m.sides),
            severity=next((m.severity for m in deciding if m.severity), None),
            change=next((m.change for m in deciding if m.change), None),
        ))
    devices = []
    for kind in DeviceType:
        of_kind = [m for m in mentions if m.device == kind]
        if not of_kind:
            continue
        status, deciding = _merged(of_kind)
        devices.append(LabeledDevice(
            kind=kind,
            status=status,
            laterality=_laterality(side for m in deciding for side in m.sides),
            mm_above_carina=next((m.mm_above_carina for m in of_kind if m.mm_above_carina is not None), None),
        ))
    return ReportLabels(tuple(findings), tuple(devices), no_acute_disease)


def keyword_codes(report: str) -> frozenset[str]:
    """The labels any term names in the describing sections, context ignored (statements of normality aside): the
    no-negation keyword baseline the report-labeler benchmark compares against."""
    codes: set[str] = set()
    for _, raw in describing_sentences(report):
        for target in _find(_compiled().terms, _normalized(raw)):
            term = TERMS[target.rank]
            if term.implied != Modifier.NEGATED:
                codes.update(term.codes)
    return frozenset(codes)
