"""The transaction Bundle Hilum publishes per (study, model version), with conditional creates.

Every entry's fullUrl is a deterministic urn:uuid and every reference inside the bundle points at one
(or, for the hospital's Patient and order, is a conditional reference the server resolves); every entry
is a conditional create, so building the same inputs twice yields identical JSON and a bundle posted
twice creates nothing new.
"""

from __future__ import annotations

from datetime import datetime

from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntryRequest
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference

from hilum.common.fhir.device import algorithm_identifier, build_device
from hilum.common.fhir.device_observation import build_device_observation
from hilum.common.fhir.diagnostic_report import build_diagnostic_report, report_identifier
from hilum.common.fhir.identifiers import resource_uuid
from hilum.common.fhir.imaging_study import build_imaging_study, fhir_date_time, study_identifier
from hilum.common.fhir.observation import build_observation, observation_identifier
from hilum.common.fhir.patient import build_patient, patient_identifier, patient_reference
from hilum.common.fhir.provenance import build_provenance, provenance_tag, tag_criteria
from hilum.common.fhir.references import conditional_reference, if_none_exist
from hilum.common.reported_findings import ReportedFindings
from hilum.common.study import StudyInfo
from hilum.v1 import messages_pb2


def _entry(
    resource: DomainResource, resource_id: str, *, match: Identifier | None = None, criteria: str = ""
) -> BundleEntry:
    """A POST entry with fullUrl urn:uuid:<id>, created only if nothing matches `match` (its identifier)
    or the search `criteria`.
    """
    resource.id = resource_id
    if match is not None:
        criteria = if_none_exist(match)
    if not criteria:
        raise ValueError("every entry of a Hilum bundle is a conditional create")
    return BundleEntry(
        fullUrl=f"urn:uuid:{resource_id}",
        resource=resource,
        request=BundleEntryRequest(method="POST", url=resource.get_resource_type(), ifNoneExist=criteria),
    )


def _reference(resource_id: str) -> Reference:
    """A reference to a bundle entry by its urn:uuid fullUrl."""
    return Reference(reference=f"urn:uuid:{resource_id}")


def _check_inputs(
    study: StudyInfo,
    reported: ReportedFindings,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo | None,
    issued: datetime,
) -> None:
    """Refuse inputs that describe different studies, or an issued time without a UTC offset."""
    uid = study.study_instance_uid
    if reported.study_instance_uid and reported.study_instance_uid != uid:
        raise ValueError(f"reported findings are for study {reported.study_instance_uid}, not {uid}")
    if draft.study_instance_uid and draft.study_instance_uid != uid:
        raise ValueError(f"draft is for study {draft.study_instance_uid}, not {uid}")
    if prior_study is not None:
        if reported.prior is None:
            raise ValueError("a prior study was given but the reported findings name no prior")
        if prior_study.study_instance_uid != reported.prior.study_instance_uid:
            raise ValueError("the prior study given is not the reported findings' prior")
    if issued.tzinfo is None or issued.utcoffset() is None:
        raise ValueError("issued must be timezone-aware (FHIR instant)")


