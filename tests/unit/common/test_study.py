"""The typed study records: an instance read from a header has no object key until it is stored."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from hilum.common.study import PatientInfo, StudyInfo
from tests.helpers import instance_info, study_header


def test_an_instance_is_keyed_only_once_stored() -> None:
    header = study_header("1.2", PatientInfo("P", "", "", None, ""), datetime(2025, 1, 1))
    unstored = dataclasses.replace(header.instance, object_key="")
    assert unstored.object_key == ""
    stored = dataclasses.replace(unstored, object_key="dicom/1.2/x.dcm")
    assert stored.object_key == "dicom/1.2/x.dcm" and stored.sop_instance_uid == header.instance.sop_instance_uid


def test_records_are_immutable_and_a_study_starts_without_instances() -> None:
    study = StudyInfo("1.2", PatientInfo("P", "", "", None, ""), None, "", "")
    assert study.instances == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        study.description = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        instance_info("1.2").rows = 1  # type: ignore[misc]
