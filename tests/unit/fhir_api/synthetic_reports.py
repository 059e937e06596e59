"""Synthetic published reports for the FHIR read API tests and benchmark: real bundles from build_report_bundle.

Report n belongs to patient n % patients; study n started on day n (from 2024-01-01) at 08:00 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from hilum.common.fhir.bundle import build_report_bundle
from hilum.common.fhir.validation import bundle_json
from hilum.common.reported_findings import reported_findings
from hilum.common.study import InstanceInfo, PatientInfo, StudyInfo
from hilum.v1 import messages_pb2

MRN_SYSTEM = "urn:oid:1.2.3.4.5.6"
FIRST_DAY = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SyntheticReport:
    """One report's bundle (JSON) and what the tests search it by."""

    index: int
    mrn: str
    study_uid: str
    started: datetime
    bundle: dict[str, Any]

    def resource_ids(self, resource_type: str) -> list[str]:
        """The urn:uuid ids of the bundle's resources of one type."""
        return [entry["fullUrl"].removeprefix("urn:uuid:") for entry in self.bundle["entry"]
                if entry["resource"]["resourceType"] == resource_type]


def mrn(patient: int) -> str:
    """The MRN of synthetic patient number `patient`."""
    return f"MRN-{patient:05d}"


def _study(index: int, patient: int) -> StudyInfo:
    uid = f"1.2.826.0.1.3680043.8.498.{100000 + index}"
    instance = InstanceInfo(sop_instance_uid=f"{uid}.1.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
                            series_instance_uid=f"{uid}.1", series_number=1, instance_number=1, modality="DX",
                            view_position="PA", rows=2048, columns=2048, pixel_spacing_mm=(0.139, 0.139))
    return StudyInfo(study_instance_uid=uid,
                     patient=PatientInfo(patient_id=mrn(patient), issuer="", name="TEST^PATIENT", birth_date=None,
                                         sex="O"),
                     started=FIRST_DAY + timedelta(days=index), accession_number=f"ACC{index}",
                     description="XR CHEST PA", instances=(instance,))


def _comparison(uid: str, index: int) -> messages_pb2.PriorComparison:
    def finding(code: str, display: str, probability: float) -> messages_pb2.Finding:
        state = messages_pb2.FINDING_STATE_PRESENT if probability >= 0.5 else messages_pb2.FINDING_STATE_ABSENT
        return messages_pb2.Finding(code=code, display=display, probability=probability, threshold=0.5, state=state)

    return messages_pb2.PriorComparison(current=messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=uid),
        model=messages_pb2.ModelInfo(name="cxr_findings", version="demo-untrained", demo_weights=True),
        findings=[finding("pneumothorax", "Pneumothorax", 0.9 if index % 7 == 0 else 0.1),
                  finding("effusion", "Pleural effusion", 0.7)]))


@cache
def synthetic_report(index: int, patients: int) -> SyntheticReport:
    """Report number `index` of a population of `patients` patients (built once; copy the bundle to change it)."""
    patient = index % patients
    study = _study(index, patient)
    comparison = _comparison(study.study_instance_uid, index)
    draft = messages_pb2.DraftReport(study_instance_uid=study.study_instance_uid, model=comparison.current.model,
                                     text="FINDINGS: none.\nIMPRESSION: No acute abnormality.")
    assert study.started is not None
    bundle = build_report_bundle(study, reported_findings(comparison), draft, prior_study=None,
                                 issued=study.started + timedelta(hours=1), patient_identifier_system=MRN_SYSTEM)
    return SyntheticReport(index, mrn(patient), study.study_instance_uid, study.started, bundle_json(bundle))
