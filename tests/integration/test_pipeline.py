"""The whole pipeline for real: private Redis, Triton and PostgreSQL, the five services and the CDS app.

Studies go in over gRPC; FHIR bundles, study status and CDS cards come out, and every result is delivered
to a real FHIR server (Medplum), an HL7 v2 interface engine (an MLLP listener) and a PACS (Orthanc).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pydicom
import pytest

from hilum.common import study_state
from hilum.common.connections import open_object_store, open_sessions
from hilum.common.db import deliveries, results
from hilum.common.db.session import upgrade_database
from hilum.common.destinations import DeliveryEvent
from hilum.common.fhir.identifiers import RFC3986, report_identifier_value
from hilum.common.fhir.validation import validate_bundle
from hilum.common.grpc_server import channel_options
from hilum.common.polling import wait_until
from hilum.common.queue import Stage, create_celery_app, enqueue
from hilum.common.settings import (
    FhirDestination,
    MllpDestination,
    PacsDestination,
    PublishSection,
    settings_env,
)
from hilum.ingestion.client import IngestionClient
from hilum.publishing.oru import validate_oru
from hilum.publishing.senders import oru_control_id
from hilum.publishing.structured_report import sr_sop_instance_uid
from hilum.runtime.fhir_peer import FhirPeer
from hilum.runtime.local_issuer import LocalIssuer
from hilum.runtime.orthanc import OrthancServer
from hilum.runtime.ports import loopback_settings
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_sample_studies
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.v1 import inference_pb2_grpc, ingestion_pb2, messages_pb2, priors_pb2_grpc, reporting_pb2_grpc
from tests.helpers import REPO_ROOT, new_database, reference_values, resources_of
from tests.mllp_peer import MllpPeer, control_id

pytestmark = pytest.mark.integration

RC = ingestion_pb2.RejectionCode
REPORTED = study_state.REPORTED
DEMO = "DEMO WEIGHTS — NOT FOR CLINICAL USE"


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    """The EHR's JWT issuer, trusted by the stack's CDS Hooks service."""
    with LocalIssuer() as local:
        yield local


@pytest.fixture(scope="module")
def engine() -> Iterator[MllpPeer]:
    """The hospital's HL7 v2 interface engine."""
    with MllpPeer() as peer:
        yield peer


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """The PACS the structured reports go to (by STOW-RS)."""
    with OrthancServer(tmp_path_factory.mktemp("pacs"), ae_title="PACS") as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_server: str,
          demo_model_repository: Path, issuer: LocalIssuer, fhir_peer: FhirPeer, engine: MllpPeer,
          pacs: OrthancServer) -> Iterator[EmbeddedStack]:
    """The embedded stack on free ports, over PostgreSQL, with the demo-weights model repository, publishing
    to the FHIR server, the interface engine and the PACS.
    """
    root = tmp_path_factory.mktemp("stack")
    database = new_database(postgres_server)
    settings = loopback_settings(root, demo_model_repository, REPO_ROOT / ".venv-triton", database)
    settings.cds.trusted_issuers = [issuer.trusted_issuer]
    settings.publish = PublishSection(
        fhir_server=FhirDestination(url=fhir_peer.base_url, max_entries_per_transaction=8),
        mllp=MllpDestination(host="127.0.0.1", port=engine.port, timeout_s=10),
        pacs=PacsDestination(stow_url=f"{pacs.dicomweb_url}/studies"),
        backoff_base_s=0.5, backoff_max_s=2.0,
    )
    upgrade_database(settings.database_url)
    with EmbeddedStack(settings) as running:
        yield running


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_sample_studies(tmp_path_factory.mktemp("samples"), rows=640, columns=512)


@pytest.fixture(scope="module")
def client(stack: EmbeddedStack) -> Iterator[IngestionClient]:
    grpc = stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as ingestion:
        yield ingestion


@pytest.fixture(scope="module")
def processed(client: IngestionClient, samples: list[Path]) -> dict[str, ingestion_pb2.StudyStatus]:
    """Every sample study submitted at once, as a PACS would, and waited for."""
    results = client.submit_files(samples)
    assert all(r.accepted for r in results), [r.rejection.reason for r in results]
    return client.wait_for([r.study_instance_uid for r in results], timeout_s=240)


