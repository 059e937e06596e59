"""README line 1's job, `hilum demo`, end to end on the bundled sample studies: every study is reported, no demo
result shows a suspected finding (the demo weights are calibrated to say nothing), and every output says DEMO."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilum.common.wording import DEMO_NOTICE
from hilum.runtime.demo import run_demo
from hilum.runtime.ports import loopback_settings
from tests.integration.conftest import server_venv

pytestmark = pytest.mark.integration


def test_the_demo_reports_every_sample_with_no_suspected_finding_and_says_demo_throughout(
    tmp_path: Path, demo_model_repository: Path
) -> None:
    said: list[str] = []
    settings = loopback_settings(tmp_path, demo_model_repository, server_venv())
    assert run_demo(settings, say=said.append) == 0
    text = "\n".join(said)
    lines = text.splitlines()
    studies = [line for line in lines if line.startswith("Study ")]
    assert len(studies) == 4 and all(line.endswith("REPORTED") for line in studies), text
    assert text.count(f"  {DEMO_NOTICE}") == 4  # each study's summary opens with it
    impressions = [line for line in lines if line.strip().startswith("Impression:")]
    assert impressions == ["  Impression: No acute cardiopulmonary abnormality."] * 4, text
    assert "Possible" not in text
    cards = [line for line in lines if "CDS card" in line]
    assert len(cards) == 4 and all("DEMO weights" in card and "no findings above threshold" in card for card in cards)
    for bundle in sorted(settings.storage.output_dir.glob("*.bundle.json")):
        assert DEMO_NOTICE in bundle.read_text()  # the DiagnosticReport conclusion and the FHIR Device
