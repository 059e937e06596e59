"""`hilum reprocess`: hand studies Hilum already holds to inference again, to be reported under a new model version.

A study is chosen by Study Instance UID or by its study date. Only studies at rest are handed on (REPORTED, or
FAILED, which starts again from RECEIVED); one still in the pipeline is already being reported under the served
model. A study already reported under the model version the repository now serves is left alone: every stage is
idempotent per (study, model version), so it would produce nothing new. The new report supersedes the study's
earlier one (reporting/service.py). A prior fetched from a PACS for comparison only is analysed again (never
reported), so that later studies are compared with it under the same model version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hilum.common import study_state
from hilum.common.db import results, studies
from hilum.common.db.models import StudyRow
from hilum.common.logs import study_ref
from hilum.ingestion.assembly import HandOn, study_reference

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What reprocessing did with one chosen study."""

    QUEUED = "queued"
    ALREADY_REPORTED = "already reported under the served model version"
    ALREADY_ANALYSED = "a prior fetched for comparison, already analysed under the served model version"
    IN_PIPELINE = "still in the pipeline"
    IMAGES_PURGED = "images purged under the retention schedule"
    NOT_FOUND = "not held by Hilum"


@dataclass(frozen=True)
class Chosen:
    """One chosen study and what became of it; `ref` is the study's log reference (no UID, no PHI)."""

    ref: str
    outcome: Outcome


def studies_dated(session: Session, first: date, last: date) -> list[str]:
    """The UIDs of the studies whose study date lies in [first, last], oldest first (a study without one: never)."""
    stmt = (
        select(StudyRow.study_instance_uid)
        .where(StudyRow.started >= datetime.combine(first, time.min),
               StudyRow.started < datetime.combine(last + timedelta(days=1), time.min))
        .order_by(StudyRow.started, StudyRow.study_instance_uid)
    )
    return list(session.scalars(stmt))


def reprocess(
    sessions: sessionmaker[Session], hand_on: HandOn, uids: Iterable[str], version: str | None, *, dry_run: bool = False
) -> list[Chosen]:
    """Hand each study of `uids` to inference again unless it is in the pipeline, purged, or already reported under
    `version` (the served one; None: unknown, the stages' idempotency then decides). A FAILED study starts again from
    RECEIVED. With dry_run nothing is changed or handed on. Returns one Chosen per UID, in order.
    """
    chosen: list[Chosen] = []
    for uid in dict.fromkeys(uids):
        with sessions.begin() as session:
            outcome = _outcome(session, uid, version)
            if outcome == Outcome.QUEUED and not dry_run:
                row = studies.require_study(session, uid)
                studies.restart(session, uid)
                # Handed on inside the transaction: if the broker refuses, the restart is rolled back with it.
                hand_on(study_reference(session, row))
                log.info("study handed to inference for reprocessing", extra={"study_ref": study_ref(uid)})
        chosen.append(Chosen(study_ref(uid), outcome))
    return chosen


def _outcome(session: Session, uid: str, version: str | None) -> Outcome:
    """Whether the study can be reprocessed now, or why not."""
    row = studies.get_study(session, uid)
    if row is None:
        return Outcome.NOT_FOUND
    if studies.state(row) in study_state.IN_FLIGHT:
        return Outcome.IN_PIPELINE
    if row.images_purged_at is not None:
        return Outcome.IMAGES_PURGED
    if version is not None and row.comparison_only:  # never reported: its findings are what comparisons read
        analysed = results.load_findings(session, uid, version) is not None
        return Outcome.ALREADY_ANALYSED if analysed else Outcome.QUEUED
    if version is not None and results.load_report(session, uid, version) is not None:
        return Outcome.ALREADY_REPORTED
    return Outcome.QUEUED