def _headers(paths: list[Path]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def test_every_sample_study_is_reported_with_a_valid_bundle(processed: dict[str, ingestion_pb2.StudyStatus],
                                                            samples: list[Path]) -> None:
    assert len(processed) == len(samples)
    for status in processed.values():
        assert status.state == REPORTED, status.error
        bundle = json.loads(Path(status.result.bundle_path).read_text())
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        assert validate_bundle(bundle) == []
        full_urls = {e["fullUrl"] for e in bundle["entry"]}
        references = [v for v in reference_values(bundle) if v.startswith("urn:uuid:")]
        assert references and set(references) <= full_urls
        report = resources_of(bundle, "DiagnosticReport")[0]
        assert report["status"] == "preliminary"
        assert report["conclusion"].startswith(DEMO)
        device = resources_of(bundle, "Device")[0]
        assert "DEMO" in json.dumps(device) and device["version"][0]["value"] == "demo-untrained"
        assert status.result.model.demo_weights


def test_every_result_reaches_every_destination_exactly_once(
    stack: EmbeddedStack, processed: dict[str, ingestion_pb2.StudyStatus], fhir_peer: FhirPeer, engine: MllpPeer,
    pacs: OrthancServer,
) -> None:
    """Each reported study: one ORU (valid v2.5.1), one DiagnosticReport on the FHIR server, one SR in the PACS,
    and its report served by Hilum's own FHIR read API."""
    reported = {uid: status.result.model.version for uid, status in processed.items()}
    sessions = open_sessions(stack.settings)

    def delivered() -> bool:
        with sessions() as session:
            rows = [r for r in deliveries.listing(session, limit=10_000) if r.study_instance_uid in reported]
        assert not [r.last_error for r in rows if r.status == "dead"]
        return len(rows) == 3 * len(reported) and all(r.status == "delivered" for r in rows)

    wait_until(delivered, 180, 0.5, "every delivery of every sample study")
    received = [control_id(message) for message in engine.received]
    fhir = stack.endpoints.fhir if stack.endpoints is not None else None
    assert fhir is not None
    with httpx.Client(timeout=30) as http:
        for uid, version in reported.items():
            assert received.count(oru_control_id(uid, version, DeliveryEvent.PRELIMINARY)) == 1
            identifier = f"{RFC3986}|{report_identifier_value(uid, version)}"
            on_server = http.get(f"{fhir_peer.base_url}/DiagnosticReport", params={"identifier": identifier}).json()
            assert len(on_server.get("entry", [])) == 1
            in_hilum = http.get(f"{fhir}/DiagnosticReport", params={"identifier": identifier}).json()
            assert [e["resource"]["status"] for e in in_hilum["entry"]] == ["preliminary"]
            sr = http.get(f"{pacs.dicomweb_url}/instances",
                          params={"SOPInstanceUID": sr_sop_instance_uid(uid, version)}).json()
            assert len(sr) == 1
    for message in engine.received:
        assert validate_oru(message.decode()) == []


def test_the_prior_study_is_referenced(processed: dict[str, ingestion_pb2.StudyStatus],
                                       samples: list[Path]) -> None:
    by_patient: dict[str, list[pydicom.Dataset]] = {}
    for header in _headers(samples):
        by_patient.setdefault(header.PatientID, []).append(header)
    pairs = [sorted(h, key=lambda d: d.StudyDate) for h in by_patient.values() if len(h) == 2]
    assert pairs, "the sample set must hold a patient with a prior study"
    prior, current = pairs[0]
    status = processed[current.StudyInstanceUID]
    bundle = json.loads(Path(status.result.bundle_path).read_text())
    study_uids = {i["value"] for s in resources_of(bundle, "ImagingStudy") for i in s["identifier"]}
    assert f"urn:oid:{prior.StudyInstanceUID}" in study_uids
    report = resources_of(bundle, "DiagnosticReport")[0]
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    referenced = {by_url[r["reference"]]["identifier"][0]["value"] for r in report["imagingStudy"]}
    assert f"urn:oid:{prior.StudyInstanceUID}" in referenced
    assert status.result.draft.comparison not in ("", "None.")
    # ...and the prior itself, reported first or not, has no prior of its own.
    assert processed[prior.StudyInstanceUID].result.draft.comparison == "None."


def test_patient_view_returns_demo_cards(stack: EmbeddedStack, processed: dict[str, ingestion_pb2.StudyStatus],
                                        samples: list[Path], issuer: LocalIssuer) -> None:
    discovery = httpx.get(f"{stack.cds_url}/cds-services").json()
    service = next(s for s in discovery["services"] if s["hook"] == "patient-view")
    mrn_system = stack.settings.fhir.patient_identifier_system
    url = f"{stack.cds_url}/cds-services/{service['id']}"

    def signed() -> dict[str, str]:
        """A fresh bearer JWT per call, as the EHR sends (a jti is single-use)."""
        return {"Authorization": f"Bearer {issuer.token(url)}"}

    def request(fhir_id: str, mrn: str) -> dict[str, object]:
        """patient-view as an EHR sends it: its own Patient id, the Patient (with the MRN) prefetched."""
        return {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/1", "patientId": fhir_id},
                "prefetch": {"patient": {"resourceType": "Patient", "id": fhir_id,
                                         "identifier": [{"system": mrn_system, "value": mrn}]}}}

    for header in _headers(samples):
        body = request("ehr-1", header.PatientID)
        response = httpx.post(url, json=body, headers=signed())
        assert response.status_code == 200
        cards = response.json()["cards"]
        assert len(cards) == 1
        card = cards[0]
        uuid.UUID(card["uuid"])
        assert len(card["summary"]) < 140 and card["summary"].startswith("DEMO")
        assert card["indicator"] in {"info", "warning"}  # demo weights never raise a critical card
        assert card["source"]["label"]
    unknown = request("ehr-2", "no-such-patient")
    assert httpx.post(url, json=unknown, headers=signed()).json() == {"cards": []}
    without_patient = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                       "context": {"userId": "Practitioner/1", "patientId": "ehr-3"}}
    assert httpx.post(url, json=without_patient, headers=signed()).status_code == 412
    unsigned = httpx.post(url, json=unknown)
    assert unsigned.status_code == 401 and unsigned.json() == {"error": "unauthorized"}


