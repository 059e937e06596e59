"""One study's reported findings as a DICOM Comprehensive SR whose content is a TID 1500 Measurement Report.

The SR goes back to the PACS beside the images it describes. Its Series and SOP Instance UIDs are deterministic
in (Study Instance UID, model version), so a re-sent SR replaces the earlier copy instead of adding a second.

Coding: a finding is its SNOMED CT concept where the label has one, else a code of Hilum's private scheme
99HILUM. Its status is a qualitative evaluation of that concept: present (SCT 52101004), uncertain as
indeterminate (SCT 82334004), resolved as absent now (SCT 2667000) with the change since prior "resolved",
as the FHIR Observations say it. Probability and operating threshold are numeric measurements in UCUM {ratio}.
Each tube or line is a group too: its kind ("device:ett", one of the six DeviceType kinds) and tip position in
99HILUM ("not-assessed" when no placement call was made), its probability, and the tip's distance to its landmark
in mm (positive above it) where one was measured; the draft's sentences in the text container say why.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import highdicom as hd
from fhir.resources.R4B.coding import Coding
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import UID, ComprehensiveSRStorage

from hilum.common.fhir.device_observation import position_value
from hilum.common.fhir.diagnostic_report import exam_coding
from hilum.common.fhir.identifiers import LOINC, SNOMED, resource_uuid
from hilum.common.fhir.observation import LATERALITY_VALUES, STATUS_VALUES
from hilum.common.reported_findings import (
    DEVICE_DISPLAY,
    ChangeSincePrior,
    DeviceType,
    FindingStatus,
    ReportedDevice,
    ReportedFinding,
    ReportedFindings,
    device_code,
)
from hilum.common.wording import DRAFT_NOTICE
from hilum.v1 import messages_pb2

MANUFACTURER = "Hilum"
PRIVATE_SCHEME = "99HILUM"
PRIVATE_SCHEME_NAME = "Hilum chest radiograph findings"
DEMO_TEXT = "DEMO: unvalidated demo weights, not for clinical use"
SERIES_DESCRIPTION = "Hilum AI chest radiograph findings"
DEFAULT_SERIES_NUMBER = 9901
# UTF-8, so draft sentences and names outside Latin-1 survive.
CHARACTER_SET = "ISO_IR 192"

# FHIR code systems as DICOM coding scheme designators.
_SCHEME = {SNOMED: "SCT", LOINC: "LN"}


def _concept(coding: Coding) -> hd.sr.CodedConcept:
    """A SNOMED CT or LOINC coding of the FHIR resources as the same DICOM coded concept."""
    return hd.sr.CodedConcept(str(coding.code), _SCHEME[str(coding.system)], str(coding.display))


# The reported status as the Observations' SNOMED CT qualifier value: a resolved finding is absent now.
STATUS_VALUE = {status: _concept(coding) for status, coding in STATUS_VALUES.items()}

# Change since prior in 99HILUM, with the codes of the FHIR change code system.
CHANGE_CONCEPT = hd.sr.CodedConcept("change-since-prior", PRIVATE_SCHEME, "Change since prior")
CHANGE_VALUE = {
    ChangeSincePrior.NEW: hd.sr.CodedConcept("new", PRIVATE_SCHEME, "New since prior"),
    ChangeSincePrior.UNCHANGED: hd.sr.CodedConcept("unchanged", PRIVATE_SCHEME, "Unchanged since prior"),
    ChangeSincePrior.RESOLVED: hd.sr.CodedConcept("resolved", PRIVATE_SCHEME, "Resolved since prior"),
    ChangeSincePrior.NOT_COMPARED: hd.sr.CodedConcept("not-compared", PRIVATE_SCHEME, "Not compared with prior"),
    ChangeSincePrior.IMPROVED: hd.sr.CodedConcept("improved", PRIVATE_SCHEME, "Improved since prior"),
    ChangeSincePrior.WORSENED: hd.sr.CodedConcept("worsened", PRIVATE_SCHEME, "Worsened since prior"),
}

PROBABILITY_CONCEPT = hd.sr.CodedConcept("122157", "DCM", "Probability")
THRESHOLD_CONCEPT = hd.sr.CodedConcept("operating-threshold", PRIVATE_SCHEME, "Operating threshold")
_RATIO = hd.sr.CodedConcept("{ratio}", "UCUM", "ratio")

DEVICE_POSITION_CONCEPT = hd.sr.CodedConcept("device-position", PRIVATE_SCHEME, "Device tip position")
_MILLIMETRE = hd.sr.CodedConcept("mm", "UCUM", "mm")

_CHEST = hd.sr.CodedConcept("816094009", "SCT", "Chest")
_LATERALITY = {side: _concept(coding) for side, coding in LATERALITY_VALUES.items()}

_COMMENT = hd.sr.CodedConcept("121106", "DCM", "Comment")
_FINDINGS = hd.sr.CodedConcept("121070", "DCM", "Findings")
_IMPRESSION = hd.sr.CodedConcept("121073", "DCM", "Impression")
_QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("126010", "DCM", "Qualitative Evaluations")


def dicom_uid(kind: str, *parts: str) -> str:
    """A deterministic DICOM UID "2.25.<decimal uuid5>" for `kind` identified by `parts` (at most 44 characters)."""
    return f"2.25.{uuid.UUID(resource_uuid(kind, *parts)).int}"


def sr_series_instance_uid(study_instance_uid: str, model_version: str) -> str:
    """The SR series' UID: one per (study, model version), so a re-sent SR lands in the same series."""
    return dicom_uid("dicom-sr-series", study_instance_uid, model_version)


