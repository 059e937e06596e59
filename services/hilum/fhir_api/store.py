"""The versioned FHIR resource store behind the read API: every version kept, a current row per resource with
its search columns and tokens, and deletion as a tombstone version.

Reporting calls store_bundle inside its publish transaction, so a report and its stored resources commit
together. A resource stored again unchanged makes no new version; a changed one makes version n+1.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, cast
from urllib.parse import parse_qsl

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session

from hilum.common.fhir.audit_event import audited_patients
from hilum.fhir_api.dates import FAR_FUTURE_US, BadDate, fhir_range, instant_text, to_us
from hilum.fhir_api.tables import FhirResourceRow, FhirResourceVersionRow, FhirTokenRow

Json = dict[str, Any]

# The element naming each searchable type's patient, and the element holding its date.
PATIENT_ELEMENT = {"DiagnosticReport": "subject", "Observation": "subject", "ImagingStudy": "subject",
                   "Device": "patient"}
CODED_TYPES = frozenset({"DiagnosticReport", "Observation"})
# AuditEvent's coded elements searched as tokens (search parameter → element); its patient is an entity's `what`.
AUDIT_TOKENS = {"type": "type", "subtype": "subtype", "action": "action", "outcome": "outcome"}
ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")
TYPE_PATTERN = re.compile(r"[A-Z][A-Za-z]{1,63}")
TOKEN_MAX = 256


class StoreOutcome(StrEnum):
    """What storing did to a resource."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


@dataclass(frozen=True)
class StoredRef:
    """A stored resource's type, id and current version, and what storing it did."""

    resource_type: str
    resource_id: str
    version_id: int
    outcome: StoreOutcome

    @property
    def reference(self) -> str:
        """"<Type>/<id>"."""
        return f"{self.resource_type}/{self.resource_id}"


@dataclass(frozen=True)
class StoredVersion:
    """One version as served: `text` is its JSON (meta.versionId and meta.lastUpdated set); '' when deleted."""

    resource_type: str
    resource_id: str
    version_id: int
    last_updated_us: int
    deleted: bool
    text: str


@dataclass(frozen=True)
class Token:
    """A token value a resource is searchable by ("code", "identifier" or "patient-identifier")."""

    param: str
    system: str
    value: str


@dataclass(frozen=True)
class SearchTerms:
    """What search matches a resource on: its patient, status, date range and tokens."""

    patient_ref: str = ""
    status: str = ""
    date_low_us: int | None = None
    date_high_us: int | None = None
    tokens: tuple[Token, ...] = field(default_factory=tuple)


class InvalidResource(ValueError):
    """A resource or bundle entry the store cannot keep (no type, a malformed id)."""


def _identifier_tokens(param: str, identifiers: Any) -> list[Token]:
    tokens = []
    for identifier in identifiers if isinstance(identifiers, list) else [identifiers]:
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            system = identifier.get("system")
            tokens.append(Token(param, system if isinstance(system, str) else "", identifier["value"]))
    return tokens


def _date_range(resource: Json) -> tuple[int | None, int | None]:
    """The resource's search date: effective[x] (dateTime, instant or Period) or ImagingStudy.started."""
    try:
        for name in ("effectiveDateTime", "effectiveInstant", "started", "recorded"):
            if isinstance(resource.get(name), str):
                return fhir_range(resource[name])
        period = resource.get("effectivePeriod")
        if isinstance(period, dict) and (period.get("start") or period.get("end")):
            low = fhir_range(period["start"])[0] if period.get("start") else 0
            high = fhir_range(period["end"])[1] if period.get("end") else FAR_FUTURE_US
            return low, high
    except BadDate:
        pass
    return None, None


def _audit_tokens(event: Json) -> list[Token]:
    """An AuditEvent's type, subtype, action and outcome, and the identifiers of what its entities name."""
    tokens = []
    for param, element in AUDIT_TOKENS.items():
        value = event.get(element)
        for coding in value if isinstance(value, list) else [value]:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                tokens.append(Token(param, coding.get("system") or "", coding["code"]))
            elif isinstance(coding, str):
                tokens.append(Token(param, "", coding))
    for entity in event.get("entity", []):
        what = entity.get("what") if isinstance(entity, dict) else None
        if isinstance(what, dict) and what.get("type") != "Patient" and "identifier" in what:
            tokens += _identifier_tokens("entity-identifier", what["identifier"])
    return tokens


