"""The CDS view of a published report: what the CDS Hooks service will show for the patient."""

from __future__ import annotations

from datetime import datetime

from hilum.common.cds_view import CdsDevice, CdsFinding, CdsView
from hilum.common.reported_findings import ReportedFindings
from hilum.common.study import StudyInfo
from hilum.reporting.draft import device_text, impression_text
from hilum.v1 import messages_pb2


def cds_view_of(study: StudyInfo, reported: ReportedFindings, draft: messages_pb2.DraftReport,
                diagnostic_report_id: str, published_at: datetime, patient_system: str,
                amends: str | None = None) -> CdsView:
    """The view for the study's patient: the draft's impression, every reported finding in report order, and every
    reported tube or line with its report sentence.

    published_at: timezone-aware; it dates the view when the study has no start time.
    patient_system: the identifier system of the DICOM PatientID (HILUM_FHIR__PATIENT_IDENTIFIER_SYSTEM).
    amends: the model version of the study's earlier result this one supersedes, if any.
    """
    uid = study.study_instance_uid
    if reported.study_instance_uid != uid:
        raise ValueError(f"reported findings are for study {reported.study_instance_uid}, not {uid}")
    return CdsView(
        patient_id=study.patient.patient_id,
        patient_system=patient_system,
        study_instance_uid=uid,
        study_date=(study.started or published_at).date(),
        study_time=study.started.time() if study.started else None,
        impression=impression_text(draft),
        findings=[CdsFinding.of(f) for f in reported.findings],
        devices=[
            CdsDevice(code=d.code, display=d.display, position=d.position if d.position_called else None,
                      tip_distance_mm=d.tip_distance_mm, landmark=d.landmark, text=device_text(d, reported.prior))
            for d in reported.devices
        ],
        prior_study_date=reported.prior.study_date if reported.compared and reported.prior else None,
        demo_weights=reported.model.demo_weights,
        model_name=reported.model.name,
        model_version=reported.model.version,
        diagnostic_report_id=diagnostic_report_id,
        published_at=published_at,
        amends_model_version=amends,
    )