def test_same_study_twice_yields_one_report(stack: EmbeddedStack, client: IngestionClient,
                                            processed: dict[str, ingestion_pb2.StudyStatus],
                                            samples: list[Path]) -> None:
    uid = _headers(samples[:1])[0].StudyInstanceUID
    again = client.submit_files(samples[:1])
    assert again[0].accepted and again[0].duplicate
    # A redelivered reporting message (same study, same model version) publishes nothing new.
    first = processed[uid].result
    grpc_settings = stack.settings.grpc
    with grpc.insecure_channel(grpc_settings.address(grpc_settings.reporting_port),
                               options=channel_options(grpc_settings.max_message_bytes)) as channel:
        with open_sessions(stack.settings)() as session:
            findings = results.load_findings(session, uid, first.model.version)
        assert findings is not None
        comparison = messages_pb2.PriorComparison(current=findings)
        repeat = reporting_pb2_grpc.ReportingServiceStub(channel).Publish(comparison, timeout=30)
    assert repeat.status == messages_pb2.PublishStatus.PUBLISH_STATUS_ALREADY_PUBLISHED
    assert repeat.diagnostic_report_id == first.diagnostic_report_id
    with open_sessions(stack.settings)() as session:
        assert results.count_reports(session, uid) == 1
    assert client.status(uid).state == REPORTED


