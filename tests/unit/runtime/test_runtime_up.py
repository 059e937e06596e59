"""`hilum up` without a stack: stop signals, preparing the data directory, supervising, refusing to start.

The stack itself comes up in tests/integration/test_up.py.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from hilum.common.settings import HilumSettings
from hilum.common.wording import DEMO_NOTICE
from hilum.runtime.endpoints import Endpoints, write_endpoints
from hilum.runtime.ports import PortInUse, loopback_settings
from hilum.runtime.processes import ProcessFailed
from hilum.runtime.stack import EmbeddedStack, StackAlreadyRunning
from hilum.runtime.up import Stopped, StopSignals, door_lines, prepare_stack, run_up, supervise


def test_a_stop_signal_is_recorded_then_raised_and_handlers_are_restored() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with StopSignals() as stop:
        stop.check()  # nothing yet
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == signal.SIGTERM
        with pytest.raises(Stopped, match="^stopped by SIGTERM$") as stopped:
            stop.check()
        assert stopped.value.signal == signal.SIGTERM
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_the_first_stop_signal_is_the_one_kept() -> None:
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
    assert stop.received == signal.SIGINT


class FakeStack:
    """Stands in for EmbeddedStack in supervise(): counts health checks, and can have a part stop."""

    def __init__(self, fail_after: int | None = None, stop: StopSignals | None = None) -> None:
        self.checks = 0
        self.fail_after = fail_after
        self.stop = stop

    def check_alive(self) -> None:
        self.checks += 1
        if self.fail_after is not None and self.checks > self.fail_after:
            raise ProcessFailed("priors-worker stopped (exit 1):\nTraceback ...")
        if self.stop is not None and self.checks == 3:
            os.kill(os.getpid(), signal.SIGTERM)


def test_supervise_checks_the_stack_until_a_stop_signal() -> None:
    with StopSignals() as stop:
        stack = FakeStack(stop=stop)
        assert supervise(stack, stop) == signal.SIGTERM  # type: ignore[arg-type]
    assert stack.checks >= 3


def test_supervise_reports_a_part_that_stops_by_itself() -> None:
    with StopSignals() as stop, pytest.raises(ProcessFailed, match="priors-worker stopped"):
        supervise(FakeStack(fail_after=1), stop)  # type: ignore[arg-type]


def test_prepare_migrates_the_database_and_says_the_weights_are_demo(settings: HilumSettings) -> None:
    said: list[str] = []
    prepare_stack(settings, fresh=False, say=said.append)
    assert said == [f"Model cxr_findings: version demo-untrained — {DEMO_NOTICE}",
                    f"Model cxr_devices: version demo-untrained — {DEMO_NOTICE}"]
    tables = inspect(create_engine(settings.database_url)).get_table_names()
    assert {"studies", "instances", "reports"} <= set(tables)


def test_prepare_says_nothing_about_provisioned_weights(tmp_path: Path,
                                                      provisioned_repository: Callable[[bool], Path]) -> None:
    settings = loopback_settings(tmp_path, provisioned_repository(False), tmp_path / "venv")
    said: list[str] = []
    prepare_stack(settings, fresh=False, say=said.append)
    assert said == []


def test_fresh_deletes_the_data_and_output_folders_first(settings: HilumSettings) -> None:
    for folder in (settings.storage.data_dir, settings.storage.output_dir):
        folder.mkdir(parents=True)
        (folder / "old.txt").write_text("from an earlier run")
    prepare_stack(settings, fresh=True, say=lambda line: None)
    assert not (settings.storage.data_dir / "old.txt").exists()
    assert not settings.storage.output_dir.exists()
    assert (settings.storage.data_dir / "hilum.db").is_file()


def test_up_with_a_port_taken_starts_nothing(settings: HilumSettings) -> None:
    said: list[str] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.cds.port))
        taken.listen()
        with pytest.raises(PortInUse, match=f"^port {settings.cds.port} is already in use"):
            run_up(settings, say=said.append)
    assert said == []
    assert not settings.storage.data_dir.exists()


def test_up_refuses_a_data_directory_a_live_stack_uses(settings: HilumSettings) -> None:
    write_endpoints(settings.storage.data_dir, Endpoints(pid=os.getpid(), started_at=datetime.now(UTC)))
    with pytest.raises(StackAlreadyRunning):
        run_up(settings, say=lambda line: None)
    assert sorted(p.name for p in settings.storage.data_dir.iterdir()) == ["endpoints.json"]


def test_the_door_listing_lines_up_every_address(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[3]
    stack = EmbeddedStack(loopback_settings(tmp_path, repo / "model_repository", tmp_path / "no-venv"))
    lines = door_lines(stack)
    assert len(lines) == len(stack.urls())
    assert any("metrics.ingestion-priors-publishing-worker" in line for line in lines)
    columns = {line.index(address) for line, address in zip(lines, stack.urls().values(), strict=True)}
    assert len(columns) == 1  # the longest name sets the column
