"""Checks a Hilum transaction bundle before it is published: structure, references and invariants.

fhir.resources checks structure only. This module adds what it cannot: urn:uuid references resolve
inside the bundle, the R4 invariants that apply to what Hilum emits, and Hilum's own rules (the
report is preliminary and concluded, every Observation names its algorithm, demo output says so).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models
from pydantic import ValidationError

from hilum.common.fhir.identifiers import AI_ASSERTED_CODE, DICOM_UID_SYSTEM, V3_OBSERVATION_VALUE
from hilum.common.wording import DEMO_NOTICE, DEMO_WARNING

# The resource types Hilum emits; all exist unchanged in R4, so nothing R4B- or R5-only can slip in.
EMITTED_TYPES = frozenset(
    {"Patient", "ImagingStudy", "Device", "Observation", "DiagnosticReport", "Provenance"}
)

_R4_MODEL = models["r4"]
_AI_ASSERTED = (
    f"meta.security.where(system = '{V3_OBSERVATION_VALUE}' and code = '{AI_ASSERTED_CODE}').exists()"
)


@dataclass(frozen=True)
class Invariant:
    """A FHIRPath constraint that must evaluate to true on every resource of `resource_type`."""

    resource_type: str  # "*" for every resource in the bundle
    key: str  # "bdl-7", "obs-6", … (R4 keys) or "hilum-…" for Hilum's own rules
    human: str
    expression: str
    # When given and false for a resource, the expression is true of it without evaluating (it constrains only
    # elements the resource does not have): FHIRPath evaluation is the largest cost of publishing a report.
    constrains: Callable[[dict[str, Any]], bool] | None = None


def _has_contained(resource: dict[str, Any]) -> bool:
    """Whether a resource has contained resources (what dom-2 to dom-5 constrain)."""
    return "contained" in resource


def _has_local_reference(resource: dict[str, Any]) -> bool:
    """Whether a resource has a local reference ("#id"), what ref-1 constrains."""
    return any(path.endswith(".reference") and isinstance(value, str) and value.startswith("#")
               for path, value in _walk(resource, ""))


BUNDLE_INVARIANTS = (
    Invariant(
        "Bundle",
        "bdl-3",
        "entry.request only in batch, transaction or history",
        "entry.request.empty() or type = 'batch' or type = 'transaction' or type = 'history'",
    ),
    Invariant(
        "Bundle",
        "bdl-4",
        "entry.response only in batch-response, transaction-response or history",
        "entry.response.empty() or type = 'batch-response' or type = 'transaction-response'"
        " or type = 'history'",
    ),
    Invariant(
        "Bundle",
        "bdl-7",
        "fullUrl must be unique in a bundle",
        "(type = 'history') or entry.where(fullUrl.exists()).select(fullUrl & resource.meta.versionId)"
        ".isDistinct()",
    ),
    Invariant(
        "Bundle",
        "bdl-8",
        "fullUrl cannot be a version specific reference",
        "entry.all(fullUrl.exists() implies fullUrl.contains('/_history/').not())",
    ),
    Invariant(
        "Bundle",
        "hilum-bdl-1",
        "a transaction entry has a fullUrl, a resource and a request",
        "type = 'transaction' and entry.exists()"
        " and entry.all(fullUrl.exists() and resource.exists() and request.exists())",
    ),
    Invariant(
        "Bundle",
        "hilum-bdl-2",
        "conditional create (ifNoneExist) only with POST",
        "entry.all(request.ifNoneExist.exists() implies request.method = 'POST')",
    ),
)

RESOURCE_INVARIANTS = (
    Invariant(
        "*", "dom-2", "a contained resource SHALL NOT contain nested resources", "contained.contained.empty()",
        _has_contained,
    ),
    Invariant(
        "*",
        "dom-3",
        "a contained resource SHALL be referred to from elsewhere in the resource",
        "contained.all(('#' + id) in %resource.descendants().reference)",
        _has_contained,
    ),
    Invariant(
        "*",
        "dom-4",
        "a contained resource SHALL NOT have a meta.versionId or meta.lastUpdated",
        "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
        _has_contained,
    ),
    Invariant(
        "*",
        "dom-5",
        "a contained resource SHALL NOT have a security label",
        "contained.meta.security.empty()",
        _has_contained,
    ),
    Invariant(
        "*",
        "ref-1",
        "a local reference (#id) SHALL have a contained resource",
        "descendants().reference.where(startsWith('#') and length() > 1)"
        ".all(substring(1) in %resource.contained.id)",
        _has_local_reference,
    ),
    Invariant(
        "Observation",
        "obs-6",
        "dataAbsentReason SHALL only be present if value[x] is not present",
        "dataAbsentReason.empty() or value.empty()",
    ),
    Invariant(
        "Observation",
        "obs-7",
        "if the Observation code is the same as a component code then the value SHALL NOT be in the "
        "Observation itself",
        "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()",
    ),
    Invariant("Observation", "hilum-obs-1", "Observation status is preliminary", "status = 'preliminary'"),
    Invariant(
        "Observation", "hilum-obs-2", "Observation names the algorithm (device)", "device.reference.exists()"
    ),
    Invariant(
        "Observation", "hilum-obs-3", "Observation is derivedFrom the ImagingStudy", "derivedFrom.exists()"
    ),
    Invariant("Observation", "hilum-obs-4", "Observation carries the AIAST security label", _AI_ASSERTED),
    Invariant(
        "Observation",
        "hilum-obs-5",
        "Observation has a coded value and a probability component",
        "value.exists() and component.where(code.coding.code = 'probability').value.exists()",
    ),
    Invariant(
        "DiagnosticReport",
        "hilum-dr-1",
        "DiagnosticReport has a conclusion",
        "conclusion.exists() and conclusion.length() > 0",
    ),
    Invariant(
        "DiagnosticReport", "hilum-dr-2",
        "DiagnosticReport status is preliminary (amended: it supersedes the study's report of an earlier model "
        "version)",
        "status = 'preliminary' or status = 'amended'",
    ),
    Invariant(
        "DiagnosticReport",
        "hilum-dr-3",
        "DiagnosticReport references its ImagingStudy",
        "imagingStudy.exists()",
    ),
    Invariant(
        "DiagnosticReport", "hilum-dr-4", "DiagnosticReport carries the AIAST security label", _AI_ASSERTED
    ),
    Invariant(
        "DiagnosticReport",
        "hilum-dr-5",
        "DiagnosticReport category is LOINC LP29684-5 (Radiology)",
        "category.coding.where(system = 'http://loinc.org' and code = 'LP29684-5').exists()",
    ),
    Invariant("Device", "hilum-dev-1", "Device has a version", "version.value.exists()"),
    Invariant("Device", "hilum-dev-2", "Device has a name", "deviceName.name.exists()"),
    Invariant(
        "ImagingStudy",
        "hilum-is-1",
        "ImagingStudy has a urn:dicom:uid identifier (urn:oid:…)",
        f"identifier.where(system = '{DICOM_UID_SYSTEM}' and value.startsWith('urn:oid:')).exists()",
    ),
    Invariant(
        "Provenance",
        "hilum-prov-1",
        "Provenance has targets and an agent who",
        "target.exists() and agent.who.exists()",
    ),
    Invariant(
        "Patient",
        "hilum-pat-1",
        "Patient has an identifier with system and value",
        "identifier.where(system.exists() and value.exists()).exists()",
    ),
)


def bundle_json(bundle: Bundle) -> dict[str, Any]:
    """The bundle as R4 JSON (aliases, no nulls); R4B models of the emitted types carry no R5-only element."""
    data: dict[str, Any] = json.loads(bundle.model_dump_json(by_alias=True, exclude_none=True))
    return data


@cache
def _compiled(expression: str) -> Callable[..., list[Any]]:
    """The FHIRPath expression parsed once against the R4 model."""
    return compile_fhirpath(expression, _R4_MODEL)


def _holds(invariant: Invariant, subject: dict[str, Any]) -> bool:
    """True when the invariant's expression evaluates to exactly [true] on `subject` (a private copy)."""
    try:
        result = _compiled(invariant.expression)(subject, {"resource": subject})
    except Exception as error:  # a malformed resource can make the engine itself fail
        raise _EvaluationFailed(str(error)) from error
    return result == [True]


