"""`hilum demo` without a stack: what it prepares, and that it refuses to start as `hilum up` does.

The demo end to end is what tests/integration/test_pipeline.py runs through the same stack.
"""

from __future__ import annotations

import socket

import pydicom
import pytest

from hilum.common.settings import HilumSettings
from hilum.runtime.demo import prepare, run_demo
from hilum.runtime.ports import PortInUse


def test_prepare_writes_the_samples_and_the_bad_inputs_to_submit(settings: HilumSettings) -> None:
    files = prepare(settings, fresh=False, say=lambda line: None)
    samples = settings.storage.data_dir / "samples"
    studies = [path for path in files if path.parent == samples]
    rejectable = [path for path in files if path.parent == samples / "rejectable"]
    assert len(studies) == 4 and len(rejectable) == 3 and len(files) == 7
    assert files[:4] == studies  # the studies first, then the inputs that must be rejected
    assert all(pydicom.dcmread(path).Modality == "DX" for path in studies)
    assert (settings.storage.data_dir / "hilum.db").is_file()


def test_demo_with_a_port_taken_starts_nothing(settings: HilumSettings) -> None:
    said: list[str] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.grpc.ingestion_port))
        taken.listen()
        with pytest.raises(PortInUse, match="set HILUM_GRPC__INGESTION_PORT to move the ingestion gRPC service"):
            run_demo(settings, say=said.append)
    assert len(said) == 3  # the banner only
    assert not settings.storage.data_dir.exists()
