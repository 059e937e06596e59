"""Reporting's one implementation: draft the report, build and validate the FHIR bundle, publish it.

Called by the gRPC Draft/Publish methods and by the Celery task on the "reporting" queue. Publishing
is idempotent by (Study Instance UID, model version): the report row, its resources for the FHIR read
API, the bundle file, the CDS view and one planned delivery per configured destination are written in
one database transaction, and a repeat returns the stored result (with the same deliveries, handed on
again) unchanged.

A report of a study already reported under another model version (a reprocessed study) supersedes the
earlier one: it is published as "amended", naming the earlier report as the one it revises; the earlier
report is cancelled in the FHIR read API and at the FHIR server in the same transaction, and the CDS view
moves to the new one (it is the later publication of the same study).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.atomic_file import stage_file
from hilum.common.cds_view import write_view
from hilum.common.db import deliveries, results, studies
from hilum.common.db.models import ReportRow
from hilum.common.destinations import DeliveryEvent, Destination
from hilum.common.errors import PermanentError
from hilum.common.fhir.bundle import build_report_bundle
from hilum.common.fhir.order import order_reference
from hilum.common.fhir.validation import validate_built_bundle
from hilum.common.logs import study_ref
from hilum.common.reported_findings import reported_findings
from hilum.common.settings import FhirSection
from hilum.fhir_api.store import set_status, store_bundle, stored_status
from hilum.reporting.cds_summary import cds_view_of
from hilum.reporting.draft import Examination, draft_report, render_html
from hilum.v1 import messages_pb2

log = logging.getLogger(__name__)

# A superseded report is withdrawn where it was published as a resource of its own (the FHIR server).
SUPERSEDED_DESTINATIONS = frozenset({Destination.FHIR_SERVER})
# Statuses of a report that no longer stands (None: not in the read store); a new report does not amend one.
WITHDRAWN = frozenset({None, "cancelled", "entered-in-error"})


def bundle_file_name(study_instance_uid: str, model_version: str) -> str:
    """<study uid>.<model version>.bundle.json — one file per report, never overwritten by another version."""
    return f"{study_instance_uid}.{model_version}.bundle.json"


class Reporting:
    """Turns a prior comparison into a published preliminary report."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        output_dir: Path,
        cds_cache: redis.Redis,
        fhir: FhirSection,
        destinations: tuple[Destination, ...] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._output_dir = output_dir
        self._cds_cache = cds_cache
        self._fhir = fhir
        self._destinations = destinations
        self._clock = clock

    def draft(self, comparison: messages_pb2.PriorComparison) -> messages_pb2.DraftReport:
        """The draft only (with the study's examination when Hilum holds the study); nothing is stored."""
        with self._sessions() as session:
            study = studies.study_info(session, comparison.current.study.study_instance_uid)
        return draft_report(reported_findings(comparison), Examination.of(study) if study is not None else None)

    def publish(self, comparison: messages_pb2.PriorComparison) -> messages_pb2.PublishResult:
        """Draft, build, validate and publish; a repeat for the same (study, model version) publishes nothing."""
        uid = comparison.current.study.study_instance_uid
        version = comparison.current.model.version
        try:
            with self._sessions.begin() as session:
                existing = results.load_report(session, uid, version)
                if existing is not None:
                    return _already_published(existing)
                result = self._publish_in(session, comparison)
        except IntegrityError:  # a concurrent redelivery published first: its report stands
            with self._sessions() as session:
                existing = results.load_report(session, uid, version)
            if existing is None:
                raise
            return _already_published(existing)
        log.info("report published", extra={"study_ref": study_ref(uid), "model_version": version})
        return result

    def _publish_in(self, session: Session, comparison: messages_pb2.PriorComparison) -> messages_pb2.PublishResult:
        uid = comparison.current.study.study_instance_uid
        version = comparison.current.model.version
        study = studies.study_info(session, uid)
        if study is None:
            raise PermanentError("study not found in Hilum's store")
        prior_study = (
            studies.study_info(session, comparison.prior.study_instance_uid)
            if comparison.HasField("prior")
            else None
        )
        reported = reported_findings(comparison)
        draft = draft_report(reported, Examination.of(study))
        issued = self._clock()
        superseded = _superseded(session, uid)
        amends = superseded.model_version if superseded is not None else None
        bundle = build_report_bundle(
            study, reported, draft, prior_study=prior_study, issued=issued,
            patient_identifier_system=self._fhir.patient_identifier_system, create_patient=self._fhir.create_patient,
            based_on=order_reference(study, self._fhir), presented_html=render_html(draft), amends=amends,
        )
        data, problems = validate_built_bundle(bundle)
        if problems:
            raise PermanentError("FHIR bundle failed validation: " + "; ".join(problems[:5]))
        report_id = _diagnostic_report_id(data)
        path = (self._output_dir / bundle_file_name(uid, version)).resolve()
        text = json.dumps(data, indent=2, ensure_ascii=False)
        result = messages_pb2.PublishResult(
            study_instance_uid=uid,
            model=comparison.current.model,
            status=messages_pb2.PublishStatus.PUBLISH_STATUS_PUBLISHED,
            diagnostic_report_id=report_id,
            bundle_path=str(path),
            draft=draft,
            amends_model_version=amends or "",
        )
        # The file is written and synced before the row claims (study, version), and put in place after: the
        # database's write lock (SQLite's covers the whole file) is not held while it reaches the disk.
        with stage_file(path, text.encode("utf-8")) as bundle_file:
            row = ReportRow(
                study_instance_uid=uid, model_version=version, diagnostic_report_id=report_id,
                bundle_json=text, bundle_path=str(path), comparison=comparison.SerializeToString(),
                payload=result.SerializeToString(),
            )
            session.add(row)
            session.flush()  # claims (study, version) before anything is put in place outside the database
            store_bundle(session, data, issued)  # what the FHIR read API serves, in the same transaction
            # Store first, then enqueue: the deliveries are planned in this transaction, handed on after it.
            result.deliveries.extend(
                deliveries.plan(session, uid, version, self._destinations, DeliveryEvent.PRELIMINARY)
            )
            if superseded is not None:
                result.deliveries.extend(self._withdraw(session, superseded, issued))
            row.payload = result.SerializeToString()
            bundle_file.publish()
            write_view(self._cds_cache, cds_view_of(study, reported, draft, report_id, issued,
                                                    self._fhir.patient_identifier_system, amends))
            studies.advance(session, uid, study_state.REPORTED)
            return result


    def _withdraw(self, session: Session, superseded: ReportRow, now: datetime) -> list[messages_pb2.DeliveryRequest]:
        """Cancel the superseded report in the FHIR read API and plan its cancellation at the FHIR server. HL7 v2
        gets none: the new report's ORU is a correction (OBR-25 C) of the same order, which replaces it there."""
        set_status(session, "DiagnosticReport", superseded.diagnostic_report_id, "cancelled", now)
        wanted = [d for d in self._destinations if d in SUPERSEDED_DESTINATIONS]
        return deliveries.plan(session, superseded.study_instance_uid, superseded.model_version, wanted,
                               DeliveryEvent.CANCELLED)


def _superseded(session: Session, uid: str) -> ReportRow | None:
    """The study's report that a new one (of another model version) supersedes: its latest, unless withdrawn."""
    latest = results.latest_report(session, uid)
    if latest is None or stored_status(session, "DiagnosticReport", latest.diagnostic_report_id) in WITHDRAWN:
        return None
    return latest


def _already_published(row: ReportRow) -> messages_pb2.PublishResult:
    result = messages_pb2.PublishResult.FromString(row.payload)
    result.status = messages_pb2.PublishStatus.PUBLISH_STATUS_ALREADY_PUBLISHED
    return result


def diagnostic_report_entry(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle's DiagnosticReport entry (fullUrl and resource); PermanentError when it has none."""
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        if entry["resource"]["resourceType"] == "DiagnosticReport":
            return dict(entry)
    raise PermanentError("the bundle has no DiagnosticReport")


def _diagnostic_report_id(bundle: dict[str, Any]) -> str:
    """The id of the bundle's DiagnosticReport (its urn:uuid, stable for the study and model version)."""
    return str(diagnostic_report_entry(bundle)["fullUrl"]).removeprefix("urn:uuid:")