class _EvaluationFailed(Exception):
    """FHIRPath evaluation raised on a resource (reported as a problem, not propagated)."""


def _check(invariants: tuple[Invariant, ...], resource: dict[str, Any], where: str) -> list[str]:
    """Problems for each invariant of `invariants` that applies to `resource` and does not hold; `resource` is a
    private copy, since the FHIRPath engine may annotate what it evaluates."""
    problems: list[str] = []
    kind = resource.get("resourceType")
    for invariant in invariants:
        if invariant.resource_type not in ("*", kind):
            continue
        if invariant.constrains is not None and not invariant.constrains(resource):
            continue  # vacuously true: the resource has nothing the invariant constrains
        try:
            if not _holds(invariant, resource):
                problems.append(f"{where}: {invariant.key}: {invariant.human}")
        except _EvaluationFailed as error:
            problems.append(f"{where}: {invariant.key}: could not be evaluated ({error})")
    return problems


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every (path, value) pair in a JSON tree, depth first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def _empty_values(data: dict[str, Any]) -> list[str]:
    """ele-1 in JSON form: no element may be present without a value or children."""
    return [
        f"{path}: ele-1: empty value"
        for path, value in _walk(data, "Bundle")
        if value is None or value == "" or value == [] or value == {}
    ]


def _unresolved_references(data: dict[str, Any], full_urls: set[str]) -> list[str]:
    """Every "urn:uuid:…" reference must be the fullUrl of an entry in the same bundle."""
    return [
        f"{path}: reference {value!r} does not resolve to an entry fullUrl"
        for path, value in _walk(data, "Bundle")
        if path.endswith(".reference")
        and isinstance(value, str)
        and value.startswith("urn:uuid:")
        and value not in full_urls
    ]