def sr_sop_instance_uid(study_instance_uid: str, model_version: str) -> str:
    """The SR's SOP Instance UID: one per (study, model version), so a re-sent SR replaces the earlier one."""
    return dicom_uid("dicom-sr-instance", study_instance_uid, model_version)


def finding_concept(finding: ReportedFinding) -> hd.sr.CodedConcept:
    """The finding's SNOMED CT concept where it has one, else its code in the private scheme 99HILUM."""
    meaning = finding.display or finding.code
    if finding.snomed_code:
        return hd.sr.CodedConcept(finding.snomed_code, "SCT", meaning)
    return hd.sr.CodedConcept(finding.code, PRIVATE_SCHEME, meaning)


def device_concept(kind: DeviceType) -> hd.sr.CodedConcept:
    """A kind of tube or line as a 99HILUM code, "device:ett" "Endotracheal tube"."""
    return hd.sr.CodedConcept(device_code(kind), PRIVATE_SCHEME, DEVICE_DISPLAY[kind])


def tip_distance_concept(landmark: str) -> hd.sr.CodedConcept:
    """The measurement of a tip's distance to a landmark, "tip-to-carina" "Tip to carina distance"."""
    return hd.sr.CodedConcept(f"tip-to-{landmark.replace(' ', '-')}", PRIVATE_SCHEME, f"Tip to {landmark} distance")


def _procedure(sources: Sequence[Dataset]) -> hd.sr.CodedConcept:
    """The LOINC exam code of the sources, as the DiagnosticReport names the exam (by their distinct views)."""
    return _concept(exam_coding(str(source.get("ViewPosition", "")) for source in sources))


def _algorithm(reported: ReportedFindings) -> hd.sr.AlgorithmIdentification:
    """TID 4019 for the model that produced the findings."""
    return hd.sr.AlgorithmIdentification(
        name=reported.model.name, version=reported.model.version, manufacturer=MANUFACTURER
    )


def _observation_context(reported: ReportedFindings) -> hd.sr.ObservationContext:
    """TID 1002 naming the algorithm as the observing device (TID 1004)."""
    model = reported.model
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=dicom_uid("algorithm-device", model.name, model.version),
        name=f"{model.name} {model.version}",
        manufacturer_name=MANUFACTURER,
        model_name=model.name,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _finding_group(
    finding: ReportedFinding, reported: ReportedFindings, sources: Sequence[Dataset]
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 for one finding: its concept, status, change since prior, probability and threshold."""
    concept = finding_concept(finding)
    evaluations = [hd.sr.QualitativeEvaluation(concept, STATUS_VALUE[finding.status])]
    if finding.change is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(CHANGE_CONCEPT, CHANGE_VALUE[finding.change]))
    measurements = [
        hd.sr.Measurement(name=PROBABILITY_CONCEPT, value=round(finding.probability, 6), unit=_RATIO),
        hd.sr.Measurement(name=THRESHOLD_CONCEPT, value=round(finding.threshold, 6), unit=_RATIO),
    ]
    sites = (
        [hd.sr.FindingSite(anatomic_location=_CHEST, laterality=_LATERALITY[finding.laterality])]
        if finding.laterality in _LATERALITY
        else None
    )
    tracking = hd.sr.TrackingIdentifier(
        uid=dicom_uid("dicom-sr-finding", reported.study_instance_uid, reported.model.version, finding.code),
        identifier=finding.code,
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=concept,
        algorithm_id=_algorithm(reported),
        finding_sites=sites,
        measurements=measurements,
        qualitative_evaluations=evaluations,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(s) for s in sources],
    )


def _device_group(
    device: ReportedDevice, reported: ReportedFindings, sources: Sequence[Dataset]
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 for one tube or line: its kind, tip position ("not-assessed" without a call), probability and tip
    distance (mm, positive above)."""
    # The placement call with the codes of the FHIR device Observation, in 99HILUM.
    call = position_value(device)
    position = hd.sr.CodedConcept(str(call.code), PRIVATE_SCHEME, str(call.display))
    measurements = [hd.sr.Measurement(name=PROBABILITY_CONCEPT, value=round(device.probability, 6), unit=_RATIO)]
    if device.tip_distance_mm is not None and device.landmark is not None:
        measurements.append(hd.sr.Measurement(
            name=tip_distance_concept(device.landmark), value=device.tip_distance_mm, unit=_MILLIMETRE
        ))
    tracking = hd.sr.TrackingIdentifier(
        uid=dicom_uid("dicom-sr-finding", reported.study_instance_uid, reported.model.version, device.code),
        identifier=device.code,
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=device_concept(device.kind),
        algorithm_id=_algorithm(reported),
        measurements=measurements,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(DEVICE_POSITION_CONCEPT, position)
        ],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(s) for s in sources],
    )


