"""`hilum demo`: bring up the embedded stack, run the bundled sample studies end to end, print what came out."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.connections import open_sessions
from hilum.common.db import studies
from hilum.common.settings import HilumSettings
from hilum.common.wording import DEMO_NOTICE
from hilum.ingestion.client import IngestionClient, rejection_line
from hilum.runtime.endpoints import endpoints_path
from hilum.runtime.local_issuer import LocalIssuer
from hilum.runtime.stack import preflight
from hilum.runtime.up import StopSignals, door_lines, prepare_stack, running_stack, say_now, supervise
from hilum.samples.dicom_files import write_sample_studies
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.v1 import ingestion_pb2

Print = Callable[[str], None]
PATIENT_VIEW = "hilum-cxr-patient-view"
DEMO_ISSUER = "https://ehr.demo.hilum.local"


def prepare(settings: HilumSettings, fresh: bool, say: Print) -> list[Path]:
    """What `hilum up` prepares (database schema, model weights), then the sample files; returns the files
    to submit.
    """
    prepare_stack(settings, fresh, say)
    samples = settings.storage.data_dir / "samples"
    files = write_sample_studies(samples)
    rejectable = write_rejectable_inputs(samples / "rejectable")
    return [*files, *sorted(rejectable.values())]


def patient_view_cards(cds_url: str, patient_id: str, mrn_system: str, token: str) -> list[dict[str, object]]:
    """The cards an EHR would get for this patient on opening the chart: it prefetches its Patient, whose MRN
    (system and value) is the DICOM PatientID, and signs the call with `token` (a CDS Hooks bearer JWT).
    """
    fhir_id = "demo-" + uuid.uuid5(uuid.NAMESPACE_URL, f"{mrn_system}|{patient_id}").hex[:12]
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/hilum-demo", "patientId": fhir_id},
        "prefetch": {"patient": {"resourceType": "Patient", "id": fhir_id,
                                 "identifier": [{"system": mrn_system, "value": patient_id}]}},
    }
    response = httpx.post(f"{cds_url}/cds-services/{PATIENT_VIEW}", json=body, timeout=10.0,
                          headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    cards: list[dict[str, object]] = response.json()["cards"]
    return cards


def _trusting(settings: HilumSettings, issuer: LocalIssuer) -> HilumSettings:
    """`settings`, now also trusting `issuer`'s CDS Hooks JWTs."""
    settings.cds.trusted_issuers = [*settings.cds.trusted_issuers, issuer.trusted_issuer]
    return settings


def run_demo(settings: HilumSettings, keep_running: bool = False, fresh: bool = False,
             say: Print = say_now) -> int:
    """`hilum up`, the sample studies through it, a summary; the last line printed is the output folder.

    Returns the process exit code. Raises what `hilum up` raises (runtime.up.STACK_ERRORS), and
    runtime.up.Stopped when SIGTERM or SIGINT arrives before the summary (the stack is stopped first).
    """
    say("=" * 78)
    say(f"Hilum demo — {DEMO_NOTICE}")
    say("=" * 78)
    preflight(settings)
    files = prepare(settings, fresh, say)
    output_dir = settings.storage.output_dir.resolve()
    failures = 0
    # The demo plays the EHR, with its own JWT issuer; it is trusted before the stack starts, as the stack's
    # processes read their settings once, from the environment.
    with LocalIssuer(iss=DEMO_ISSUER) as issuer, StopSignals() as stop, \
            running_stack(_trusting(settings, issuer), stop) as stack:
        say("Stack up: Redis, Triton, ingestion/inference/priors/reporting/publishing (gRPC + worker), the "
            "assembler, the DICOM Storage SCP, CDS Hooks, the FHIR read API and STOW-RS; its doors are in "
            f"{endpoints_path(settings.storage.data_dir)}.")

        def still_running() -> None:
            stop.check()
            stack.check_alive()

        address = settings.grpc.address(settings.grpc.ingestion_port)
        with IngestionClient(address, settings.grpc.max_message_bytes, section=settings.grpc) as client:
            results = client.submit_files(files)
            say(f"\nSubmitted {len(files)} files:")
            for result in results:
                if result.accepted:
                    say(f"  accepted  {result.label}{' (already stored)' if result.duplicate else ''}")
                else:
                    say(f"  {rejection_line(result)}")
            uids = list(dict.fromkeys(r.study_instance_uid for r in results if r.accepted))
            statuses = client.wait_for(uids, check=still_running)
        sessions = open_sessions(settings)
        for number, uid in enumerate(uids, start=1):
            token = issuer.token(f"{settings.cds.base_url}/cds-services/{PATIENT_VIEW}")
            failures += _print_study(number, len(uids), statuses[uid], sessions, stack.cds_url,
                                     settings.fhir.patient_identifier_system, token, say)
        if keep_running:
            say("\nStack left running (SIGTERM or Ctrl-C stops it):")
            for line in door_lines(stack):
                say(line)
            supervise(stack, stop)
    say(f"\n{len(uids) - failures} of {len(uids)} studies reported; {DEMO_NOTICE}")
    say("FHIR transaction bundles are in:")
    say(str(output_dir))
    return 1 if failures else 0


def _print_study(number: int, total: int, status: ingestion_pb2.StudyStatus, sessions: sessionmaker[Session],
                 cds_url: str, mrn_system: str, token: str, say: Print) -> int:
    """One study's block of the summary (its CDS call signed with `token`); returns 1 if it failed."""
    with sessions() as session:
        study = studies.require_study_info(session, status.study_instance_uid)
    date = study.started.date().isoformat() if study.started else "unknown date"
    state = study_state.name_of(status.state)
    say(f"\nStudy {number}/{total}: patient {study.patient.patient_id}, {study.description or 'chest X-ray'}"
        f" of {date} — {state}")
    if status.state != study_state.REPORTED:
        say(f"  error: {status.error}")
        return 1
    result = status.result
    draft = result.draft
    if draft.model.demo_weights:
        say(f"  {DEMO_NOTICE}")
    say(f"  Model: {draft.model.name} {draft.model.version}")
    say(f"  Examination: {draft.examination}")
    say(f"  Comparison: {draft.comparison}")
    say("  Findings:")
    for sentence in draft.findings:
        say(f"    - {sentence.text}")
    say("  Impression: " + " ".join(s.text for s in draft.impression))
    say(f"  FHIR bundle: {result.bundle_path}")
    say(f"  FHIR read API: {cds_url}/fhir/DiagnosticReport/{result.diagnostic_report_id}")
    cards = patient_view_cards(cds_url, study.patient.patient_id, mrn_system, token)
    for card in cards:
        say(f"  CDS card for the patient's latest study [{card.get('indicator')}]: {card.get('summary')}")
    if not cards:  # e.g. reported before CDS views were keyed by MRN system: `hilum demo --fresh` rebuilds them
        say("  CDS: no card for this patient (run `hilum demo --fresh` to publish the results again)")
    return 0
