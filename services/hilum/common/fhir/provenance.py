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
# An amended report revises the study's earlier one (v3-DataOperation UPDATE, displayed "revise").
REVISE = Coding(system=V3_DATA_OPERATION, code="UPDATE", display="revise")


def provenance_tag(study_instance_uid: str, model_version: str) -> Coding:
    """The stable meta.tag of the Provenance of one report: Provenance has no identifier to create on."""
    return Coding(system=HILUM_PROVENANCE_SYSTEM, code=report_identifier_value(study_instance_uid, model_version))


def tag_criteria(tag: Coding) -> str:
    """Conditional-create criteria "_tag=<system>|<code>" matching the resource that carries `tag`."""
    return token_criteria("_tag", str(tag.system), str(tag.code))


def build_provenance(
    *, targets: list[Reference], devices: list[Reference], sources: list[Reference], recorded: datetime, tag: Coding,
    revises: Reference | None = None,
) -> Provenance:
    """Provenance of `targets`: created at `recorded` by the algorithms `devices` from the `sources` studies, and,
    for an amended report, as a revision of the report `revises` (the one it supersedes).

    `tag` (provenance_tag) makes it findable, so that a bundle posted again does not create a second one.
    """
    if not targets or not devices:
        raise ValueError("a Provenance needs at least one target and one algorithm")
    entities = [ProvenanceEntity(role="source", what=source) for source in sources]
    if revises is not None:
        entities.append(ProvenanceEntity(role="revision", what=revises))
    return Provenance(
        meta=Meta(tag=[tag]),
        target=targets,
        recorded=recorded,
        activity=CodeableConcept(coding=[REVISE if revises is not None else CREATE]),
        agent=[ProvenanceAgent(type=CodeableConcept(coding=[AUTHOR]), who=device) for device in devices],
        entity=entities or None,
    )