def _no_finding_group(
    reported: ReportedFindings, sources: Sequence[Dataset]
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 saying that no finding reached its threshold and no device was found (TID 1500 needs a group)."""
    tracking = hd.sr.TrackingIdentifier(
        uid=dicom_uid("dicom-sr-finding", reported.study_instance_uid, reported.model.version, ""),
        identifier="no-reportable-finding",
    )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        algorithm_id=_algorithm(reported),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.DCM.Finding, STATUS_VALUE[FindingStatus.RESOLVED])],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(s) for s in sources],
    )


def _text(name: hd.sr.CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _evaluations_container(draft: messages_pb2.DraftReport, demo: bool) -> hd.sr.ContainerContentItem:
    """TID 1500 row 12: the demo warning, the draft notice and the draft's findings and impression as text."""
    items = [_text(_COMMENT, DEMO_TEXT)] if demo else []
    items.append(_text(_COMMENT, DRAFT_NOTICE))
    items.extend(_text(_FINDINGS, s.text.strip()) for s in draft.findings if s.text.strip())
    items.extend(_text(_IMPRESSION, s.text.strip()) for s in draft.impression if s.text.strip())
    container = hd.sr.ContainerContentItem(
        name=_QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def _private_scheme() -> Dataset:
    """The Coding Scheme Identification item that names 99HILUM."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = PRIVATE_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = MANUFACTURER
    return item


def _predecessor(study_instance_uid: str, model_version: str) -> Dataset:
    """The Predecessor Documents Sequence item naming the study's SR of model_version (its UIDs are stable)."""
    instance = Dataset()
    instance.ReferencedSOPClassUID = ComprehensiveSRStorage
    instance.ReferencedSOPInstanceUID = sr_sop_instance_uid(study_instance_uid, model_version)
    series = Dataset()
    series.SeriesInstanceUID = sr_series_instance_uid(study_instance_uid, model_version)
    series.ReferencedSOPSequence = [instance]
    item = Dataset()
    item.StudyInstanceUID = study_instance_uid
    item.ReferencedSeriesSequence = [series]
    return item


def build_structured_report(
    sources: Sequence[Dataset],
    reported: ReportedFindings,
    draft: messages_pb2.DraftReport,
    *,
    series_number: int = DEFAULT_SERIES_NUMBER,
    now: datetime,
    predecessor_version: str = "",
) -> Dataset:
    """The Comprehensive SR (TID 1500) of a study's reported findings, referencing `sources` (its images).

    sources: the study's image datasets (headers suffice) the findings came from; patient and study attributes
    are copied from the first. now: the SR's content and instance creation time (its offset, when aware).
    predecessor_version: the model version of the study's earlier SR that this one supersedes (a reprocessed
    study); it is named in the Predecessor Documents Sequence.
    Raises ValueError when sources is empty or belongs to a study other than reported.study_instance_uid.
    """
    if not sources:
        raise ValueError("a structured report needs at least one source image")
    foreign = {str(s.StudyInstanceUID) for s in sources} - {reported.study_instance_uid}
    if foreign:
        raise ValueError("source images belong to another study than the reported findings")
    demo = reported.model.demo_weights or draft.model.demo_weights
    groups = [_finding_group(f, reported, sources) for f in reported.findings]
    groups.extend(_device_group(d, reported, sources) for d in reported.devices)
    content = hd.sr.MeasurementReport(
        observation_context=_observation_context(reported),
        procedure_reported=_procedure(sources),
        imaging_measurements=groups or [_no_finding_group(reported, sources)],
        referenced_images=list(sources),
    )
    content[0].ContentSequence.append(_evaluations_container(draft, demo))
    version = reported.model.version
    sr = hd.sr.ComprehensiveSR(
        evidence=list(sources),
        content=content,
        series_instance_uid=sr_series_instance_uid(reported.study_instance_uid, version),
        series_number=series_number,
        sop_instance_uid=sr_sop_instance_uid(reported.study_instance_uid, version),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
        series_description=DEMO_TEXT if demo else SERIES_DESCRIPTION,
        specific_character_set=CHARACTER_SET,
    )
    for keyword in ("ContentDate", "InstanceCreationDate", "SeriesDate"):
        setattr(sr, keyword, now.strftime("%Y%m%d"))
    for keyword in ("ContentTime", "InstanceCreationTime", "SeriesTime"):
        setattr(sr, keyword, now.strftime("%H%M%S"))
    if now.utcoffset() is not None:
        sr.TimezoneOffsetFromUTC = now.strftime("%z")
    sr.ManufacturerModelName = reported.model.name
    sr.SoftwareVersions = version
    sr.CodingSchemeIdentificationSequence = [_private_scheme()]
    if predecessor_version:
        sr.PredecessorDocumentsSequence = [_predecessor(reported.study_instance_uid, predecessor_version)]
    sr.file_meta.MediaStorageSOPInstanceUID = UID(sr.SOPInstanceUID)
    return sr
