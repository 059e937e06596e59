"""A prior that only the PACS holds: the running stack finds it by QIDO-RS, fetches it by WADO-RS, analyses it with the
real models as a comparison-only study, and reports the current study compared image to image with it.

One embedded stack (SQLite, demo weights, real Triton) whose priors ask the PACS first, then Hilum's store; one real
Orthanc that holds patient A's prior and nothing of the current study.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hilum.common import study_state
from hilum.common.db.session import upgrade_database
from hilum.common.settings import PacsSection, PriorsSection
from hilum.ingestion.client import IngestionClient
from hilum.reporting.service import bundle_file_name
from hilum.runtime.orthanc import OrthancServer
from hilum.runtime.ports import loopback_settings
from hilum.runtime.stack import EmbeddedStack
from hilum.samples.dicom_files import write_study
from hilum.samples.sample_studies import SAMPLE_STUDIES
from tests.integration.conftest import server_venv

pytestmark = pytest.mark.integration

ADA_PRIOR, ADA_CURRENT, BORIS = SAMPLE_STUDIES[0], SAMPLE_STUDIES[1], SAMPLE_STUDIES[2]
REPORT_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    root = tmp_path_factory.mktemp("pacs")
    with OrthancServer(root / "orthanc", ae_title="TESTPACS") as server:
        server.upload(write_study(ADA_PRIOR, root / "studies").read_bytes())
        yield server


@pytest.fixture(scope="module")
def pacs_stack(tmp_path_factory: pytest.TempPathFactory, demo_model_repository: Path,
               orthanc: OrthancServer) -> Iterator[EmbeddedStack]:
    settings = loopback_settings(tmp_path_factory.mktemp("stack"), demo_model_repository, server_venv())
    settings = settings.model_copy(update={
        "pacs": PacsSection(dicomweb_url=orthanc.dicomweb_url),
        "priors": PriorsSection(sources=["pacs", "store"]),
    })
    upgrade_database(settings.database_url)
    with EmbeddedStack(settings) as running:
        yield running


def test_the_prior_on_the_pacs_is_fetched_analysed_and_compared_image_to_image(
        pacs_stack: EmbeddedStack, tmp_path: Path) -> None:
    grpc = pacs_stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        [accepted] = client.submit_files([write_study(ADA_CURRENT, tmp_path)])
        assert accepted.accepted
        status = client.wait_for([ADA_CURRENT.study_instance_uid], timeout_s=REPORT_TIMEOUT_S)[
            ADA_CURRENT.study_instance_uid]
        prior = client.status(ADA_PRIOR.study_instance_uid)
    assert status.state == study_state.REPORTED, status.error
    draft = status.result.draft
    # Compared with the prior's own model findings (not with a report): the date, and no "report" wording.
    assert draft.comparison == f"Chest radiograph of {ADA_PRIOR.study_started.date().isoformat()}."
    # The prior was stored and analysed for comparison only: never reported, never published.
    assert prior.state == study_state.ANALYSED, prior.error
    assert prior.instance_count == 1 and not prior.HasField("result")
    output_dir, version = Path(pacs_stack.settings.storage.output_dir), status.result.model.version
    assert Path(status.result.bundle_path) == (output_dir / bundle_file_name(ADA_CURRENT.study_instance_uid,
                                                                             version)).resolve()
    assert not (output_dir / bundle_file_name(ADA_PRIOR.study_instance_uid, version)).exists()


def test_a_patient_the_pacs_has_no_prior_of_is_reported_without_comparison(
        pacs_stack: EmbeddedStack, tmp_path: Path) -> None:
    grpc = pacs_stack.settings.grpc
    with IngestionClient(grpc.address(grpc.ingestion_port)) as client:
        client.submit_files([write_study(BORIS, tmp_path)])
        status = client.wait_for([BORIS.study_instance_uid], timeout_s=REPORT_TIMEOUT_S)[BORIS.study_instance_uid]
    assert status.state == study_state.REPORTED, status.error
    assert status.result.draft.comparison.startswith("None")
