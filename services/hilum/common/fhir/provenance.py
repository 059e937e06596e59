"""Provenance resource: which algorithm authored the report and Observations, from which studies."""

from __future__ import annotations

from datetime import datetime

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent, ProvenanceEntity
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.identifiers import (
    HILUM_PROVENANCE_SYSTEM,
    PROVENANCE_PARTICIPANT_TYPE,
    V3_DATA_OPERATION,
    report_identifier_value,
)
from hilum.common.fhir.references import token_criteria

AUTHOR = Coding(system=PROVENANCE_PARTICIPANT_TYPE, code="author", display="Author")
CREATE = Coding(system=V3_DATA_OPERATION, code="CREATE", display="create")


def provenance_tag(study_instance_uid: str, model_version: str) -> Coding:
    """The stable meta.tag of the Provenance of one report: Provenance has no identifier to create on."""
    return Coding(system=HILUM_PROVENANCE_SYSTEM, code=report_identifier_value(study_instance_uid, model_version))


def tag_criteria(tag: Coding) -> str:
    """Conditional-create criteria "_tag=<system>|<code>" matching the resource that carries `tag`."""
    return token_criteria("_tag", str(tag.system), str(tag.code))


def build_provenance(
    *, targets: list[Reference], device: Reference, sources: list[Reference], recorded: datetime, tag: Coding
) -> Provenance:
    """Provenance of `targets`: created at `recorded` by the algorithm `device` from the `sources` studies.

    `tag` (provenance_tag) makes it findable, so that a bundle posted again does not create a second one.
    """
    if not targets:
        raise ValueError("a Provenance needs at least one target")
    return Provenance(
        meta=Meta(tag=[tag]),
        target=targets,
        recorded=recorded,
        activity=CodeableConcept(coding=[CREATE]),
        agent=[ProvenanceAgent(type=CodeableConcept(coding=[AUTHOR]), who=device)],
        entity=[ProvenanceEntity(role="source", what=source) for source in sources] or None,
    )
