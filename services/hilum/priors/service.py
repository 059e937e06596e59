"""Priors' one implementation: find the patient's most recent earlier chest radiograph and compare findings.

Called by the gRPC Compare method and by the Celery task on the "priors" queue. Searches Hilum's own
store; querying PACS (QIDO-RS / C-FIND) for older priors is a later capability.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import results, studies
from hilum.common.db.models import StudyRow
from hilum.common.errors import PermanentError, TransientError
from hilum.common.logs import study_ref
from hilum.priors.comparison import compare_devices, compare_findings
from hilum.v1 import messages_pb2

log = logging.getLogger(__name__)


class Priors:
    """Attaches the prior study and the change per finding to a study's findings."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        prior_wait: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._prior_wait = prior_wait
        self._clock = clock

    def compare(self, current: messages_pb2.StudyFindings) -> messages_pb2.PriorComparison:
        """The comparison with the prior; waits (by retry) while a recently received prior is still in flight."""
        uid = current.study.study_instance_uid
        with self._sessions.begin() as session:
            study = studies.study_info(session, uid)
            if study is None:
                raise PermanentError("study not found in Hilum's store")
            comparison = messages_pb2.PriorComparison(current=current)
            prior_row = studies.find_prior(session, study)
            if prior_row is not None:
                prior = comparison.prior
                prior.study_instance_uid = prior_row.study_instance_uid
                prior.study_date = prior_row.started.strftime("%Y%m%d") if prior_row.started else ""
                prior_findings = results.load_findings(session, prior_row.study_instance_uid, current.model.version)
                if prior_findings is not None:
                    prior.findings.extend(prior_findings.findings)
                    prior.devices.extend(prior_findings.devices)
                    comparison.changes.extend(compare_findings(current.findings, prior_findings.findings))
                    if current.HasField("devices_model") and prior_findings.HasField("devices_model"):
                        comparison.device_changes.extend(compare_devices(current.devices, prior_findings.devices))
                elif self._still_in_flight(prior_row):
                    raise TransientError("the prior study is still being analysed", retry_after_s=2.0)
            studies.advance(session, uid, study_state.COMPARED)
        log.info("prior compared", extra={"study_ref": study_ref(uid), "has_prior": comparison.HasField("prior")})
        return comparison

    def _still_in_flight(self, prior: StudyRow) -> bool:
        """Whether the prior's own findings may still come: in the pipeline and received within the wait."""
        in_pipeline = studies.state(prior) in study_state.IN_FLIGHT
        return in_pipeline and studies.received_since(prior, self._clock()) < self._prior_wait.total_seconds()
