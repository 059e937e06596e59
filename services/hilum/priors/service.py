"""Priors' one implementation: find the patient's most recent earlier chest radiograph and compare findings.

Called by the gRPC Compare method and by the Celery task on the "priors" queue. Searches the configured sources in
order: Hilum's own store, a PACS (whose prior images it fetches for Hilum's models), a hospital FHIR server (whose
prior reports it reads).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy.orm import Session, sessionmaker

from hilum.audit.trail import AuditTrail
from hilum.common import study_state
from hilum.common.db import results, studies
from hilum.common.db.models import StudyRow
from hilum.common.errors import PermanentError, TransientError
from hilum.common.fhir.audit_event import (
    DESTINATION_ROLE,
    PRIOR_SUBTYPE,
    AuditAgent,
    AuditKind,
    AuditOutcome,
    AuditRecord,
)
from hilum.common.logs import study_ref
from hilum.common.study import StudyInfo
from hilum.common.tracing import study_span
from hilum.priors.candidate import PriorCandidate, PriorSource
from hilum.priors.comparison import compare_devices, compare_findings
from hilum.priors.pacs_source import PacsSource
from hilum.priors.report_findings import findings_of_report
from hilum.priors.report_labeler import label_report
from hilum.priors.sources import StoreSource
from hilum.v1 import messages_pb2

log = logging.getLogger(__name__)

# How often a study asks again for a prior still being ingested or analysed.
PRIOR_POLL_S = 2.0
# The two frontal projections; heart size is not compared between them (comparison.HEART_SIZE_CODES).
PROJECTIONS = frozenset({"AP", "PA"})


class Priors:
    """Attaches the prior study and the change per finding to a study's findings.

    sources: where to look, in order (priors.sources); the first that finds a prior is compared with. Hilum's own
    store ("store") gives the prior's model findings, image to image, and waits for a prior still in the pipeline;
    a PACS ("pacs") gives the prior's images, which are fetched into Hilum's store as a comparison-only study and
    analysed by its models, then compared image to image; a hospital FHIR server gives the prior's radiologist
    report, whose statements the labeler reads. A source that fails is logged and passed over: the study is compared
    without it, never held or failed. A prior is waited for at most prior_wait.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        prior_wait: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sources: Sequence[PriorSource] | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        self._sessions = sessions
        self._audit = audit or AuditTrail("priors")
        self._prior_wait = prior_wait
        self._clock = clock
        self._sources: Sequence[PriorSource] = sources if sources is not None else (StoreSource(sessions),)

    def compare(self, current: messages_pb2.StudyFindings) -> messages_pb2.PriorComparison:
        """The comparison with the prior; waits (by retry) while a recently received prior is still in flight."""
        uid = current.study.study_instance_uid
        with self._sessions() as session:
            study = studies.study_info(session, uid)
        if study is None:
            raise PermanentError("study not found in Hilum's store")
        comparison = messages_pb2.PriorComparison(current=current)
        for source in self._sources:
            # A PACS or a hospital server is asked outside any database transaction: it may take its timeout to answer.
            if source.name == StoreSource.name:
                with self._sessions() as session:
                    found = self._compare_with_store(session, study, comparison)
            elif isinstance(source, PacsSource):
                found = self._compare_with_pacs(source, study, comparison)
            else:
                found = self._compare_with_report(source, study, comparison)
            if found:
                break
        with self._sessions.begin() as session:
            studies.advance(session, uid, study_state.COMPARED)
        log.info("prior compared", extra={"study_ref": study_ref(uid), "has_prior": comparison.HasField("prior"),
                                          "prior_source": comparison.prior.source})
        return comparison

    def _compare_with_store(self, session: Session, study: StudyInfo, comparison: messages_pb2.PriorComparison) -> bool:
        """The prior in Hilum's store, compared image to image (_compare_images); False when the store holds none."""
        prior_row = studies.find_prior(session, study)
        self._audit.record_now(self._sessions, self._query_record(
            StoreSource.name, study, prior_row.study_instance_uid if prior_row is not None else "", None))
        if prior_row is None:
            return False
        self._compare_images(session, prior_row, comparison, StoreSource.name,
                             "the patient's most recent earlier study in Hilum's store")
        return True

    def _compare_images(self, session: Session, prior_row: StudyRow, comparison: messages_pb2.PriorComparison,
                        source: str, reason: str) -> None:
        """The model's findings on a prior in Hilum's store, compared finding by finding and device by device with the
        current study's. Raises TransientError while the prior is still being analysed (within prior_wait)."""
        current = comparison.current
        prior = comparison.prior
        prior.study_instance_uid = prior_row.study_instance_uid
        prior.study_date = prior_row.started.strftime("%Y%m%d") if prior_row.started else ""
        prior.source, prior.reason = source, reason
        prior_findings = results.load_findings(session, prior_row.study_instance_uid, current.model.version)
        if prior_findings is not None:
            prior.findings.extend(prior_findings.findings)
            prior.devices.extend(prior_findings.devices)
            views = {studies.view_of_object(session, findings.analysed_object_key)
                     for findings in (current, prior_findings)}
            comparison.changes.extend(compare_findings(current.findings, prior_findings.findings,
                                                       heart_size_comparable=not PROJECTIONS <= views))
            if current.HasField("devices_model") and prior_findings.HasField("devices_model"):
                comparison.device_changes.extend(compare_devices(current.devices, prior_findings.devices))
        elif self._still_in_flight(prior_row):
            raise TransientError("the prior study is still being analysed", retry_after_s=PRIOR_POLL_S)

    def _compare_with_pacs(self, source: PacsSource, study: StudyInfo,
                           comparison: messages_pb2.PriorComparison) -> bool:
        """The PACS's prior, compared image to image once Hilum's store holds it and its findings; False when the PACS
        has none or fails.

        A prior not yet in the store is fetched (once) and waited for, by TransientError, while it is ingested and
        analysed. One fetched more than prior_wait ago that never reached the store (ingestion refused its images)
        is named without a comparison, as is a prior the PACS holds no CR or DX images of.
        """
        candidate = self._find(source, study)
        if candidate is None:
            return False
        with self._sessions() as session:
            row = studies.get_study(session, candidate.study_instance_uid)
            if row is not None:  # received before, or fetched by an earlier attempt
                self._compare_images(session, row, comparison, candidate.source, candidate.reason)
                return True
        fetched_at = source.fetched_at(candidate.study_instance_uid)
        if fetched_at is None:
            try:
                handed = source.fetch(candidate.study_instance_uid)
            except TransientError as exc:
                self._passed_over(source, study, exc)
                return False
            if handed:
                log.info("prior fetched from the PACS", extra={
                    "study_ref": study_ref(study.study_instance_uid), "count": handed})
                raise TransientError("the prior was fetched from the PACS and is being analysed",
                                     retry_after_s=PRIOR_POLL_S)
        elif self._clock() - fetched_at < self._prior_wait:
            raise TransientError("the prior fetched from the PACS is being ingested", retry_after_s=PRIOR_POLL_S)
        _name_prior(comparison.prior, candidate)
        comparison.prior.reason += "; its images could not be analysed, so no change is stated"
        return True

    def _compare_with_report(
        self, source: PriorSource, study: StudyInfo, comparison: messages_pb2.PriorComparison
    ) -> bool:
        """The prior source's candidate, compared with what its report states (when it has one); False when the
        source has none or fails."""
        candidate = self._find(source, study)
        if candidate is None:
            return False
        prior = comparison.prior
        _name_prior(prior, candidate)
        report = candidate.report
        text = (report.text or report.conclusion) if report is not None else ""
        if text.strip():
            prior_findings = findings_of_report(label_report(text))
            prior.findings.extend(prior_findings)
            prior.from_report = True
            comparison.changes.extend(compare_findings(comparison.current.findings, prior_findings))
        return True

    def _find(self, source: PriorSource, study: StudyInfo) -> PriorCandidate | None:
        """The source's candidate; None when it has none or fails (logged, without the patient or the study). Each
        question asked of a source is recorded in the audit trail."""
        with study_span("find prior", study.study_instance_uid, prior_source=source.name) as span:
            try:
                candidate = source.find_prior(study)
            except (TransientError, PermanentError) as exc:
                span.set_attribute("hilum.outcome", "failed")
                self._audit.record_now(self._sessions, self._query_record(source.name, study, "", exc))
                self._passed_over(source, study, exc)
                return None
            span.set_attribute("hilum.outcome", "found" if candidate else "none")
            self._audit.record_now(self._sessions, self._query_record(
                source.name, study, candidate.study_instance_uid if candidate is not None else "", None))
            return candidate

    def _query_record(self, source: str, study: StudyInfo, prior_uid: str, failure: Exception | None) -> AuditRecord:
        """The audit record of one question to a prior source: the patient asked about, the source, what it
        answered (the prior's UID) or why it failed."""
        patient = study.patient
        before = study.started.isoformat() if study.started else ""
        return AuditRecord(
            kind=AuditKind.QUERY, subtypes=(PRIOR_SUBTYPE,), requestor=self._audit.itself,
            agents=(AuditAgent(user_id=f"prior-source-{source}", role=DESTINATION_ROLE),),
            outcome=AuditOutcome.SERIOUS_FAILURE if failure is not None else AuditOutcome.SUCCESS,
            outcome_text=f"the source failed ({type(failure).__name__})" if failure is not None else "",
            patients=(self._audit.patient(patient),), study_uids=(study.study_instance_uid,),
            query=urlencode({"PatientID": patient.patient_id, "IssuerOfPatientID": patient.issuer, "before": before}),
            details=(("prior-source", source), ("prior-study-uid", prior_uid)),
        )

    @staticmethod
    def _passed_over(source: PriorSource, study: StudyInfo, exc: Exception) -> None:
        log.warning("prior source failed; compared without it", extra={
            "study_ref": study_ref(study.study_instance_uid), "prior_source": source.name,
            "error_type": type(exc).__name__})

    def _still_in_flight(self, prior: StudyRow) -> bool:
        """Whether the prior's own findings may still come: in the pipeline and received within the wait."""
        in_pipeline = studies.state(prior) in study_state.IN_FLIGHT
        return in_pipeline and studies.received_since(prior, self._clock()) < self._prior_wait.total_seconds()


def _name_prior(prior: messages_pb2.PriorStudy, candidate: PriorCandidate) -> None:
    """The prior as its source found it: its UID, day, source and why it was chosen."""
    prior.study_instance_uid, prior.study_date = candidate.study_instance_uid, candidate.study_date
    prior.source, prior.reason = candidate.source, candidate.reason