def build_report_bundle(
    study: StudyInfo,
    reported: ReportedFindings,
    draft: messages_pb2.DraftReport,
    *,
    prior_study: StudyInfo | None,
    issued: datetime,
    patient_identifier_system: str,
    create_patient: bool = False,
    based_on: Reference | None = None,
    presented_html: str = "",
    amends: str | None = None,
) -> Bundle:
    """Transaction Bundle of ImagingStudy (+ prior), Device, Observations, report and Provenance.

    The subject is the hospital's own Patient, found by the server on the MRN (a conditional reference);
    only with `create_patient` does the bundle carry a Patient (conditional create on the MRN). One
    Observation per reported finding, in report order, then one per reported tube or line (derived from the
    current study alone); the findings' algorithm is the reported findings' model, the tubes' and lines' the
    devices model (a Device each, both agents of the Provenance).
    ImagingStudies, Device, Observations and the DiagnosticReport are conditional creates on their stable
    identifiers; the Provenance, which has no identifier, on a stable meta.tag. A prior known only by UID
    (no `prior_study`) is referenced logically by its `urn:dicom:uid` identifier instead of being carried
    as an entry. `based_on` names the order; `presented_html` is the draft as XHTML for presentedForm.
    `amends` is the model version of the study's earlier report that this one supersedes: the report is then
    "amended" and its Provenance names the earlier one (a logical reference, by identifier) as revised.
    """
    _check_inputs(study, reported, draft, prior_study, issued)
    model = reported.model.as_info()
    uid, version = study.study_instance_uid, model.version
    effective = fhir_date_time(study.started)

    patient_id = resource_uuid("Patient", patient_identifier_system, study.patient.patient_id)
    study_id = resource_uuid("ImagingStudy", uid)
    device_id = resource_uuid("Device", model.name, model.version)
    report_id = resource_uuid("DiagnosticReport", uid, version)
    device = _reference(device_id)
    entries: list[BundleEntry] = []
    if create_patient:
        patient = build_patient(study.patient, identifier_system=patient_identifier_system)
        entries.append(_entry(patient, patient_id, match=patient_identifier(study.patient, patient_identifier_system)))
        subject = _reference(patient_id)
    else:
        subject = patient_reference(study.patient, patient_identifier_system)
    entries.append(_entry(build_imaging_study(study, subject=subject), study_id, match=study_identifier(uid)))
    studies = [_reference(study_id)]
    if prior_study is not None:
        prior_id = resource_uuid("ImagingStudy", prior_study.study_instance_uid)
        prior_resource = build_imaging_study(prior_study, subject=subject)
        entries.append(
            _entry(prior_resource, prior_id, match=study_identifier(prior_study.study_instance_uid))
        )
        studies.append(_reference(prior_id))
    elif reported.prior is not None:
        studies.append(
            Reference(type="ImagingStudy", identifier=study_identifier(reported.prior.study_instance_uid))
        )
    entries.append(_entry(build_device(model), device_id, match=algorithm_identifier(model)))
    # The tubes and lines found by a devices model are its Observations, with a Device of its own; results recorded
    # before that model was kept name the findings model.
    algorithms = [device]
    devices_model, devices_device = model, device
    if reported.devices and reported.devices_model is not None:
        devices_model = reported.devices_model.as_info()
        devices_device_id = resource_uuid("Device", devices_model.name, devices_model.version)
        entries.append(
            _entry(build_device(devices_model), devices_device_id, match=algorithm_identifier(devices_model))
        )
        devices_device = _reference(devices_device_id)
        algorithms.append(devices_device)

    results: list[Reference] = []
    for finding in reported.findings:
        observation = build_observation(
            finding, study_instance_uid=uid, subject=subject, device=device, derived_from=studies,
            effective=effective, issued=issued,
        )
        observation_id = resource_uuid("Observation", uid, version, finding.code)
        entries.append(_entry(observation, observation_id, match=observation_identifier(uid, version, finding.code)))
        results.append(_reference(observation_id))
    for device_finding in reported.devices:
        observation = build_device_observation(
            device_finding, study_instance_uid=uid, model_version=version, demo_weights=devices_model.demo_weights,
            subject=subject, algorithm=devices_device, derived_from=studies[:1], effective=effective, issued=issued,
        )
        observation_id = resource_uuid("Observation", uid, version, device_finding.code)
        entries.append(
            _entry(observation, observation_id, match=observation_identifier(uid, version, device_finding.code))
        )
        results.append(_reference(observation_id))

    report = build_diagnostic_report(
        study, draft, reported, subject=subject, imaging_studies=studies, results=results,
        effective=effective, issued=issued, based_on=based_on, presented_html=presented_html, amends=amends,
    )
    entries.append(_entry(report, report_id, match=report_identifier(uid, version)))

    tag = provenance_tag(uid, version)
    provenance = build_provenance(
        targets=[_reference(report_id), *results],
        devices=algorithms,
        sources=studies,
        recorded=issued,
        tag=tag,
        # Logical (by identifier only): a server that never received the earlier report must still take this one.
        revises=conditional_reference("DiagnosticReport", report_identifier(uid, amends), resolve=False)
        if amends else None,
    )
    entries.append(_entry(provenance, resource_uuid("Provenance", uid, version), criteria=tag_criteria(tag)))
    return Bundle(id=resource_uuid("Bundle", uid, version), type="transaction", entry=entries)
