"""The pull door: Hilum fetches new chest radiographs from a PACS instead of waiting for them to be sent.

PacsPuller is the polling policy on top of a PACS client (common/dicom/pacs_client.py: DICOMweb or DIMSE): find
the CR and DX studies since a date, skip the ones Hilum already holds (the database is its memory), retrieve the
CR and DX series of the others (a CT series in the same study is never fetched) and hand every instance to
Ingestion through Door.PULL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import studies
from hilum.common.dicom.pacs_client import DimseClient, FoundStudy, PacsError, StudySource, date_range, first_of_each
from hilum.common.logs import study_ref
from hilum.common.study import RADIOGRAPH_MODALITIES
from hilum.ingestion.service import Door, IncomingInstance, Ingestion

log = logging.getLogger(__name__)

PULLED_MODALITIES = RADIOGRAPH_MODALITIES
# StudyDate says when a study was made, not when it reached the PACS: each poll looks this far back.
LOOKBACK = timedelta(days=1)


@dataclass
class PullReport:
    """What one poll did: studies found on the PACS, pulled, skipped (already held) and failed to
    retrieve; instances accepted (new or already stored) and rejected by Ingestion.
    """

    found: int = 0
    pulled: int = 0
    skipped: int = 0
    failed: int = 0
    accepted: int = 0
    rejected: int = 0

    def line(self) -> str:
        """The report for a person: "3 found, 2 pulled, 1 skipped, 0 failed; 2 instances accepted, 0 rejected"."""
        return (f"{self.found} found, {self.pulled} pulled, {self.skipped} skipped, {self.failed} failed; "
                f"{self.accepted} instances accepted, {self.rejected} rejected")


class PacsPuller:
    """Finds new CR and DX studies on a PACS and pulls the ones Hilum does not hold into Ingestion.

    sessions: the database Ingestion writes to; a study with a row there is held and is not pulled again.
    move_to: with a DimseClient, C-MOVE each wanted series to this AE (Hilum's DICOM door, which ingests
    it) instead of C-GET; its instance counts are then the C-MOVE's sub-operations (a rejected instance
    is a failed C-STORE).
    """

    def __init__(self, source: StudySource, ingestion: Ingestion, sessions: sessionmaker[Session], *,
                 modalities: Sequence[str] = PULLED_MODALITIES, move_to: str | None = None) -> None:
        if move_to is not None and not isinstance(source, DimseClient):
            raise ValueError("C-MOVE needs a DIMSE PACS (HILUM_PACS__AE_TITLE, HOST and PORT)")
        self._source = source
        self._ingestion = ingestion
        self._sessions = sessions
        self._modalities = tuple(modalities)
        self._move_to = move_to

    def find_new(self, since: date) -> list[FoundStudy]:
        """The studies of the pulled modalities with a Study Date on or after since, oldest first (priors
        before the studies they are priors of). One query per modality: not every PACS matches a list.
        """
        per_modality = (
            study for modality in self._modalities
            for study in self._source.search_studies({"ModalitiesInStudy": modality, "StudyDate": date_range(since)})
        )
        found = first_of_each(per_modality, lambda study: study.study_instance_uid)
        return sorted(found, key=lambda s: (s.study_date or date.max, s.study_instance_uid))

    def poll_once(self, since: datetime) -> PullReport:
        """Find the CR and DX studies dated since (the date in local time, as PACSs keep Study Date), and pull
        those Hilum does not hold. A study that cannot be retrieved is counted failed and tried again at
        the next poll; a failed search raises PacsError.
        """
        report = PullReport()
        for study in self.find_new(_local_date(since)):
            report.found += 1
            if self._held(study.study_instance_uid):
                report.skipped += 1
                continue
            try:
                accepted, rejected = self._pull(study.study_instance_uid)
            except PacsError as exc:
                report.failed += 1
                log.warning("study not pulled (%s); it is tried again at the next poll", exc,
                            extra={"study_ref": study_ref(study.study_instance_uid), "door": Door.PULL.value})
                continue
            report.pulled += 1
            report.accepted += accepted
            report.rejected += rejected
            log.info("study pulled: %d instances accepted, %d rejected", accepted, rejected,
                     extra={"study_ref": study_ref(study.study_instance_uid), "door": Door.PULL.value})
        return report

    def poll_every(self, interval_s: float, since: datetime, stop: threading.Event,
                   on_report: Callable[[PullReport], None] | None = None, *, lookback: timedelta = LOOKBACK,
                   clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Poll now and then every interval_s seconds until stop is set.

        The first poll looks from since; each later one from the start of the last successful poll less
        lookback (never before since), because a study can reach the PACS days after its Study Date and
        a held study costs only a lookup. A failed poll (PACS, database or disk down) is logged and the
        next one keeps its window.
        """
        while True:
            started = clock()
            try:
                report = self.poll_once(since)
            except PacsError as exc:
                log.warning("poll failed (%s); trying again at the next one", exc, extra={"door": Door.PULL.value})
            except Exception as exc:  # never the message: a database error quotes its parameters (UIDs)
                log.error("poll failed; trying again at the next one",
                          extra={"door": Door.PULL.value, "error_type": type(exc).__name__})
            else:
                since = max(_aware(since), started - lookback)
                if on_report is not None:
                    on_report(report)
            if stop.wait(interval_s):
                return

    def _held(self, study_instance_uid: str) -> bool:
        with self._sessions() as session:
            return studies.get_study(session, study_instance_uid) is not None

    def _pull(self, study_instance_uid: str) -> tuple[int, int]:
        """Retrieve the study's series of the pulled modalities and ingest them; (instances accepted, rejected).

        Every series is retrieved before any instance is ingested, so a study that fails half-way is not
        held and is tried again whole at the next poll. A series whose modality the PACS does not say is
        retrieved too, and Ingestion judges its instances.
        """
        wanted = [series for series in self._source.search_series(study_instance_uid)
                  if series.modality in self._modalities or not series.modality]
        if not wanted:
            raise PacsError(f"the PACS lists no {' or '.join(self._modalities)} series in the study")
        if self._move_to is not None:
            assert isinstance(self._source, DimseClient)
            moved = [self._source.move(self._move_to, study_instance_uid, series.series_instance_uid)
                     for series in wanted]
            return sum(m.completed + m.warning for m in moved), sum(m.failed for m in moved)
        contents: list[bytes] = []
        for series in wanted:
            retrieved = self._source.retrieve_series(study_instance_uid, series.series_instance_uid)
            if not retrieved:  # the PACS listed the series, so an empty answer is its failure
                raise PacsError("the PACS returned no instances of a series it listed")
            contents += retrieved
        reference = study_ref(study_instance_uid)
        response = self._ingestion.accept(
            IncomingInstance(label=f"pull-{reference}-{number}", content=content, door=Door.PULL)
            for number, content in enumerate(contents, start=1)
        )
        accepted = sum(1 for result in response.results if result.accepted)
        return accepted, len(response.results) - accepted


def _aware(moment: datetime) -> datetime:
    """moment with a time zone; a naive datetime is taken as this host's local time."""
    return moment if moment.tzinfo is not None else moment.astimezone()


def _local_date(moment: datetime) -> date:
    """The calendar date of moment in this host's time zone (a naive datetime is taken as local already)."""
    return moment.astimezone().date() if moment.tzinfo is not None else moment.date()
