"""What the acceptance rule tests check of every rejection: its code, and a reason without patient data."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydicom.dataset import Dataset

from hilum.ingestion.acceptance import AcceptanceRules, RejectedInstance, accept_instance
from hilum.samples.acceptable_oddities import ODD_NAME_PATIENT_ID
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.samples.variant_files import PATIENT_ID, PATIENT_NAME

Edit = Callable[[Callable[[Dataset], object]], bytes]  # the `edited` fixture
RULES = AcceptanceRules()
# Patient data of the samples and of the bad inputs: never in a reason.
PHI = [spec.patient_name for spec in SAMPLE_STUDIES] + [spec.patient_id for spec in SAMPLE_STUDIES]
PHI += [PATIENT_ID, PATIENT_NAME, ODD_NAME_PATIENT_ID, "SYNTHETIC", "ERIN", "1956", "1962"]


def rejection(
    content: bytes, rules: AcceptanceRules = RULES, affected_sop: tuple[str, str] | None = None
) -> RejectedInstance:
    """The RejectedInstance that accepting content raises; its reason is a sentence without patient data."""
    with pytest.raises(RejectedInstance) as raised:
        accept_instance(content, rules, affected_sop)
    rejected = raised.value
    assert rejected.reason and str(rejected) == rejected.reason
    for value in PHI:
        assert value not in rejected.reason
    return rejected


def code_of(content: bytes, rules: AcceptanceRules = RULES) -> int:
    return rejection(content, rules).code
