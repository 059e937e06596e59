"""TritonServer without a running server: setup errors, readiness of nothing, its log for error messages.

The real server is exercised in tests/integration/test_triton_findings.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hilum.common.settings import TritonSection
from hilum.runtime.ports import free_port
from hilum.runtime.processes import ProcessFailed
from hilum.runtime.triton import TritonNotInstalled, TritonServer, grpc_port, is_ready


def test_a_missing_server_venv_says_run_the_setup_script(tmp_path: Path) -> None:
    server = TritonServer(TritonSection(server_venv=tmp_path / "absent"), tmp_path / "work", tmp_path / "triton.log")
    with pytest.raises(TritonNotInstalled, match="run the setup script") as missing:
        server.start()
    assert isinstance(missing.value, ProcessFailed)  # reported by `hilum up` as one message
    assert not server.running


def test_a_venv_without_the_pytriton_binary_is_named(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    server = TritonServer(TritonSection(server_venv=venv), tmp_path / "work", tmp_path / "triton.log")
    with pytest.raises(TritonNotInstalled, match="has no nvidia-pytriton tritonserver binary"):
        server.start()


def test_wait_ready_before_start_is_a_mistake(tmp_path: Path) -> None:
    server = TritonServer(TritonSection(), tmp_path / "work", tmp_path / "triton.log")
    with pytest.raises(RuntimeError, match="was not started"):
        server.wait_ready(timeout_s=0)


def test_nothing_listening_is_not_ready() -> None:
    section = TritonSection(grpc_url=f"127.0.0.1:{free_port()}")
    assert is_ready(section) is False


def test_the_grpc_port_comes_from_the_url(tmp_path: Path) -> None:
    section = TritonSection(grpc_url="127.0.0.1:8101")
    assert grpc_port(section) == 8101
    assert TritonServer(section, tmp_path, tmp_path / "log").grpc_port == 8101


def test_log_tail_leaves_out_status_tables(tmp_path: Path) -> None:
    log = tmp_path / "triton.log"
    log.write_text("I1201 started\n+-------+\n| Model | Status |\n\nE1201 failed to load 'cxr_findings'\n")
    server = TritonServer(TritonSection(), tmp_path, log)
    assert server.log_tail() == "I1201 started\nE1201 failed to load 'cxr_findings'"
    assert server.log_tail(lines=1) == "E1201 failed to load 'cxr_findings'"


def test_log_tail_without_a_log_says_so(tmp_path: Path) -> None:
    server = TritonServer(TritonSection(), tmp_path, tmp_path / "absent.log")
    assert server.log_tail() == f"(no log at {tmp_path / 'absent.log'})"
