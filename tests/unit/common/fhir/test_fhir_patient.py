"""Patient from DICOM demographics."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from hilum.common.fhir.patient import build_patient, human_name
from hilum.common.study import PatientInfo

PATIENT = PatientInfo(
    patient_id="MRN-1", issuer="HOSP-A", name="DOE^JANE^Q^DR^III", birth_date=date(1950, 2, 3), sex="F"
)


def test_identifier_uses_the_configured_system() -> None:
    patient = build_patient(PATIENT, identifier_system="urn:oid:9.8.7")
    assert patient.identifier is not None
    (identifier,) = patient.identifier
    assert (identifier.system, identifier.value) == ("urn:oid:9.8.7", "MRN-1")
    assert identifier.type is not None and identifier.type.coding is not None
    assert identifier.type.coding[0].code == "MR"
    assert identifier.assigner is not None and identifier.assigner.display == "HOSP-A"


def test_name_gender_and_birth_date() -> None:
    data = build_patient(PATIENT, identifier_system="urn:x").model_dump(mode="json")
    assert data["name"] == [{"family": "DOE", "given": ["JANE", "Q"], "prefix": ["DR"], "suffix": ["III"]}]
    assert data["gender"] == "female"
    assert data["birthDate"] == "1950-02-03"


@pytest.mark.parametrize(("sex", "gender"), [("M", "male"), ("F", "female"), ("O", "other"), ("", "unknown")])
def test_gender_mapping(sex: str, gender: str) -> None:
    assert build_patient(replace(PATIENT, sex=sex), identifier_system="urn:x").gender == gender


def test_ideographic_component_groups_are_ignored() -> None:
    name = human_name("YAMADA^TARO=山田^太郎")
    assert name is not None
    assert (name.family, name.given) == ("YAMADA", ["TARO"])


def test_empty_name_and_birth_date_are_left_out() -> None:
    data = build_patient(replace(PATIENT, name="^^", birth_date=None, issuer=""), identifier_system="urn:x")
    dumped = data.model_dump(mode="json")
    assert "name" not in dumped and "birthDate" not in dumped
    assert "assigner" not in dumped["identifier"][0]


def test_patient_without_id_is_refused() -> None:
    with pytest.raises(ValueError, match="PatientID"):
        build_patient(replace(PATIENT, patient_id=""), identifier_system="urn:x")