def _demo_consistency(resources: list[dict[str, Any]]) -> list[str]:
    """If a Device declares demo weights, every DiagnosticReport conclusion must open with the disclaimer."""
    devices = [r for r in resources if r.get("resourceType") == "Device"]
    demo = any(DEMO_WARNING in json.dumps(device, ensure_ascii=False) for device in devices)
    if not demo:
        return []
    return [
        f"DiagnosticReport/{r.get('id', '?')}: hilum-demo-1: demo-weight report conclusion must start with "
        f"{DEMO_NOTICE!r}"
        for r in resources
        if r.get("resourceType") == "DiagnosticReport"
        and not str(r.get("conclusion", "")).startswith(DEMO_NOTICE)
    ]


def validate_bundle(bundle_json: dict[str, Any]) -> list[str]:
    """Problems found in a Hilum transaction bundle (R4 JSON); [] when it is valid."""
    problems: list[str] = []
    try:
        Bundle.model_validate(bundle_json)
    except ValidationError as error:
        problems.extend(
            f"structure: {'.'.join(str(p) for p in e['loc']) or 'Bundle'}: {e['msg']}" for e in error.errors()
        )
    if bundle_json.get("resourceType") != "Bundle":
        return [*problems, "structure: resourceType is not Bundle"]
    return [*problems, *_content_problems(bundle_json)]


def validate_built_bundle(bundle: Bundle) -> tuple[dict[str, Any], list[str]]:
    """The R4 JSON of a bundle built from the R4B models, and the problems in it ([] when it is valid).

    The models validated the structure as they were built, so only what they cannot see is checked: ele-1,
    the invariants, references within the bundle, the resource types and the demo wording. Parsing the JSON back
    into the models would check the same structure a second time (a third of the cost of publishing a report).
    """
    data = bundle_json(bundle)
    return data, _content_problems(data)


def _content_problems(bundle_json: dict[str, Any]) -> list[str]:
    """What the R4B models do not check in a bundle's JSON: ele-1, FHIRPath invariants, unresolved urn:uuid
    references, resource types Hilum does not emit, and the demo disclaimer."""
    problems = _empty_values(bundle_json)
    # The FHIRPath engine gets one copy of the whole bundle, so nothing it does can touch the caller's JSON.
    bundle_json = json.loads(json.dumps(bundle_json))
    problems.extend(_check(BUNDLE_INVARIANTS, bundle_json, "Bundle"))

    entries = [e for e in bundle_json.get("entry", []) if isinstance(e, dict)]
    full_urls = {e["fullUrl"] for e in entries if isinstance(e.get("fullUrl"), str)}
    problems.extend(_unresolved_references(bundle_json, full_urls))
    resources: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        kind = resource.get("resourceType")
        where = f"Bundle.entry[{index}].resource ({kind})"
        if kind not in EMITTED_TYPES:
            problems.append(f"{where}: not a resource type Hilum emits")
            continue
        resources.append(resource)
        problems.extend(_check(RESOURCE_INVARIANTS, resource, where))
    problems.extend(_demo_consistency(resources))
    return problems
