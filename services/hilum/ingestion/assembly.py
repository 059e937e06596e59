"""The assembler: hands each complete study to inference, with the views chosen once.

A study is complete when no instance arrived for the stability window: ingestion marks it due (in the
same transaction as the instance), and the assembler hands due studies on and clears the mark only
after the broker took the message. A broker outage therefore delays studies but never loses one; a
study handed on twice is harmless (every stage is idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import studies
from hilum.common.db.models import StudyRow
from hilum.common.logs import study_ref
from hilum.common.metrics import RESUMED
from hilum.common.tracing import study_span
from hilum.ingestion.views import choose_views
from hilum.v1 import messages_pb2

log = logging.getLogger(__name__)

HandOn = Callable[[messages_pb2.StudyReference], None]


def study_reference(session: Session, row: StudyRow) -> messages_pb2.StudyReference:
    """The StudyReference for a stored study: its frontal and lateral image as chosen by views.py, and whether it is
    a prior fetched for comparison only."""
    views = choose_views(studies.require_study_info(session, row.study_instance_uid).instances)
    reference = messages_pb2.StudyReference(
        study_instance_uid=row.study_instance_uid,
        frontal_object_key=views.frontal.object_key if views.frontal else "",
        lateral_object_key=views.lateral.object_key if views.lateral else "",
        comparison_only=row.comparison_only,
    )
    reference.received_at.FromDatetime(row.received_at)
    return reference


class Assembler:
    """Hands due studies to inference through hand_on (which enqueues on the "inference" queue), and makes studies
    that stalled in flight (stalled_after without a stage moving them) due again."""

    def __init__(self, sessions: sessionmaker[Session], hand_on: HandOn,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), batch: int = 50,
                 stalled_after: timedelta = timedelta(minutes=15)) -> None:
        self._sessions = sessions
        self._hand_on = hand_on
        self._clock = clock
        self._batch = batch
        self._stalled_after = stalled_after

    def hand_on_due(self) -> int:
        """Hand on every study due now (up to one batch); returns how many were handed on.

        If hand_on raises (the broker is down), nothing of this batch is cleared and the error propagates:
        the next call hands the same studies on again.
        """
        handed = 0
        with self._sessions.begin() as session:
            for row in studies.due_studies(session, self._clock(), self._batch):
                seen = row.ready_at
                if seen is None:
                    continue
                # The study's trace goes on from the door its first instance came through.
                with study_span("hand on to inference", row.study_instance_uid, parent=row.trace_context):
                    self._hand_on(study_reference(session, row))
                if studies.handed_on(session, row.study_instance_uid, seen):
                    handed += 1
                    log.info("study handed to inference", extra={"study_ref": study_ref(row.study_instance_uid)})
        return handed

    def resume_stalled(self) -> int:
        """Make due again (now) every study in flight that no stage has moved for stalled_after: its queue message
        was lost with a worker or a broker that died between taking it and recording it. The study goes through the
        pipeline from inference again; what a stage already stored, it returns as stored. Returns how many."""
        now = self._clock()
        with self._sessions.begin() as session:
            stalled = studies.stalled_studies(session, now - self._stalled_after, self._batch)
            for row in stalled:
                row.ready_at = now
                RESUMED.labels(what="study").inc()
                log.warning("study stalled in the pipeline; handed on again",
                            extra={"study_ref": study_ref(row.study_instance_uid), "stage": row.state.lower()})
        return len(stalled)
