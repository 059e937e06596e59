"""The patient of a study: a conditional reference to the hospital's Patient, or (where configured) a Patient
resource from the demographics in the study's DICOM header."""

from __future__ import annotations

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.identifiers import V2_0203
from hilum.common.fhir.references import conditional_reference
from hilum.common.study import PatientInfo

# DICOM PatientSex to FHIR administrative-gender.
_GENDER = {"M": "male", "F": "female", "O": "other"}


def patient_identifier(patient: PatientInfo, identifier_system: str) -> Identifier:
    """The medical record number identifier: `identifier_system` | DICOM PatientID."""
    return Identifier(
        use="usual",
        type=CodeableConcept(coding=[Coding(system=V2_0203, code="MR", display="Medical record number")]),
        system=identifier_system,
        value=patient.patient_id,
        assigner=Reference(display=patient.issuer) if patient.issuer else None,
    )


def patient_reference(patient: PatientInfo, identifier_system: str) -> Reference:
    """The hospital's own Patient, found by the receiving server on its MRN (a conditional reference)."""
    if not patient.patient_id:
        raise ValueError("a Patient reference needs the DICOM PatientID for its identifier")
    return conditional_reference("Patient", patient_identifier(patient, identifier_system))


def human_name(person_name: str) -> HumanName | None:
    """A HumanName from a DICOM PN "Family^Given^Middle^Prefix^Suffix"; None when the PN is empty."""
    # Only the alphabetic component group (before the first "=") is used.
    components = [part.strip() for part in person_name.split("=", 1)[0].split("^")]
    components += [""] * (5 - len(components))
    family, given, middle, prefix, suffix = components[:5]
    given_names: list[str | None] = [name for name in (given, middle) if name]
    if not (family or given_names):
        return None
    return HumanName(
        family=family or None,
        given=given_names or None,
        prefix=[prefix] if prefix else None,
        suffix=[suffix] if suffix else None,
    )


def build_patient(patient: PatientInfo, *, identifier_system: str) -> Patient:
    """Patient with the MR identifier, name, gender and birth date taken from the DICOM header."""
    if not patient.patient_id:
        raise ValueError("a Patient needs the DICOM PatientID for its identifier")
    name = human_name(patient.name)
    return Patient(
        identifier=[patient_identifier(patient, identifier_system)],
        name=[name] if name is not None else None,
        gender=_GENDER.get(patient.sex.strip().upper(), "unknown"),
        birthDate=patient.birth_date,
    )