def patient_references(resource: Json) -> list[Any]:
    """The element(s) naming the patient a resource belongs to: its subject or patient, or an AuditEvent's patient
    entities (each a Reference, or whatever the resource holds there)."""
    if resource.get("resourceType") == "AuditEvent":
        return list(audited_patients(resource))
    return [resource.get(PATIENT_ELEMENT.get(str(resource.get("resourceType", "")), ""))]


def search_terms(resource: Json, patient_identifiers: list[Token] | None = None) -> SearchTerms:
    """The search columns of a resource whose references are already final ("Type/id" or identifier-only).

    `patient_identifiers` are the identifiers of the stored Patient its subject names, if any."""
    resource_type = resource.get("resourceType", "")
    tokens = _identifier_tokens("identifier", resource.get("identifier", []))
    if resource_type in CODED_TYPES and isinstance(resource.get("code"), dict):
        for coding in resource["code"].get("coding", []):
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                tokens.append(Token("code", coding.get("system") or "", coding["code"]))
    patient_ref = ""
    if resource_type == "AuditEvent":
        tokens += _audit_tokens(resource)
    for subject in patient_references(resource):
        if not isinstance(subject, dict):
            continue
        reference = subject.get("reference")
        if not patient_ref and isinstance(reference, str) and reference.startswith("Patient/"):
            patient_ref = reference
        if subject.get("type", "Patient") == "Patient" and "identifier" in subject:
            tokens += _identifier_tokens("patient-identifier", subject["identifier"])
    tokens += [Token("patient-identifier", token.system, token.value) for token in patient_identifiers or []]
    low, high = _date_range(resource)
    status = resource.get("status") if isinstance(resource.get("status"), str) else ""
    unique = tuple(dict.fromkeys(t for t in tokens if len(t.system) <= TOKEN_MAX and len(t.value) <= TOKEN_MAX))
    return SearchTerms(patient_ref=patient_ref, status=str(status)[:32], date_low_us=low, date_high_us=high,
                       tokens=unique)


def _content(resource: Json) -> str:
    """The resource as canonical JSON without meta.versionId and meta.lastUpdated: equal means unchanged."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    body = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        body["meta"] = meta
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _served(resource: Json, version_id: int, last_updated_us: int) -> str:
    meta = {**(resource.get("meta") or {}), "versionId": str(version_id), "lastUpdated": instant_text(last_updated_us)}
    return json.dumps({**resource, "meta": meta}, separators=(",", ":"), ensure_ascii=False)


def _current(session: Session, resource_type: str, resource_id: str) -> FhirResourceRow | None:
    return session.scalars(select(FhirResourceRow).where(
        FhirResourceRow.resource_type == resource_type, FhirResourceRow.resource_id == resource_id)).one_or_none()


def _patient_identifiers(session: Session, patient_ref: str) -> list[Token]:
    """The identifiers of the stored (not deleted) Patient named by "Patient/<id>"."""
    patient = _current(session, "Patient", patient_ref.removeprefix("Patient/"))
    if patient is None or patient.deleted:
        return []
    rows = session.scalars(select(FhirTokenRow).where(FhirTokenRow.resource_seq == patient.seq,
                                                      FhirTokenRow.param == "identifier"))
    return [Token("patient-identifier", row.system, row.value) for row in rows]


def store_resource(session: Session, resource: Json, now: datetime) -> StoredRef:
    """Store one resource (it must carry resourceType and id; references are kept as they are).

    Unchanged content makes no new version; a changed, new or previously deleted one gets the next version."""
    key = _type_and_id(resource)
    stored, _ = _store(session, resource, key, now, _current(session, *key),
                       functools.partial(_patient_identifiers, session))
    return stored


def stored_status(session: Session, resource_type: str, resource_id: str) -> str | None:
    """The `status` of the resource's current version ("" when it has none), or None when it is not stored or
    deleted."""
    stored = read_current(session, resource_type, resource_id)
    if stored is None or stored.deleted:
        return None
    status = json.loads(stored.text).get("status")
    return status if isinstance(status, str) else ""


def set_status(session: Session, resource_type: str, resource_id: str, status: str, now: datetime) -> bool:
    """Store a new version of a stored resource with `status`, the rest unchanged (none when it already has it);
    False when the resource is not stored or deleted."""
    stored = read_current(session, resource_type, resource_id)
    if stored is None or stored.deleted:
        return False
    store_resource(session, {**json.loads(stored.text), "status": status}, now)
    return True


def _type_and_id(resource: Json) -> tuple[str, str]:
    """The resource's type and id; raises InvalidResource unless both are valid."""
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    if not isinstance(resource_type, str) or not TYPE_PATTERN.fullmatch(resource_type):
        raise InvalidResource("a resource without a valid resourceType")
    if not isinstance(resource_id, str) or not ID_PATTERN.fullmatch(resource_id):
        raise InvalidResource(f"a {resource_type} without a valid id")
    return resource_type, resource_id


