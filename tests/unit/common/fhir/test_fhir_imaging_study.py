"""ImagingStudy from a stored study."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.imaging_study import build_imaging_study, fhir_date_time
from hilum.common.study import StudyInfo

SUBJECT = Reference(reference="urn:uuid:00000000-0000-5000-8000-000000000001")


def test_identifiers_status_and_subject(study: StudyInfo) -> None:
    data = build_imaging_study(study, subject=SUBJECT).model_dump(mode="json")
    assert data["identifier"][0] == {
        "system": "urn:dicom:uid",
        "value": f"urn:oid:{study.study_instance_uid}",
    }
    accession = data["identifier"][1]
    assert accession["value"] == "ACC-7"
    assert accession["type"]["coding"][0]["code"] == "ACSN"
    assert data["status"] == "available"
    assert data["subject"] == {"reference": SUBJECT.reference}
    assert data["started"] == "2024-03-05T08:15:00+01:00"


def test_modality_counts_series_and_instances(study: StudyInfo) -> None:
    data = build_imaging_study(study, subject=SUBJECT).model_dump(mode="json")
    assert [m["code"] for m in data["modality"]] == ["DX"]
    assert data["modality"][0]["system"] == "http://dicom.nema.org/resources/ontology/DCM"
    assert (data["numberOfSeries"], data["numberOfInstances"]) == (2, 2)
    first = data["series"][0]
    assert first["uid"] == study.instances[0].series_instance_uid
    assert first["modality"]["code"] == "DX"
    assert first["bodySite"] == {
        "system": "http://snomed.info/sct",
        "code": "51185008",
        "display": "Thoracic structure",
    }
    assert first["instance"][0]["uid"] == study.instances[0].sop_instance_uid
    assert first["instance"][0]["sopClass"] == {
        "system": "urn:ietf:rfc:3986",
        "code": "urn:oid:1.2.840.10008.5.1.4.1.1.1.1",
    }


def test_no_accession_means_one_identifier(study_factory: Callable[..., StudyInfo]) -> None:
    imaging_study = build_imaging_study(study_factory(accession=""), subject=SUBJECT)
    assert imaging_study.identifier is not None and len(imaging_study.identifier) == 1


def test_a_time_without_offset_becomes_a_date(study_factory: Callable[..., StudyInfo]) -> None:
    naive = study_factory(started=datetime(2024, 3, 5, 8, 15))
    assert build_imaging_study(naive, subject=SUBJECT).model_dump(mode="json")["started"] == "2024-03-05"
    assert fhir_date_time(None) is None


def test_series_order_does_not_depend_on_arrival(study: StudyInfo) -> None:
    reversed_study = StudyInfo(**{**study.__dict__, "instances": tuple(reversed(study.instances))})
    assert build_imaging_study(reversed_study, subject=SUBJECT) == build_imaging_study(study, subject=SUBJECT)
