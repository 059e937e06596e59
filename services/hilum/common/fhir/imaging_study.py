"""ImagingStudy resource from a stored chest radiograph study, identified by its Study Instance UID."""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.imagingstudy import ImagingStudy, ImagingStudySeries, ImagingStudySeriesInstance
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.identifiers import (
    DICOM_DCM,
    DICOM_UID_SYSTEM,
    RFC3986,
    SNOMED,
    V2_0203,
    dicom_uid_value,
)
from hilum.common.fhir.patient import patient_identifier
from hilum.common.study import InstanceInfo, StudyInfo

THORACIC_STRUCTURE = Coding(system=SNOMED, code="51185008", display="Thoracic structure")

_MODALITY_DISPLAY = {"DX": "Digital Radiography", "CR": "Computed Radiography"}


def fhir_date_time(value: datetime | None) -> datetime | date | None:
    """A FHIR dateTime for a DICOM date/time: the instant when its offset is known, else the date alone.

    DICOM StudyTime carries no offset unless TimezoneOffsetFromUTC is sent, and FHIR forbids a time
    without one; the date alone is true, whereas guessing an offset would state a wrong instant.
    """
    if value is None:
        return None
    if value.tzinfo is not None and value.utcoffset() is not None:
        return value
    return value.date()


def as_model_date_time(value: datetime | date | None) -> datetime | None:
    """`value` typed for a fhir.resources dateTime field: its hint names datetime, yet it admits a date."""
    return cast("datetime | None", value)


def study_identifier(study_instance_uid: str) -> Identifier:
    """The `urn:dicom:uid` identifier of a study: value "urn:oid:<StudyInstanceUID>"."""
    return Identifier(system=DICOM_UID_SYSTEM, value=dicom_uid_value(study_instance_uid))


def _modality(code: str) -> Coding:
    """A DICOM DCM modality coding (DX or CR)."""
    return Coding(system=DICOM_DCM, code=code, display=_MODALITY_DISPLAY.get(code))


def _instance_order(instance: InstanceInfo) -> tuple[int, str]:
    """Sort key: InstanceNumber, then SOP Instance UID, so output order never depends on arrival."""
    return (
        instance.instance_number if instance.instance_number is not None else 1 << 31,
        instance.sop_instance_uid,
    )


def _series(series_uid: str, instances: list[InstanceInfo]) -> ImagingStudySeries:
    """One series with its instances, body site "Thoracic structure"."""
    first = instances[0]
    return ImagingStudySeries(
        uid=series_uid,
        number=first.series_number,
        modality=_modality(first.modality),
        numberOfInstances=len(instances),
        bodySite=THORACIC_STRUCTURE,
        instance=[
            ImagingStudySeriesInstance(
                uid=instance.sop_instance_uid,
                sopClass=Coding(system=RFC3986, code=dicom_uid_value(instance.sop_class_uid)),
                number=instance.instance_number,
            )
            for instance in sorted(instances, key=_instance_order)
        ],
    )


def build_imaging_study(study: StudyInfo, *, subject: Reference) -> ImagingStudy:
    """ImagingStudy (status available) with identifiers, modalities, series and instances of `study`."""
    by_series: dict[str, list[InstanceInfo]] = {}
    for instance in study.instances:
        by_series.setdefault(instance.series_instance_uid, []).append(instance)
    series = sorted(
        by_series.items(),
        key=lambda item: (
            min((i.series_number for i in item[1] if i.series_number is not None), default=1 << 31),
            item[0],
        ),
    )
    identifiers = [study_identifier(study.study_instance_uid)]
    if study.accession_number:
        identifiers.append(
            Identifier(
                use="usual",
                type=CodeableConcept(coding=[Coding(system=V2_0203, code="ACSN", display="Accession ID")]),
                value=study.accession_number,
            )
        )
    modalities = sorted({instance.modality for instance in study.instances if instance.modality})
    return ImagingStudy(
        identifier=identifiers,
        status="available",
        subject=subject,
        started=as_model_date_time(fhir_date_time(study.started)),
        modality=[_modality(code) for code in modalities] or None,
        numberOfSeries=len(series),
        numberOfInstances=len(study.instances),
        description=study.description or None,
        series=[_series(uid, instances) for uid, instances in series] or None,
    )


def imaging_study_json(study: StudyInfo, patient_identifier_system: str) -> str:
    """The study's ImagingStudy as R4 JSON, its subject a logical reference by the patient's MRN identifier.

    For ingestion, which has no bundle to point into: a FHIR server resolves the identifier itself.
    """
    subject = Reference(identifier=patient_identifier(study.patient, patient_identifier_system))
    return build_imaging_study(study, subject=subject).model_dump_json(by_alias=True, exclude_none=True)