def _store(session: Session, resource: Json, key: tuple[str, str], now: datetime, row: FhirResourceRow | None,
           patient_identifiers: Callable[[str], list[Token]]) -> tuple[StoredRef, FhirResourceRow]:
    """store_resource, given the resource's checked (type, id), its current row (None: never stored) and a lookup of
    a Patient's identifiers; also returns the row now current."""
    resource_type, resource_id = key
    content = _content(resource)
    if row is not None and not row.deleted and _content(json.loads(row.resource)) == content:
        return StoredRef(resource_type, resource_id, row.version_id, StoreOutcome.UNCHANGED), row
    subject = resource.get(PATIENT_ELEMENT.get(resource_type, ""))
    reference = subject.get("reference") if isinstance(subject, dict) else None
    known = (patient_identifiers(reference)
             if isinstance(reference, str) and reference.startswith("Patient/") else [])
    terms = search_terms(resource, known)
    last_updated = to_us(now)
    version = 1 if row is None else row.version_id + 1
    if row is not None:
        last_updated = max(last_updated, row.last_updated_us + 1)  # versions of one resource stay in order
    text = _served(resource, version, last_updated)
    outcome = StoreOutcome.CREATED if row is None else StoreOutcome.UPDATED
    if row is None:
        row = FhirResourceRow(resource_type=resource_type, resource_id=resource_id)
        session.add(row)
    else:  # a new row has no search tokens yet
        session.execute(delete(FhirTokenRow).where(FhirTokenRow.resource_seq == row.seq))
    row.version_id, row.last_updated_us, row.deleted, row.resource = version, last_updated, False, text
    row.patient_ref, row.status = terms.patient_ref, terms.status
    row.date_low_us, row.date_high_us = terms.date_low_us, terms.date_high_us
    session.flush()  # assigns seq
    session.add_all(FhirTokenRow(resource_seq=row.seq, param=t.param, system=t.system, value=t.value)
                    for t in terms.tokens)
    session.add(FhirResourceVersionRow(resource_type=resource_type, resource_id=resource_id, version_id=version,
                                       last_updated_us=last_updated, deleted=False, resource=text))
    session.flush()
    return StoredRef(resource_type, resource_id, version, outcome), row


def store_new_resources(session: Session, resources: list[Json], now: datetime) -> None:
    """Store resources known to be new (fresh ids, e.g. uuid4: an AuditEvent), each as version 1, in three statements
    for the lot (plain inserts: no current row is looked for, and nothing references a stored Patient to index by).
    Raises InvalidResource, and the database's IntegrityError for an id already stored."""
    if not resources:
        return
    last_updated = to_us(now)
    rows: list[dict[str, Any]] = []
    terms: list[SearchTerms] = []
    for resource in resources:
        resource_type, resource_id = _type_and_id(resource)
        found = search_terms(resource)
        terms.append(found)
        rows.append({"resource_type": resource_type, "resource_id": resource_id, "version_id": 1,
                     "last_updated_us": last_updated, "deleted": False, "resource": _served(resource, 1, last_updated),
                     "patient_ref": found.patient_ref, "status": found.status, "date_low_us": found.date_low_us,
                     "date_high_us": found.date_high_us})
    connection = session.connection()
    current = cast(Table, FhirResourceRow.__table__)
    stored = connection.execute(insert(current).returning(current.c.seq, sort_by_parameter_order=True), rows)
    tokens = [{"resource_seq": seq, "param": t.param, "system": t.system, "value": t.value}
              for seq, found in zip(stored.scalars(), terms, strict=True) for t in found.tokens]
    if tokens:
        connection.execute(insert(cast(Table, FhirTokenRow.__table__)), tokens)
    connection.execute(insert(cast(Table, FhirResourceVersionRow.__table__)), [
        {key: row[key] for key in ("resource_type", "resource_id", "version_id", "last_updated_us", "deleted",
                                   "resource")} for row in rows])