def test_bad_input_is_rejected_and_the_rest_complete(stack: EmbeddedStack, client: IngestionClient,
                                                     tmp_path: Path) -> None:
    bad = write_rejectable_inputs(tmp_path / "bad")
    good = write_sample_studies(tmp_path / "good", rows=320, columns=256)
    # Re-label the good sample as a new study of a new patient, so it is processed in this test and
    # joins no sample patient's history.
    dataset = pydicom.dcmread(good[0])
    dataset.PatientID = "SYN-BAD-INPUT-RUN"
    dataset.StudyInstanceUID = pydicom.uid.generate_uid()
    dataset.SeriesInstanceUID = pydicom.uid.generate_uid()
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    fresh = tmp_path / "fresh.dcm"
    dataset.save_as(fresh)

    results = client.submit_files([bad["not_dicom"], bad["ct_image"], fresh, bad["no_pixel_data"]])
    codes = {r.label: r.rejection.code for r in results if not r.accepted}
    assert codes == {bad["not_dicom"].name: RC.REJECTION_CODE_NOT_DICOM,
                     bad["ct_image"].name: RC.REJECTION_CODE_UNSUPPORTED_MODALITY,
                     bad["no_pixel_data"].name: RC.REJECTION_CODE_NO_PIXEL_DATA}
    assert all(r.rejection.reason for r in results if not r.accepted)
    accepted = [r for r in results if r.accepted]
    assert [r.label for r in accepted] == ["fresh.dcm"]
    assert client.wait_for([accepted[0].study_instance_uid], timeout_s=120)[
        accepted[0].study_instance_uid].state == REPORTED

    # The CLI says the same thing, and exits 2 because something was rejected.
    env = {**os.environ, **settings_env(stack.settings)}
    cli = subprocess.run([sys.executable, "-m", "hilum.cli", "ingest", str(tmp_path / "bad")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert cli.returncode == 2, cli.stderr
    assert cli.stdout.count("REJECTED") == 3
    assert "[UNSUPPORTED_MODALITY]" in cli.stdout and "[NO_PIXEL_DATA]" in cli.stdout
    *per_file, summary = cli.stdout.splitlines()  # each file's line, as it is stored, counts the batch
    assert [line.split("] ")[0] for line in per_file] == [f"[{n}/{len(per_file)}" for n in range(1, len(per_file) + 1)]
    assert summary.endswith(" rejected")


def test_logs_hold_no_patient_data_or_uids(stack: EmbeddedStack, processed: dict[str, ingestion_pb2.StudyStatus],
                                          samples: list[Path]) -> None:
    logs = {p.name: p.read_text(errors="replace") for p in stack.log_dir.glob("*.log")}
    assert "inference-worker.log" in logs and "study_ref" in logs["inference-worker.log"]
    for header in _headers(samples):
        identifying = [header.StudyInstanceUID, header.SOPInstanceUID, header.PatientID, str(header.PatientName)]
        for name, text in logs.items():
            leaked = [value for value in identifying if value in text]
            assert not leaked, f"{name} contains patient data or UIDs"


def test_every_grpc_door_answers_like_the_queue(stack: EmbeddedStack,
                                                processed: dict[str, ingestion_pb2.StudyStatus]) -> None:
    """Infer, Compare and Draft over gRPC give what the queued pipeline stored (same core functions)."""
    uid, status = next((u, s) for u, s in processed.items() if s.result.draft.comparison not in ("", "None."))
    with open_sessions(stack.settings)() as session:
        stored = results.load_findings(session, uid, status.result.model.version)
    assert stored is not None
    grpc_settings = stack.settings.grpc
    options = channel_options(grpc_settings.max_message_bytes)

    def channel(port: int) -> grpc.Channel:
        return grpc.insecure_channel(grpc_settings.address(port), options=options)

    with channel(grpc_settings.inference_port) as inference:
        findings = inference_pb2_grpc.InferenceServiceStub(inference).Infer(stored.study, timeout=60)
    assert findings == stored  # the stored result for (study, model version), not a second one
    with channel(grpc_settings.priors_port) as priors:
        comparison = priors_pb2_grpc.PriorsServiceStub(priors).Compare(findings, timeout=30)
    assert comparison.HasField("prior") and comparison.prior.findings
    with channel(grpc_settings.reporting_port) as reporting:
        draft = reporting_pb2_grpc.ReportingServiceStub(reporting).Draft(comparison, timeout=30)
    assert draft.text == status.result.draft.text


def test_spooled_instances_enter_through_the_ingestion_queue(stack: EmbeddedStack, client: IngestionClient,
                                                             tmp_path: Path) -> None:
    """A listener that spools files and enqueues SpooledInstances gets the same pipeline as SubmitInstances."""
    path = write_sample_studies(tmp_path, rows=256, columns=200)[3]
    dataset = pydicom.dcmread(path)
    dataset.PatientID = "SYN-SPOOLED-RUN"  # a patient of its own: no sample patient gains a study
    dataset.StudyInstanceUID = pydicom.uid.generate_uid()
    dataset.SeriesInstanceUID = pydicom.uid.generate_uid()  # a series UID held in another study is refused
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    dataset.save_as(path)
    store = open_object_store(stack.settings)
    store.put("spool/listener-1.dcm", path.read_bytes())
    enqueue(create_celery_app(stack.settings), Stage.INGESTION,
            messages_pb2.SpooledInstances(spool_keys=["spool/listener-1.dcm"]))
    wait_until(lambda: client.status(dataset.StudyInstanceUID).state == REPORTED, timeout_s=120, interval_s=0.5,
               what="the spooled study reported")
    assert not store.exists("spool/listener-1.dcm")


def test_waiting_stops_when_the_check_fails(client: IngestionClient) -> None:
    """The demo's wait gives up at once when a stage process has died, instead of timing out."""

    def stage_died() -> None:
        raise RuntimeError("inference-worker stopped")

    with pytest.raises(RuntimeError, match="inference-worker stopped"):
        client.wait_for(["1.2.3.4.5"], timeout_s=60, check=stage_died)
