"""Provenance resource: which algorithm authored the report and Observations, from which studies."""

from __future__ import annotations

from datetime import datetime

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent, ProvenanceEntity
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.identifiers import PROVENANCE_PARTICIPANT_TYPE, V3_DATA_OPERATION

AUTHOR = Coding(system=PROVENANCE_PARTICIPANT_TYPE, code="author", display="Author")
CREATE = Coding(system=V3_DATA_OPERATION, code="CREATE", display="create")


def build_provenance(
    *, targets: list[Reference], device: Reference, sources: list[Reference], recorded: datetime
) -> Provenance:
    """Provenance of `targets`: created at `recorded` by the algorithm `device` from the `sources` studies."""
    if not targets:
        raise ValueError("a Provenance needs at least one target")
    return Provenance(
        target=targets,
        recorded=recorded,
        activity=CodeableConcept(coding=[CREATE]),
        agent=[ProvenanceAgent(type=CodeableConcept(coding=[AUTHOR]), who=device)],
        entity=[ProvenanceEntity(role="source", what=source) for source in sources] or None,
    )