def delete_resource(session: Session, resource_type: str, resource_id: str, now: datetime) -> StoredRef | None:
    """Delete a resource: a tombstone version (read answers 410 Gone); None when it was never stored.

    Deleting a deleted resource changes nothing."""
    row = _current(session, resource_type, resource_id)
    if row is None:
        return None
    if row.deleted:
        return StoredRef(resource_type, resource_id, row.version_id, StoreOutcome.UNCHANGED)
    version, last_updated = row.version_id + 1, max(to_us(now), row.last_updated_us + 1)
    row.version_id, row.last_updated_us, row.deleted, row.resource = version, last_updated, True, ""
    session.execute(delete(FhirTokenRow).where(FhirTokenRow.resource_seq == row.seq))
    session.add(FhirResourceVersionRow(resource_type=resource_type, resource_id=resource_id, version_id=version,
                                       last_updated_us=last_updated, deleted=True, resource=""))
    session.flush()
    return StoredRef(resource_type, resource_id, version, StoreOutcome.DELETED)


def read_current(session: Session, resource_type: str, resource_id: str) -> StoredVersion | None:
    """The current version (possibly a tombstone: check `deleted`), or None when never stored."""
    row = session.execute(select(FhirResourceRow.version_id, FhirResourceRow.last_updated_us,
                                 FhirResourceRow.deleted, FhirResourceRow.resource).where(
        FhirResourceRow.resource_type == resource_type, FhirResourceRow.resource_id == resource_id)).one_or_none()
    if row is None:
        return None
    return StoredVersion(resource_type, resource_id, row.version_id, row.last_updated_us, row.deleted, row.resource)


def read_version(session: Session, resource_type: str, resource_id: str, version_id: int) -> StoredVersion | None:
    """One version of a resource (a tombstone has deleted=True), or None when there is no such version."""
    row = session.get(FhirResourceVersionRow, (resource_type, resource_id, version_id))
    if row is None:
        return None
    return StoredVersion(resource_type, resource_id, version_id, row.last_updated_us, row.deleted, row.resource)


# --- transaction bundles -------------------------------------------------------------------------------------


def split_escaped(text: str, separator: str) -> list[str]:
    """Split a FHIR search value on `separator`, honouring backslash escapes, and unescape the parts."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _criteria_identifier(query: str) -> tuple[str, str] | None:
    """(system, value) of conditional criteria "identifier=<system>|<value>" (URL- and FHIR-escaped), else None."""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "identifier":
            parts = split_escaped(value, "|")
            if len(parts) == 2 and parts[1]:
                return parts[0], parts[1]
    return None


def _find_by_identifier(session: Session, resource_type: str, system: str, value: str) -> str | None:
    """The id of a stored, current resource of this type with this identifier, or None."""
    return session.scalars(
        select(FhirResourceRow.resource_id).join(FhirTokenRow, FhirTokenRow.resource_seq == FhirResourceRow.seq)
        .where(FhirResourceRow.resource_type == resource_type, FhirResourceRow.deleted.is_(False),
               FhirTokenRow.param == "identifier", FhirTokenRow.system == system, FhirTokenRow.value == value)
        .limit(1)).first()


def _walk_references(node: Any) -> Iterator[Json]:
    """Every Reference-like object (a dict with a string `reference`) inside a resource."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from _walk_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_references(item)


@dataclass
class _BundleIndex:
    """A bundle's entries: fullUrl → "Type/id", and (type, system, value) → "Type/id" of what it carries."""

    by_full_url: dict[str, str] = field(default_factory=dict)
    by_identifier: dict[tuple[str, str, str], str] = field(default_factory=dict)


# Finds the id of a stored, current resource by (type, identifier system, value); see _find_by_identifier.
FindStored = Callable[[str, str, str], str | None]


