"""Small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import studies
from hilum.common.study import InstanceHeader, InstanceInfo, PatientInfo
from hilum.fhir_api.tables import FhirResourceRow
from hilum.runtime.fhir_peer import PEER_DIR
from hilum.v1 import messages_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
# The key of every study and patient reference (HMAC) the tests and the stacks they start make.
REFERENCE_KEY = "hilum-tests-reference-key"
# The MRN system test patients are filed under (the FHIR Hilum emits names it).
MRN_SYSTEM = "urn:oid:1.2.3.4.5"


def require_tool(name: str) -> str:
    """The path of an external tool (dcmtk's storescu, ...); the test is skipped where it is missing, except
    in CI (CI set), where a missing tool is a failure.
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/setup.sh --dev installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def cached_bytes(path: Path) -> int:
    """How much of a file the kernel's page cache holds (util-linux's fincore); the test is skipped where the page
    cache is the file itself (tmpfs), which nothing can drop."""
    kind = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True).stdout
    if kind.strip() in {"tmpfs", "ramfs"}:
        pytest.skip(f"{path.parent} is on {kind.strip()}: its files live in the page cache")
    output = subprocess.run([require_tool("fincore"), "--bytes", "--noheadings", "--raw", "--output", "RES",
                             str(path)], capture_output=True, text=True, check=True).stdout
    return int(output.strip())


def require_peer() -> None:
    """Skip where Node.js or the FHIR peer's packages are missing, except in CI (CI set), where that is a failure."""
    if shutil.which("node") is None or not (PEER_DIR / "node_modules").is_dir():
        message = "the FHIR peer is not installed (scripts/setup.sh --dev installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def new_database(server_url: str) -> str:
    """Create an empty database on the PostgreSQL server at server_url; returns its SQLAlchemy URL."""
    name = f"hilum_{uuid.uuid4().hex[:12]}"
    engine = create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server_url}/{name}"


def instance_info(study_uid: str, number: int = 1, view_position: str = "PA") -> InstanceInfo:
    """A stored DX instance of study_uid (UIDs derived from it), 64 x 52 pixels at 0.139 mm."""
    return InstanceInfo(
        sop_instance_uid=f"{study_uid}.{number}", sop_class_uid=DigitalXRayImageStorageForPresentation,
        series_instance_uid=f"{study_uid}.9{number}", series_number=number, instance_number=1, modality="DX",
        view_position=view_position, rows=64, columns=52, pixel_spacing_mm=(0.139, 0.139),
        object_key=f"dicom/{study_uid}/{number}.dcm",
    )


def study_header(study_uid: str, patient: PatientInfo, started: datetime | None, view_position: str = "PA",
                 number: int = 1) -> InstanceHeader:
    """The header of one instance of a chest study, as acceptance would read it."""
    return InstanceHeader(
        patient=patient, study_instance_uid=study_uid, study_started=started, accession_number="ACC1",
        study_description="XR CHEST PA", body_part="CHEST",
        instance=instance_info(study_uid, number, view_position),
    )


def record_study(sessions: sessionmaker[Session], study_uid: str, patient: PatientInfo, started: datetime | None,
                 view_positions: tuple[str, ...] = ()) -> None:
    """Record a study as ingestion would, with one stored instance per view position given."""
    with sessions.begin() as session:
        studies.ensure_study(session, study_header(study_uid, patient, started))
        for number, view in enumerate(view_positions, start=1):
            studies.add_instance(session, study_uid, instance_info(study_uid, number, view))


def demo_comparison(study_uid: str) -> messages_pb2.PriorComparison:
    """A comparison without a prior for study_uid under demo weights: a present pneumothorax, an absent edema."""
    present, absent = messages_pb2.FindingState.FINDING_STATE_PRESENT, messages_pb2.FindingState.FINDING_STATE_ABSENT
    current = messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=study_uid, frontal_object_key="dicom/x.dcm"),
        model=messages_pb2.ModelInfo(name="cxr_findings", version="demo-untrained", demo_weights=True),
        findings=[
            messages_pb2.Finding(code="pneumothorax", display="Pneumothorax", probability=0.8, threshold=0.5,
                                 state=present, snomed_code="36118008"),
            messages_pb2.Finding(code="edema", display="Pulmonary edema", probability=0.1, threshold=0.5,
                                 state=absent, snomed_code="19242006"),
        ],
    )
    return messages_pb2.PriorComparison(current=current)


def write_dicom(
    path: Path,
    pixels: npt.NDArray[np.uint16],
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    rescale: tuple[float, float] | None = None,
) -> Path:
    """Writes a DX image (uncompressed) with the given stored pixels; rescale is (slope, intercept)."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = DigitalXRayImageStorageForPresentation
    dataset.Modality = "DX"
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits_stored)
    if rescale is not None:
        dataset.RescaleSlope, dataset.RescaleIntercept = rescale
    dataset.save_as(path, enforce_file_format=True)
    return path


def reference_values(node: Any) -> Iterator[str]:
    """Every Reference.reference string in a FHIR JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from reference_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from reference_values(item)


def resources_of(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The resources of one type in a bundle's entries."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def audit_events(sessions: sessionmaker[Session], type_code: str | None = None) -> list[dict[str, Any]]:
    """The AuditEvents in Hilum's FHIR store, oldest first; with type_code, those of that type (e.g. "110107")."""
    with sessions() as session:
        texts = session.scalars(select(FhirResourceRow.resource).where(FhirResourceRow.resource_type == "AuditEvent")
                                .order_by(FhirResourceRow.seq))
        events = [json.loads(text) for text in texts]
    return [event for event in events if type_code is None or event["type"]["code"] == type_code]


def audited_patient_ids(event: dict[str, Any]) -> list[str]:
    """The identifier values of an AuditEvent's patient entities."""
    return [entity["what"]["identifier"]["value"] for entity in event.get("entity", [])
            if entity.get("role", {}).get("code") == "1" and "identifier" in entity["what"]]
