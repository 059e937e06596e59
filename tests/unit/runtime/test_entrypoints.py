"""Process entry points pick a stage's wiring by name and register its one queue task."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilum.common.settings import HilumSettings, QueueSection, RedisSection, StorageSection
from hilum.runtime.entrypoints import STAGE_NAMES, stage_doors, worker_app

GRPC_SERVICES = {
    "ingestion": "hilum.v1.IngestionService",
    "inference": "hilum.v1.InferenceService",
    "priors": "hilum.v1.PriorsService",
    "reporting": "hilum.v1.ReportingService",
    "publishing": "hilum.v1.PublishingService",
}


def test_the_stages_are_named_in_pipeline_order() -> None:
    assert STAGE_NAMES == ("ingestion", "inference", "priors", "reporting", "publishing")


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_each_stage_name_picks_its_own_wiring(name: str) -> None:
    doors = stage_doors(name)
    assert doors.stage.value == name
    assert doors.stage.task_name == f"hilum.{name}.run"
    assert getattr(doors, "grpc_service", None) == GRPC_SERVICES[name]


def test_each_stage_hands_on_to_the_next_and_publishing_is_last() -> None:
    """Ingestion hands nothing on itself: the assembler hands complete studies to inference."""
    following = [getattr(stage_doors(name), "next_stage", None) for name in STAGE_NAMES]
    assert [s.value if s is not None else None for s in following] == [None, "priors", "reporting", "publishing", None]


def test_an_unknown_stage_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no stage called 'cds'") as refused:
        stage_doors("cds")
    assert all(name in str(refused.value) for name in STAGE_NAMES)


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_the_worker_app_registers_the_stage_task(name: str, tmp_path: Path) -> None:
    settings = HilumSettings(redis=RedisSection(url="redis://127.0.0.1:1/0"),
                             storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"),
                             queue=QueueSection(max_retries=7))
    app = worker_app(name, settings)
    assert app.main == f"hilum-{name}"
    assert app.conf.broker_url == "redis://127.0.0.1:1/0"
    task = app.tasks[f"hilum.{name}.run"]
    assert task.max_retries == 7
    assert app.conf.task_routes[f"hilum.{name}.run"] == {"queue": name}


def test_a_worker_app_holds_only_its_own_stage_task(tmp_path: Path) -> None:
    settings = HilumSettings(storage=StorageSection(data_dir=tmp_path / "data", output_dir=tmp_path / "out"))
    first, second = worker_app("ingestion", settings), worker_app("priors", settings)
    stage_tasks = {name for name in second.tasks if name.startswith("hilum.")}
    assert stage_tasks == {"hilum.priors.run"}
    assert "hilum.priors.run" not in first.tasks
