"""FHIR R4 search over the stored resources: the parameters integration engines use, _include, and keyset paging.

Supported (and only these; the CapabilityStatement lists the same):
- DiagnosticReport, Observation, ImagingStudy, Device: `_id`, `_lastUpdated`, `identifier`, `status`, `patient`
  (Patient/<id>, a bare id, `patient:identifier=system|value`, `patient.identifier=system|value`; `subject` is the
  same parameter under its other name); DiagnosticReport, Observation, ImagingStudy also `date`;
  DiagnosticReport and Observation also `code`. Date prefixes eq ne lt le gt ge sa eb ap, at the value's precision.
- AuditEvent: `_id`, `_lastUpdated`, `date` (recorded), `patient` (an entity naming the patient, by reference or
  `patient:identifier`), `type`, `subtype`, `action`, `outcome`, and `entity:identifier` (a study by its
  urn:dicom:uid identifier).
- `_include` of the values in INCLUDES (and `_include=*`: all of the searched type's), `_count`,
  `_sort=_lastUpdated|-_lastUpdated` (default: storage order), `_total=accurate|estimate|none`, `_summary=count`.
Comma-separated values are alternatives (OR); a repeated parameter narrows (AND).
Pages are keyset cursors over (lastUpdated, seq) or seq, so a page never repeats or skips a resource that
was already there when new ones are stored.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from hilum.fhir_api.dates import BadDate, fhir_range
from hilum.fhir_api.store import AUDIT_TOKENS, split_escaped
from hilum.fhir_api.tables import FhirResourceRow, FhirTokenRow

SEARCHABLE_TYPES = ("DiagnosticReport", "Observation", "ImagingStudy", "Device", "AuditEvent")
DATED_TYPES = frozenset({"DiagnosticReport", "Observation", "ImagingStudy", "AuditEvent"})
CODED_TYPES = frozenset({"DiagnosticReport", "Observation"})
DATE_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap")
SORTS = ("_lastUpdated", "-_lastUpdated")
# _include values per searched type: search parameter → (element holding the reference(s), target type or None).
INCLUDES: dict[str, dict[str, tuple[str, str | None]]] = {
    "DiagnosticReport": {"result": ("result", "Observation"), "imaging-study": ("imagingStudy", "ImagingStudy"),
                         "subject": ("subject", "Patient"), "patient": ("subject", "Patient")},
    "Observation": {"device": ("device", "Device"), "derived-from": ("derivedFrom", None),
                    "subject": ("subject", "Patient"), "patient": ("subject", "Patient")},
    "ImagingStudy": {"subject": ("subject", "Patient"), "patient": ("subject", "Patient")},
    "Device": {"patient": ("patient", "Patient")},
    "AuditEvent": {},
}
# Parameters that shape the result rather than filter it; `_format` and `_pretty` are accepted and ignored.
RESULT_PARAMETERS = frozenset({"_count", "_sort", "_include", "_total", "_summary", "_format", "_pretty", "_cursor"})

R = FhirResourceRow


class SearchError(ValueError):
    """A search the server refuses (400 with an OperationOutcome); the message never repeats a value."""


@dataclass(frozen=True)
class Hit:
    """A resource in a search result, as served (JSON text)."""

    resource_type: str
    resource_id: str
    text: str


@dataclass(frozen=True)
class SearchResult:
    """One page: the matches, the resources _include added, the cursors of the neighbouring pages, the total
    when it was cheap or asked for, and the parameters (normalised, without _cursor) the page links repeat."""

    matches: list[Hit]
    includes: list[Hit]
    total: int | None
    next_cursor: str | None
    previous_cursor: str | None
    query: list[tuple[str, str]]
    count: int
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Page:
    sort: str
    key: tuple[int, int]  # (last_updated_us, seq) of the row the page starts after / ends before
    forward: bool


def encode_cursor(sort: str, key: tuple[int, int], forward: bool) -> str:
    """An opaque cursor naming where a page starts: after `key` (forward) or before it, in `sort` order."""
    raw = json.dumps({"s": sort, "k": list(key), "f": forward}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> _Page:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        key = (int(data["k"][0]), int(data["k"][1]))
        return _Page(sort=str(data["s"]), key=key, forward=bool(data["f"]))
    except (ValueError, TypeError, KeyError, IndexError, binascii.Error):
        raise SearchError("_cursor is not a cursor this server issued") from None


def _values(text: str) -> list[str]:
    return [value for value in split_escaped(text, ",") if value != ""]


def _token_condition(param: str, values: list[str]) -> ColumnElement[bool]:
    """Resources with a token of `param` matching any value: system|code, |code (no system), or code (any)."""
    matches = []
    for value in values:
        parts = split_escaped(value, "|") if "|" in value else [value]
        if len(parts) == 1:
            matches.append(FhirTokenRow.value == parts[0])
        elif len(parts) == 2 and parts[1]:
            matches.append(and_(FhirTokenRow.system == parts[0], FhirTokenRow.value == parts[1]))
        elif len(parts) == 2:
            matches.append(FhirTokenRow.system == parts[0])
        else:
            raise SearchError(f"a {param} value is not a token (system|code)")
    seqs = select(FhirTokenRow.resource_seq).where(FhirTokenRow.param == param, or_(*matches))
    return R.seq.in_(seqs)


def _range_condition(low: Any, high: Any, value: str, now_us: int, name: str) -> ColumnElement[bool]:
    """FHIR date comparison of a resource range [low, high) with the value's range, by the value's prefix."""
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in DATE_PREFIXES else value
    try:
        start, end = fhir_range(text)
    except BadDate:
        raise SearchError(f"a {name} value is not a FHIR date") from None
    inside = and_(low >= start, high <= end)
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": inside, "ne": not_(inside), "gt": high > end, "lt": low < start,
        "ge": or_(high > end, inside), "le": or_(low < start, inside), "sa": low >= end, "eb": high <= start,
    }
    if prefix == "ap":  # within 10% of the distance from now, and at least the value's own range
        slack = abs(now_us - start) // 10
        return and_(low < end + slack, high > start - slack)
    return conditions[prefix]


def _patient_refs(values: list[str]) -> list[str]:
    """"Patient/<id>" for each value: a bare id, Patient/<id>, or an absolute URL ending in Patient/<id>."""
    refs = []
    for value in values:
        parts = value.rstrip("/").split("/")
        if len(parts) == 1:
            refs.append(f"Patient/{parts[0]}")
        elif parts[-2] == "Patient":
            refs.append(f"Patient/{parts[-1]}")
        else:
            refs.append("")  # names something other than a Patient: matches nothing stored
    return refs


def _condition(resource_type: str, name: str, value: str, now_us: int) -> ColumnElement[bool] | None:
    """The filter of one parameter occurrence, or None when the parameter is not supported for the type."""
    base, _, chain = name.partition(".")
    base, _, modifier = base.partition(":")
    values = _values(value)
    if not values:
        raise SearchError(f"parameter {name} has no value")
    if base in ("patient", "subject"):
        if chain == "identifier" and modifier in ("", "Patient") or not chain and modifier == "identifier":
            return _token_condition("patient-identifier", values)
        if not chain and modifier in ("", "Patient"):
            return R.patient_ref.in_(_patient_refs(values))
        return None
    if resource_type == "AuditEvent" and base == "entity" and modifier == "identifier" and not chain:
        return _token_condition("entity-identifier", values)
    if modifier or chain:
        return None
    if resource_type == "AuditEvent" and base in AUDIT_TOKENS:
        return _token_condition(base, values)
    if base == "_id":
        return R.resource_id.in_(values)
    if base == "status":
        return R.status.in_(values)
    if base == "identifier":
        return _token_condition("identifier", values)
    if base == "code" and resource_type in CODED_TYPES:
        return _token_condition("code", values)
    if base == "date" and resource_type in DATED_TYPES:
        return and_(R.date_low_us.is_not(None),
                    or_(*(_range_condition(R.date_low_us, R.date_high_us, v, now_us, name) for v in values)))
    if base == "_lastUpdated":
        return or_(*(_range_condition(R.last_updated_us, R.last_updated_us + 1, v, now_us, name) for v in values))
    return None


def _includes(resource_type: str, values: list[str]) -> list[tuple[str, str | None]]:
    """The (element, target type) pairs of the _include values; SearchError for one not supported."""
    supported = INCLUDES.get(resource_type, {})
    chosen: list[tuple[str, str | None]] = []
    for value in values:
        if value == "*":
            chosen += supported.values()
            continue
        parts = value.split(":")
        if len(parts) not in (2, 3) or parts[0] != resource_type or parts[1] not in supported:
            raise SearchError(f"_include={value} is not supported (see the CapabilityStatement)")
        element, target = supported[parts[1]]
        if len(parts) == 3:
            if target is not None and parts[2] != target:
                raise SearchError(f"_include={value} names a target type the parameter does not reach")
            target = parts[2]
        chosen.append((element, target))
    return list(dict.fromkeys(chosen))


def _count(values: list[str], default: int, maximum: int) -> int:
    if not values:
        return min(default, maximum)
    try:
        count = int(values[-1])
    except ValueError:
        raise SearchError("_count is not a number") from None
    if count < 0:
        raise SearchError("_count is negative")
    return min(count, maximum)


def _included(session: Session, matches: list[Hit], includes: list[tuple[str, str | None]]) -> list[Hit]:
    """The current resources the matches reference through the chosen elements, once each, matches left out."""
    wanted: dict[str, list[str]] = {}
    for hit in matches:
        resource = json.loads(hit.text)
        for element, target in includes:
            value = resource.get(element)
            for ref in value if isinstance(value, list) else [value]:
                reference = ref.get("reference") if isinstance(ref, dict) else None
                if not isinstance(reference, str) or reference.count("/") != 1:
                    continue
                ref_type, ref_id = reference.split("/")
                if target is None or ref_type == target:
                    wanted.setdefault(ref_type, []).append(ref_id)
    seen = {(hit.resource_type, hit.resource_id) for hit in matches}
    found: list[Hit] = []
    for ref_type, ids in wanted.items():
        unique = [i for i in dict.fromkeys(ids) if (ref_type, i) not in seen]
        for start in range(0, len(unique), 500):
            rows = session.execute(select(R.resource_id, R.resource).where(
                R.resource_type == ref_type, R.resource_id.in_(unique[start:start + 500]), R.deleted.is_(False)))
            found += [Hit(ref_type, row.resource_id, row.resource) for row in rows]
    return found


def search(session: Session, resource_type: str, params: Sequence[tuple[str, str]], *, default_count: int,
           max_count: int, now_us: int, lenient: bool = False) -> SearchResult:
    """One page of the search `params` (name, value pairs as sent) over `resource_type`.

    Raises SearchError for an unsupported type, parameter, modifier or value (with `lenient`, an unknown
    parameter is ignored instead, and listed in `ignored`)."""
    if resource_type not in SEARCHABLE_TYPES:
        raise SearchError(f"search is not supported for {resource_type}")
    conditions: list[ColumnElement[bool]] = [R.resource_type == resource_type, R.deleted.is_(False)]
    query: list[tuple[str, str]] = []
    ignored: list[str] = []
    shaping: dict[str, list[str]] = {}
    for name, value in params:
        if name in RESULT_PARAMETERS:
            shaping.setdefault(name, []).append(value)
            if name != "_cursor":
                query.append((name, value))
            continue
        condition = _condition(resource_type, name, value, now_us)
        if condition is None:
            if not lenient:
                raise SearchError(f"unknown or unsupported search parameter for {resource_type}: {name}")
            ignored.append(name)
            continue
        conditions.append(condition)
        query.append((name, value))
    count = _count(shaping.get("_count", []), default_count, max_count)
    sort = shaping.get("_sort", [""])[-1]
    if sort and sort not in SORTS:
        raise SearchError("_sort supports _lastUpdated and -_lastUpdated only")
    includes = _includes(resource_type, [v for value in shaping.get("_include", []) for v in _values(value)])
    total_mode = shaping.get("_total", ["none"])[-1]
    if total_mode not in ("none", "estimate", "accurate"):
        raise SearchError("_total must be none, estimate or accurate")
    summary = shaping.get("_summary", [""])[-1]
    if summary not in ("", "false", "count"):
        raise SearchError("_summary supports count only")
    if summary == "count" or count == 0:
        counted = session.scalar(select(func.count()).select_from(R).where(*conditions)) or 0
        return SearchResult([], [], counted, None, None, query, count, ignored)

    page = _decode_cursor(shaping["_cursor"][-1]) if "_cursor" in shaping else None
    if page is not None and page.sort != sort:
        raise SearchError("_cursor belongs to a search with another _sort")
    descending = sort == "-_lastUpdated"
    keys = [R.last_updated_us, R.seq] if sort else [R.seq]
    forward = page is None or page.forward
    if page is not None:
        after = forward != descending  # rows after the key in scan order
        if sort:
            lu, seq = page.key
            beyond = or_(R.last_updated_us > lu, and_(R.last_updated_us == lu, R.seq > seq)) if after else or_(
                R.last_updated_us < lu, and_(R.last_updated_us == lu, R.seq < seq))
        else:
            beyond = R.seq > page.key[1] if after else R.seq < page.key[1]
        conditions.append(beyond)
    scan_descending = descending == forward
    order = [key.desc() if scan_descending else key.asc() for key in keys]
    rows = list(session.execute(select(R.resource_id, R.resource, R.last_updated_us, R.seq)
                                .where(*conditions).order_by(*order).limit(count + 1)))
    more = len(rows) > count
    rows = rows[:count]
    if not forward:
        rows.reverse()
    matches = [Hit(resource_type, row.resource_id, row.resource) for row in rows]
    next_cursor = previous_cursor = None
    if rows:
        first, last = (rows[0].last_updated_us, rows[0].seq), (rows[-1].last_updated_us, rows[-1].seq)
        if more or not forward:
            next_cursor = encode_cursor(sort, last, True)
        if page is not None and (more or forward):
            previous_cursor = encode_cursor(sort, first, False)
    total: int | None = None
    if page is None and not more:
        total = len(rows)
    elif total_mode == "accurate":
        total = session.scalar(select(func.count()).select_from(R).where(
            *(c for c in conditions[: len(conditions) - (1 if page is not None else 0)]))) or 0
    return SearchResult(matches, _included(session, matches, includes) if includes else [], total, next_cursor,
                        previous_cursor, query, count, ignored)

