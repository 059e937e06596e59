"""Priors' one implementation: find the patient's most recent earlier chest radiograph and compare findings.

Called by the gRPC Compare method and by the Celery task on the "priors" queue. Searches the configured sources in
order: Hilum's own store, then (where configured) the hospital's FHIR server; querying a PACS (QIDO-RS) for prior
images is a later capability.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import results, studies
from hilum.common.db.models import StudyRow
from hilum.common.errors import PermanentError, TransientError
from hilum.common.logs import study_ref
from hilum.common.study import StudyInfo
from hilum.priors.candidate import PriorSource
from hilum.priors.comparison import compare_devices, compare_findings
from hilum.priors.report_findings import findings_of_report
from hilum.priors.report_labeler import label_report
from hilum.priors.sources import StoreSource
from hilum.v1 import messages_pb2

log = logging.getLogger(__name__)


class Priors:
    """Attaches the prior study and the change per finding to a study's findings.

    sources: where to look, in order (priors.sources); the first that finds a prior is compared with. Hilum's own
    store ("store") gives the prior's model findings, image to image, and waits for a prior still in the pipeline;
    any other source (a hospital FHIR server) gives the prior's radiologist report, whose statements the labeler
    reads. A source that fails is logged and passed over: the study is compared without it, never held or failed.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        prior_wait: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sources: Sequence[PriorSource] | None = None,
    ) -> None:
        self._sessions = sessions
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
            if source.name == StoreSource.name:
                with self._sessions() as session:
                    found = self._compare_with_store(session, study, comparison)
            else:  # outside any database transaction: a hospital server may take its timeout to answer
                found = self._compare_with_report(source, study, comparison)
            if found:
                break
        with self._sessions.begin() as session:
            studies.advance(session, uid, study_state.COMPARED)
        log.info("prior compared", extra={"study_ref": study_ref(uid), "has_prior": comparison.HasField("prior"),
                                          "prior_source": comparison.prior.source})
        return comparison

    def _compare_with_store(self, session: Session, study: StudyInfo, comparison: messages_pb2.PriorComparison) -> bool:
        """The prior in Hilum's store with the model's findings on it, compared finding by finding and device by
        device; False when the store holds none. Raises TransientError while the prior is still being analysed."""
        current = comparison.current
        prior_row = studies.find_prior(session, study)
        if prior_row is None:
            return False
        prior = comparison.prior
        prior.study_instance_uid = prior_row.study_instance_uid
        prior.study_date = prior_row.started.strftime("%Y%m%d") if prior_row.started else ""
        prior.source, prior.reason = StoreSource.name, "the patient's most recent earlier study in Hilum's store"
        prior_findings = results.load_findings(session, prior_row.study_instance_uid, current.model.version)
        if prior_findings is not None:
            prior.findings.extend(prior_findings.findings)
            prior.devices.extend(prior_findings.devices)
            comparison.changes.extend(compare_findings(current.findings, prior_findings.findings))
            if current.HasField("devices_model") and prior_findings.HasField("devices_model"):
                comparison.device_changes.extend(compare_devices(current.devices, prior_findings.devices))
        elif self._still_in_flight(prior_row):
            raise TransientError("the prior study is still being analysed", retry_after_s=2.0)
        return True

    def _compare_with_report(
        self, source: PriorSource, study: StudyInfo, comparison: messages_pb2.PriorComparison
    ) -> bool:
        """The prior source's candidate, compared with what its report states (when it has one); False when the
        source has none or fails."""
        try:
            candidate = source.find_prior(study)
        except (TransientError, PermanentError) as exc:
            log.warning("prior source failed; compared without it", extra={
                "study_ref": study_ref(study.study_instance_uid), "prior_source": source.name,
                "error_type": type(exc).__name__})
            return False
        if candidate is None:
            return False
        prior = comparison.prior
        prior.study_instance_uid, prior.study_date = candidate.study_instance_uid, candidate.study_date
        prior.source, prior.reason = candidate.source, candidate.reason
        report = candidate.report
        text = (report.text or report.conclusion) if report is not None else ""
        if text.strip():
            prior_findings = findings_of_report(label_report(text))
            prior.findings.extend(prior_findings)
            prior.from_report = True
            comparison.changes.extend(compare_findings(comparison.current.findings, prior_findings))
        return True

    def _still_in_flight(self, prior: StudyRow) -> bool:
        """Whether the prior's own findings may still come: in the pipeline and received within the wait."""
        in_pipeline = studies.state(prior) in study_state.IN_FLIGHT
        return in_pipeline and studies.received_since(prior, self._clock()) < self._prior_wait.total_seconds()
