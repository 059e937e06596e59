"""The labeler's vocabulary names exactly the cxr_findings labels and the six device kinds."""

from __future__ import annotations

import re

from hilum.common.reported_findings import DeviceType
from hilum.inference.labels import load_label_map
from hilum.priors.report_vocabulary import (
    FINDING_CODES,
    NORMAL_ANCHORS,
    PUBLISHED_NAMES,
    TERMS,
    TRIGGERS,
)
from tests.helpers import REPO_ROOT
from tests.unit.inference.test_labels import PUBLISHED_OUTPUTS


def test_finding_codes_are_the_label_maps_in_its_order_and_named_as_torchxrayvision_publishes_them() -> None:
    labels = load_label_map(REPO_ROOT / "model_repository" / "cxr_findings")
    assert FINDING_CODES == tuple(label.code for label in labels)
    assert tuple(PUBLISHED_NAMES.values()) == PUBLISHED_OUTPUTS


def test_every_term_names_known_codes_and_every_label_and_device_kind_has_a_term() -> None:
    named = {code for term in TERMS for code in term.codes}
    named |= {code for codes in NORMAL_ANCHORS.values() for code in codes}
    assert named == set(FINDING_CODES)
    assert {term.device for term in TERMS if term.device is not None} == set(DeviceType)
    assert not [term for term in TERMS if term.codes and term.device is not None]


def test_every_pattern_compiles_and_matches_no_empty_text() -> None:
    for pattern in [term.pattern for term in TERMS] + [phrase for trigger in TRIGGERS for phrase in trigger.phrases]:
        assert re.compile(pattern).fullmatch("") is None, pattern