def _entry_id(find: FindStored, entry: Json, resource: Json, resource_type: str) -> str:
    """The id an entry is stored under: a PUT's id, the urn:uuid, the resource's own id, or an existing match."""
    request: Json = entry["request"] if isinstance(entry.get("request"), dict) else {}
    url, full_url = str(request.get("url", "")), str(entry.get("fullUrl", ""))
    criteria = request.get("ifNoneExist")
    if isinstance(criteria, str) and (match := _criteria_identifier(criteria)) is not None:
        existing = find(resource_type, *match)
        if existing is not None:
            return existing
    if request.get("method") == "PUT" and "?" not in url and url.count("/") == 1:
        return url.split("/")[1]
    if full_url.startswith("urn:uuid:"):
        return full_url.removeprefix("urn:uuid:")
    if isinstance(resource.get("id"), str):
        return str(resource["id"])
    return str(uuid.uuid4())


def _rewrite(find: FindStored, resource: Json, index: _BundleIndex) -> None:
    """Point every reference at a stored resource ("Type/id"); a reference to what is neither in the bundle nor
    stored keeps only its identifier (and type)."""
    for ref in _walk_references(resource):
        reference: str = ref["reference"]
        if reference in index.by_full_url:
            ref["reference"] = index.by_full_url[reference]
            continue
        target_type, _, query = reference.partition("?")
        if not query or not TYPE_PATTERN.fullmatch(target_type):
            if reference.startswith("urn:"):
                del ref["reference"]  # points at nothing the bundle carries
            continue
        match = _criteria_identifier(query)
        if match is None:
            del ref["reference"]
            continue
        found = index.by_identifier.get((target_type, *match))
        if found is None and (stored := find(target_type, *match)) is not None:
            found = f"{target_type}/{stored}"
        if found is not None:
            ref["reference"] = found
            continue
        del ref["reference"]
        ref.setdefault("type", target_type)
        ref.setdefault("identifier", {"system": match[0], "value": match[1]} if match[0] else {"value": match[1]})


def store_bundle(session: Session, bundle: Json, now: datetime) -> list[StoredRef]:
    """Store a transaction Bundle's resources under their urn:uuid ids, references rewritten to "Type/id".

    Conditional references ("Patient?identifier=s|v") resolve to a Patient the bundle carries or the store
    holds, else become identifier-only. Patients are stored first, so their identifiers index their reports.
    Returns one StoredRef per entry, in the bundle's order. Raises InvalidResource."""
    entries = bundle.get("entry")
    if bundle.get("resourceType") != "Bundle" or not isinstance(entries, list):
        raise InvalidResource("not a Bundle with entries")
    index = _BundleIndex()
    # Nothing is stored before every reference is rewritten, so one lookup per identifier serves the whole bundle
    # (every Observation names the same Patient, ImagingStudy and Device).
    find: FindStored = functools.cache(functools.partial(_find_by_identifier, session))
    resources: list[Json] = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise InvalidResource("a bundle entry without a resource")
        resource = json.loads(json.dumps(resource))  # a private copy to rewrite
        resource_type = resource["resourceType"]
        resource["id"] = _entry_id(find, entry, resource, resource_type)
        reference = f"{resource_type}/{resource['id']}"
        if isinstance(entry.get("fullUrl"), str):
            index.by_full_url[entry["fullUrl"]] = reference
        for token in _identifier_tokens("identifier", resource.get("identifier", [])):
            index.by_identifier[(resource_type, token.system, token.value)] = reference
        resources.append(resource)
    for resource in resources:
        _rewrite(find, resource, index)
    order = sorted(range(len(resources)), key=lambda i: resources[i]["resourceType"] != "Patient")
    keys = [_type_and_id(resource) for resource in resources]
    current = _current_rows(session, keys)
    # Asked after the bundle's Patients are stored (they come first), and once per Patient for the whole bundle.
    patient_identifiers = functools.cache(functools.partial(_patient_identifiers, session))
    stored: dict[int, StoredRef] = {}
    for i in order:
        key = keys[i]
        stored[i], current[key] = _store(session, resources[i], key, now, current.get(key), patient_identifiers)
    return [stored[i] for i in range(len(resources))]


def _current_rows(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], FhirResourceRow]:
    """The current rows of these (type, id) pairs that exist, in one query per resource type."""
    rows: dict[tuple[str, str], FhirResourceRow] = {}
    for resource_type in {resource_type for resource_type, _ in keys}:
        ids = [resource_id for kind, resource_id in keys if kind == resource_type]
        for row in session.scalars(select(FhirResourceRow).where(
                FhirResourceRow.resource_type == resource_type, FhirResourceRow.resource_id.in_(ids))):
            rows[(row.resource_type, row.resource_id)] = row
    return rows
