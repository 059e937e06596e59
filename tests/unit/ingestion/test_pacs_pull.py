"""The pull door against a real Orthanc (tests/orthanc_pacs.py): QIDO-RS + WADO-RS, C-FIND + C-GET, C-MOVE to
Hilum's DICOM door. Each test pulls into its own Ingestion (SQLite and an object store in tmp_path).
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime

import pydicom
import pytest
from pydicom.uid import generate_uid
from sqlalchemy.orm import Session, sessionmaker

from hilum.common.db import records, studies
from hilum.common.db.models import StudyRow
from hilum.common.dicom.pacs_client import DicomwebClient, FoundStudy
from hilum.common.object_store import ObjectStore
from hilum.common.settings import DicomSection, HilumSettings, PacsSection, settings_env
from hilum.ingestion.dimse_scp import start_scp, stop_scp
from hilum.ingestion.pacs_pull import PacsPuller, PullReport
from hilum.ingestion.service import Ingestion
from hilum.runtime.ports import free_port
from tests.orthanc_pacs import HILUM_AE, Pacs, sample_pacs

EVERYTHING = datetime(2000, 1, 1)
UNSUPPORTED_MODALITY = "REJECTION_CODE_UNSUPPORTED_MODALITY"


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    with sample_pacs(tmp_path_factory.mktemp("pacs")) as server:
        yield server


def _stored(sessions: sessionmaker[Session], store: ObjectStore, uid: str) -> list[bytes]:
    """The bytes Hilum stored for each instance of a study (none when it does not hold the study)."""
    with sessions() as session:
        info = studies.study_info(session, uid)
    return [store.get(instance.object_key) for instance in info.instances] if info else []


def _held(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return {row.study_instance_uid for row in session.query(StudyRow)}


def test_dicomweb_poll_pulls_every_chest_study_byte_exact(pacs: Pacs, ingestion: Ingestion, store: ObjectStore,
                                                          sqlite_sessions: sessionmaker[Session]) -> None:
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        report = PacsPuller(client, ingestion, sqlite_sessions).poll_once(EVERYTHING)
    # The CT-only study is never asked for, and the mixed study's CT series never fetched.
    assert report == PullReport(found=5, pulled=5, skipped=0, failed=0, accepted=5, rejected=0)
    assert _held(sqlite_sessions) == pacs.chest_uids
    for uid, content in pacs.samples.items():
        assert _stored(sqlite_sessions, store, uid) == [content]
    assert _stored(sqlite_sessions, store, pacs.mixed_uid) == [pacs.mixed_dx]
    with sqlite_sessions() as session:
        assert records.quarantined(session) == []


def test_a_ct_pulled_anyway_is_refused_as_unsupported_modality(pacs: Pacs, ingestion: Ingestion,
                                                                sqlite_sessions: sessionmaker[Session]) -> None:
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        report = PacsPuller(client, ingestion, sqlite_sessions, modalities=("CT",)).poll_once(EVERYTHING)
    # The CT-only study and the mixed study's CT series: both refused, so neither study is held.
    assert report == PullReport(found=2, pulled=2, skipped=0, failed=0, accepted=0, rejected=2)
    assert _held(sqlite_sessions) == set()
    with sqlite_sessions() as session:
        refused = records.quarantined(session)
    assert [(r.code, r.door) for r in refused] == [(UNSUPPORTED_MODALITY, "pull")] * 2
    assert all(r.label.startswith("pull-") and pacs.ct_only_uid not in r.label for r in refused)


def test_a_second_poll_pulls_nothing_new(pacs: Pacs, ingestion: Ingestion,
                                         sqlite_sessions: sessionmaker[Session]) -> None:
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        puller = PacsPuller(client, ingestion, sqlite_sessions)
        first = puller.poll_once(EVERYTHING)
        second = puller.poll_once(EVERYTHING)
    assert first.pulled == 5
    assert second == PullReport(found=5, pulled=0, skipped=5)


def test_study_date_bounds_the_search(pacs: Pacs, ingestion: Ingestion,
                                      sqlite_sessions: sessionmaker[Session]) -> None:
    since = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        puller = PacsPuller(client, ingestion, sqlite_sessions)
        found = puller.find_new(since.date())
        report = puller.poll_once(since)
    newer = {uid for uid, day in pacs.dates.items() if day >= since.date()} | {pacs.mixed_uid}
    assert 0 < len(newer) < len(pacs.chest_uids)
    assert {study.study_instance_uid for study in found} == newer == _held(sqlite_sessions)
    assert report.pulled == len(newer)
    assert [study.study_date for study in found] == sorted(study.study_date for study in found)  # oldest first


def test_dimse_c_find_and_c_get_pull_the_same_studies(pacs: Pacs, ingestion: Ingestion, store: ObjectStore,
                                                      sqlite_sessions: sessionmaker[Session]) -> None:
    report = PacsPuller(pacs.dimse(), ingestion, sqlite_sessions).poll_once(EVERYTHING)
    assert report == PullReport(found=5, pulled=5, skipped=0, failed=0, accepted=5, rejected=0)
    assert _held(sqlite_sessions) == pacs.chest_uids
    for uid, content in [*pacs.samples.items(), (pacs.mixed_uid, pacs.mixed_dx)]:
        [stored] = _stored(sqlite_sessions, store, uid)
        # Over DIMSE the file meta is rebuilt; the dataset itself arrives as stored, byte for byte.
        original, received = pydicom.dcmread(io.BytesIO(content)), pydicom.dcmread(io.BytesIO(stored))
        assert received == original and received.PixelData == original.PixelData
        assert received.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert PacsPuller(pacs.dimse(), ingestion, sqlite_sessions).poll_once(EVERYTHING).skipped == 5


def test_dimse_c_move_to_hilums_dicom_door(pacs: Pacs, ingestion: Ingestion, store: ObjectStore,
                                           sqlite_sessions: sessionmaker[Session]) -> None:
    scp = start_scp(DicomSection(ae_title=HILUM_AE, host="127.0.0.1", port=pacs.scp_port), ingestion)
    try:
        report = PacsPuller(pacs.dimse(), ingestion, sqlite_sessions, move_to=HILUM_AE).poll_once(EVERYTHING)
    finally:
        stop_scp(scp)
    assert report == PullReport(found=5, pulled=5, skipped=0, failed=0, accepted=5, rejected=0)
    assert _held(sqlite_sessions) == pacs.chest_uids
    for uid, content in pacs.samples.items():
        [stored] = _stored(sqlite_sessions, store, uid)
        assert pydicom.dcmread(io.BytesIO(stored)) == pydicom.dcmread(io.BytesIO(content))


def test_a_study_that_cannot_be_retrieved_is_counted_failed_and_the_rest_pulled(
        pacs: Pacs, ingestion: Ingestion, sqlite_sessions: sessionmaker[Session]) -> None:
    gone = generate_uid()

    class DeletedMeanwhile(DicomwebClient):
        """Reports one more study than Orthanc holds, as if it were deleted between search and retrieve."""

        def search_studies(self, match: Mapping[str, str]) -> list[FoundStudy]:
            return [*super().search_studies(match), FoundStudy(gone, date(2025, 2, 18), ("DX",))]

    with DeletedMeanwhile(pacs.server.dicomweb_url) as client:
        report = PacsPuller(client, ingestion, sqlite_sessions, modalities=("DX",)).poll_once(EVERYTHING)
    assert report == PullReport(found=6, pulled=5, skipped=0, failed=1, accepted=5, rejected=0)
    assert gone not in _held(sqlite_sessions)


def test_poll_every_polls_until_stopped_and_moves_its_window(pacs: Pacs, ingestion: Ingestion,
                                                             sqlite_sessions: sessionmaker[Session]) -> None:
    stop = threading.Event()
    reports: list[PullReport] = []

    def on_report(report: PullReport) -> None:
        reports.append(report)
        if len(reports) == 2:
            stop.set()

    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    with DicomwebClient(pacs.server.dicomweb_url) as client:
        PacsPuller(client, ingestion, sqlite_sessions).poll_every(0.01, EVERYTHING, stop, on_report, clock=lambda: now)
    # The first poll pulls everything; the second looks back a day from the first (2025-02-28), finding the
    # mixed study only, already held.
    assert reports == [PullReport(found=5, pulled=5, accepted=5), PullReport(found=1, skipped=1)]


def test_hilum_pull_polls_once_and_reports(pacs: Pacs, tmp_settings: HilumSettings) -> None:
    settings = tmp_settings.model_copy(update={"pacs": PacsSection(dicomweb_url=pacs.server.dicomweb_url)})
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "hilum.cli", "pull", "--since", "2025-01-01"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    newer = 1 + sum(day >= date(2025, 1, 1) for day in pacs.dates.values())
    assert first.stdout == (f"{newer} found, {newer} pulled, 0 skipped, 0 failed; "
                            f"{newer} instances accepted, 0 rejected\n")
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.stdout == f"{newer} found, 0 pulled, {newer} skipped, 0 failed; 0 instances accepted, 0 rejected\n"
    for uid in pacs.samples:  # UIDs stay out of what the command writes
        assert uid not in first.stdout + first.stderr


def test_poll_every_outlives_a_pacs_that_does_not_answer(ingestion: Ingestion, sqlite_sessions: sessionmaker[Session],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    reports: list[PullReport] = []
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    with caplog.at_level(logging.WARNING, logger="hilum"), \
            DicomwebClient(f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=1.0) as client:
        PacsPuller(client, ingestion, sqlite_sessions).poll_every(0.05, EVERYTHING, stop, reports.append)
    timer.join()
    assert reports == []
    failed = [r for r in caplog.records if r.getMessage().startswith("poll failed (QIDO-RS search failed")]
    assert len(failed) >= 2


def test_hilum_pull_every_polls_until_sigterm(pacs: Pacs, tmp_settings: HilumSettings) -> None:
    settings = tmp_settings.model_copy(update={"pacs": PacsSection(dicomweb_url=pacs.server.dicomweb_url)})
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "hilum.cli", "pull", "--since", "2025-01-01", "--every", "0.2"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as puller:
        assert puller.stdout is not None
        try:
            first, second = puller.stdout.readline(), puller.stdout.readline()
            puller.send_signal(signal.SIGTERM)
            assert puller.wait(timeout=30) == 0
        finally:
            if puller.poll() is None:
                puller.kill()
    assert ", 0 skipped, 0 failed;" in first and ", 0 pulled, " in second


def test_c_move_needs_a_dimse_pacs() -> None:
    with pytest.raises(ValueError, match="C-MOVE needs a DIMSE PACS"):
        PacsPuller(DicomwebClient("http://pacs/dicom-web"), None, None, move_to=HILUM_AE)  # type: ignore[arg-type]
