"""The DICOM SR of a result: valid Comprehensive SR (dciodvfy), TID 1500 content, deterministic UIDs, demo notice."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import cast

import highdicom as hd
import pytest
from pydicom import Dataset, dcmread
from pydicom.uid import ComprehensiveSRStorage

from hilum.common.reported_findings import (
    ChangeSincePrior,
    DevicePosition,
    DeviceType,
    FindingStatus,
    Laterality,
    ModelProvenance,
    PriorReference,
    ReportedDevice,
    ReportedFinding,
    ReportedFindings,
)
from hilum.publishing.pacs import part10_bytes
from hilum.publishing.structured_report import (
    CHANGE_VALUE,
    DEMO_TEXT,
    PRIVATE_SCHEME,
    build_structured_report,
    sr_series_instance_uid,
    sr_sop_instance_uid,
)
from hilum.samples.chest_views import ViewPosition
from hilum.samples.dicom_files import dx_dataset
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import messages_pb2

NOW = datetime(2025, 2, 18, 10, 30, 5, tzinfo=UTC)
DEMO_MODEL = ModelProvenance(name="cxr_findings", version="demo-untrained", demo_weights=True)
VALIDATED_MODEL = ModelProvenance(name="cxr_findings", version="1.0.0", demo_weights=False)
# dciodvfy knows no private coding scheme; these warnings are expected, every other line is not.
ALLOWED_WARNING = re.compile(r"^Warning - Unrecognized defined term <99HILUM> .*Coding Scheme Designator")


def _sources() -> list[Dataset]:
    """A PA and an AP DX image of the same study, in two series (small images, so the test stays fast)."""
    spec = dataclasses.replace(SAMPLE_STUDIES[1], rows=64, columns=52)
    pa = dx_dataset(spec)
    ap = dx_dataset(dataclasses.replace(spec, view_position=ViewPosition.AP, seed=spec.seed + 1000))
    ap.StudyInstanceUID = pa.StudyInstanceUID
    ap.SeriesInstanceUID = f"{pa.SeriesInstanceUID}.2"
    ap.SeriesNumber = 2
    return [pa, ap]


def _finding(
    code: str, status: FindingStatus, probability: float, change: ChangeSincePrior | None, snomed: str = "",
    laterality: Laterality = Laterality.UNSPECIFIED, model: ModelProvenance = DEMO_MODEL,
) -> ReportedFinding:
    return ReportedFinding(
        code=code, display=code.capitalize(), snomed_code=snomed, status=status, probability=probability,
        threshold=0.5, laterality=laterality, change=change, model=model,
    )


def _reported(study_uid: str, model: ModelProvenance = DEMO_MODEL, *, empty: bool = False) -> ReportedFindings:
    """Pneumothorax present and new (SNOMED, left), nodule uncertain (no SNOMED), cardiomegaly resolved."""
    findings = () if empty else (
        _finding("pneumothorax", FindingStatus.PRESENT, 0.91, ChangeSincePrior.NEW, "36118008", Laterality.LEFT,
                 model=model),
        _finding("nodule", FindingStatus.UNCERTAIN, 0.47, ChangeSincePrior.NOT_COMPARED, model=model),
        _finding("cardiomegaly", FindingStatus.RESOLVED, 0.12, ChangeSincePrior.RESOLVED, "8186001", model=model),
    )
    return ReportedFindings(
        study_instance_uid=study_uid, model=model, prior=PriorReference("1.2.3.4", None), compared=True,
        findings=findings, assessed_codes=("pneumothorax", "nodule", "cardiomegaly"),
    )


def _with_devices(reported: ReportedFindings) -> ReportedFindings:
    """An ETT 45 mm above the carina, placed well; a PICC 12 mm above the cavoatrial junction in a child, so no call;
    and a chest tube (no landmark distance), position unclear."""
    devices = (
        ReportedDevice(code="device:ett", kind=DeviceType.ETT, display="Endotracheal tube",
                       position=DevicePosition.SATISFACTORY, tip_distance_mm=45.0, probability=0.97,
                       landmark="carina"),
        ReportedDevice(code="device:picc", kind=DeviceType.PICC, display="Peripherally inserted central catheter",
                       position=DevicePosition.INDETERMINATE, tip_distance_mm=12.0, probability=0.88,
                       landmark="cavoatrial junction", position_called=False,
                       position_reason="placement thresholds are for adults; patient is under 18"),
        ReportedDevice(code="device:chest_tube", kind=DeviceType.CHEST_TUBE, display="Chest tube",
                       position=DevicePosition.INDETERMINATE, tip_distance_mm=None, probability=0.71),
    )
    return dataclasses.replace(reported, devices=devices)


def _draft(model: ModelProvenance) -> messages_pb2.DraftReport:
    return messages_pb2.DraftReport(
        model=model.as_info(),
        findings=[messages_pb2.ReportSentence(text="There is a left pneumothorax.", finding_codes=["pneumothorax"])],
        impression=[messages_pb2.ReportSentence(text="New left pneumothorax.", finding_codes=["pneumothorax"])],
        text="FINDINGS: There is a left pneumothorax.\nIMPRESSION: New left pneumothorax.",
    )


def _build(
    model: ModelProvenance = DEMO_MODEL, *, empty: bool = False, devices: bool = False, now: datetime = NOW
) -> Dataset:
    sources = _sources()
    reported = _reported(str(sources[0].StudyInstanceUID), model, empty=empty)
    reported = _with_devices(reported) if devices else reported
    return build_structured_report(sources, reported, _draft(model), now=now)


def _texts(sr: Dataset) -> list[str]:
    """Every TEXT value anywhere in the content tree."""
    found: list[str] = []

    def walk(items: list[Dataset]) -> None:
        for item in items:
            if item.get("ValueType") == "TEXT":
                found.append(str(item.TextValue))
            walk(list(item.get("ContentSequence", [])))

    walk(list(sr.ContentSequence))
    return found


def _groups(sr: Dataset) -> dict[str, hd.sr.MeasurementsAndQualitativeEvaluations]:
    """The TID 1501 groups of the SR as written to and read back from a Part 10 file, by tracking identifier."""
    report = hd.sr.ComprehensiveSR.from_dataset(dcmread(BytesIO(part10_bytes(sr))))
    content = report.content
    assert isinstance(content, hd.sr.MeasurementReport)
    return {str(g.tracking_identifier): g for g in content.get_image_measurement_groups()}


@pytest.mark.parametrize(("empty", "devices"), [(False, False), (True, False), (True, True), (False, True)],
                         ids=["findings", "nothing", "devices-only", "findings-and-devices"])
def test_sr_is_a_valid_comprehensive_sr(
    tmp_path: Path, dciodvfy: Callable[[Path], list[str]], empty: bool, devices: bool
) -> None:
    path = tmp_path / "sr.dcm"
    path.write_bytes(part10_bytes(_build(empty=empty, devices=devices)))
    lines = dciodvfy(path)
    assert "ComprehensiveSR" in lines, lines
    unexpected = [line for line in lines if line.startswith(("Error", "Warning")) and not ALLOWED_WARNING.match(line)]
    assert unexpected == []


def test_sr_is_tid_1500_of_the_sources_study() -> None:
    sources = _sources()
    sr = _build()
    assert sr.SOPClassUID == ComprehensiveSRStorage
    assert sr.Modality == "SR"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "AccessionNumber", "StudyDate", "StudyTime", "StudyID"):
        assert sr[keyword].value == sources[0][keyword].value, keyword
    assert (sr.ContentDate, sr.ContentTime) == ("20250218", "103005")
    assert sr.TimezoneOffsetFromUTC == "+0000"
    assert sr.PreliminaryFlag == "PRELIMINARY" and sr.VerificationFlag == "UNVERIFIED"
    assert sr.SeriesNumber == 9901 and sr.Manufacturer == "Hilum"
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == PRIVATE_SCHEME


def test_uids_are_deterministic_in_study_and_model_version() -> None:
    first, again = _build(now=NOW), _build(now=datetime(2026, 1, 1, tzinfo=UTC))
    assert (first.SeriesInstanceUID, first.SOPInstanceUID) == (again.SeriesInstanceUID, again.SOPInstanceUID)
    assert first.SOPInstanceUID == sr_sop_instance_uid(first.StudyInstanceUID, DEMO_MODEL.version)
    assert first.SeriesInstanceUID == sr_series_instance_uid(first.StudyInstanceUID, DEMO_MODEL.version)
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    other_version = _build(VALIDATED_MODEL)
    assert other_version.SOPInstanceUID != first.SOPInstanceUID
    for uid in (first.SOPInstanceUID, first.SeriesInstanceUID):
        assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64
    assert first.SeriesInstanceUID != first.SOPInstanceUID


def test_demo_weights_are_stated_in_text_and_series_description() -> None:
    demo = _build(DEMO_MODEL)
    assert DEMO_TEXT in _texts(demo)
    assert demo.SeriesDescription == DEMO_TEXT
    validated = _build(VALIDATED_MODEL)
    assert not any("DEMO" in text for text in _texts(validated))
    assert "DEMO" not in validated.SeriesDescription
    assert "New left pneumothorax." in _texts(validated)


def test_observer_is_the_algorithm_device() -> None:
    report = hd.sr.ComprehensiveSR.from_dataset(_build())
    content = report.content
    assert isinstance(content, hd.sr.MeasurementReport)
    (observer,) = content.get_observer_contexts()
    assert observer.observer_type.value == "121007"  # DCM Device
    device = observer.observer_identifying_attributes
    assert isinstance(device, hd.sr.DeviceObserverIdentifyingAttributes)
    assert device.manufacturer_name == "Hilum"
    assert device.name == "cxr_findings demo-untrained"


def test_each_finding_is_a_group_with_status_change_and_probability() -> None:
    groups = _groups(_build())
    assert set(groups) == {"pneumothorax", "nodule", "cardiomegaly"}
    expected = {
        "pneumothorax": (("36118008", "SCT"), "52101004", "new", 0.91),
        "nodule": (("nodule", PRIVATE_SCHEME), "82334004", "not-compared", 0.47),
        "cardiomegaly": (("8186001", "SCT"), "2667000", "resolved", 0.12),
    }
    for code, ((value, scheme), status, change, probability) in expected.items():
        group = groups[code]
        finding_type = group.finding_type
        assert finding_type is not None
        assert (finding_type.value, finding_type.scheme_designator) == (value, scheme)
        # highdicom annotates an evaluation's value as a number; it is the coded value.
        evaluations = {e.name.value: cast(hd.sr.CodedConcept, e.value).value
                       for e in group.get_qualitative_evaluations()}
        assert evaluations[value] == status
        assert evaluations["change-since-prior"] == change
        (measured,) = group.get_measurements(name=hd.sr.CodedConcept("122157", "DCM", "Probability"))
        assert measured.value == pytest.approx(probability)
        assert measured.unit.value == "{ratio}"
    site = groups["pneumothorax"].finding_sites[0]
    assert site.laterality is not None and site.laterality.value == "7771000"


def test_each_device_is_a_group_with_position_and_tip_distance_in_mm() -> None:
    groups = _groups(_build(empty=True, devices=True))
    assert list(groups) == ["device:ett", "device:picc", "device:chest_tube"]
    ett, picc, chest_tube = groups["device:ett"], groups["device:picc"], groups["device:chest_tube"]
    assert ett.finding_type is not None and ett.finding_type.value == "device:ett"
    (position,) = ett.get_qualitative_evaluations()
    assert cast(hd.sr.CodedConcept, position.value).value == "satisfactory"
    (distance,) = ett.get_measurements(name=hd.sr.CodedConcept("tip-to-carina", PRIVATE_SCHEME, "Tip to carina"))
    assert distance.value == pytest.approx(45.0)
    assert distance.unit.value == "mm"
    # A PICC with no placement call: its distance is measured, its position is "not-assessed", not a call.
    assert picc.finding_type is not None
    assert (picc.finding_type.value, picc.finding_type.meaning) == (
        "device:picc", "Peripherally inserted central catheter"
    )
    (position,) = picc.get_qualitative_evaluations()
    assert cast(hd.sr.CodedConcept, position.value).value == "not-assessed"
    (distance,) = picc.get_measurements(
        name=hd.sr.CodedConcept("tip-to-cavoatrial-junction", PRIVATE_SCHEME, "Tip to cavoatrial junction distance")
    )
    assert distance.value == pytest.approx(12.0)
    # A chest tube has no landmark: its probability is its only measurement.
    assert [m.name.value for m in chest_tube.get_measurements()] == ["122157"]


def test_change_is_left_out_when_no_prior_was_compared() -> None:
    sources = _sources()
    finding = _finding("effusion", FindingStatus.PRESENT, 0.8, None, "60046008")
    reported = dataclasses.replace(_reported(str(sources[0].StudyInstanceUID)), findings=(finding,), compared=False)
    sr = build_structured_report(sources, reported, _draft(DEMO_MODEL), now=NOW)
    (group,) = _groups(sr).values()
    assert [e.name.value for e in group.get_qualitative_evaluations()] == ["60046008"]


def test_no_findings_still_makes_one_group_saying_so() -> None:
    groups = _groups(_build(empty=True))
    assert list(groups) == ["no-reportable-finding"]


def test_sources_are_referenced_as_evidence_library_and_group_sources() -> None:
    sources = _sources()
    sr = _build()
    expected = {(str(s.SOPClassUID), str(s.SOPInstanceUID)) for s in sources}
    evidence = hd.sr.ComprehensiveSR.from_dataset(sr).get_evidence()
    assert {(str(e[3]), str(e[2])) for e in evidence} == expected
    assert {str(e[1]) for e in evidence} == {str(s.SeriesInstanceUID) for s in sources}
    for group in _groups(sr).values():
        assert {(str(i.referenced_sop_class_uid), str(i.referenced_sop_instance_uid))
                for i in group.source_images} == expected


def test_image_headers_suffice_as_sources() -> None:
    sources = _sources()
    for source in sources:
        del source.PixelData
    reported = _reported(str(sources[0].StudyInstanceUID))
    sr = build_structured_report(sources, reported, _draft(DEMO_MODEL), now=NOW)
    assert len(_groups(sr)) == 3


def test_sources_of_another_study_are_refused() -> None:
    sources = _sources()
    with pytest.raises(ValueError, match="another study"):
        build_structured_report(sources, _reported("1.2.3.999"), _draft(DEMO_MODEL), now=NOW)
    with pytest.raises(ValueError, match="at least one source"):
        build_structured_report([], _reported("1.2.3.999"), _draft(DEMO_MODEL), now=NOW)


def test_an_sr_that_supersedes_an_earlier_one_names_it_as_its_predecessor(
    tmp_path: Path, dciodvfy: Callable[[Path], list[str]]
) -> None:
    sources = _sources()
    reported = _reported(str(sources[0].StudyInstanceUID), VALIDATED_MODEL, empty=False)
    sr = build_structured_report(sources, reported, _draft(VALIDATED_MODEL), now=NOW,
                                 predecessor_version=DEMO_MODEL.version)
    (item,) = sr.PredecessorDocumentsSequence
    study = str(sources[0].StudyInstanceUID)
    assert item.StudyInstanceUID == study
    (series,) = item.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == sr_series_instance_uid(study, DEMO_MODEL.version)
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == sr_sop_instance_uid(study, DEMO_MODEL.version)
    assert series.ReferencedSOPSequence[0].ReferencedSOPClassUID == ComprehensiveSRStorage
    assert "PredecessorDocumentsSequence" not in _build(VALIDATED_MODEL)
    path = tmp_path / "sr.dcm"
    path.write_bytes(part10_bytes(sr))
    lines = dciodvfy(path)
    unexpected = [line for line in lines if line.startswith(("Error", "Warning")) and not ALLOWED_WARNING.match(line)]
    assert unexpected == []


def test_every_change_since_prior_has_its_coded_value() -> None:
    assert set(CHANGE_VALUE) == set(ChangeSincePrior)
    assert (CHANGE_VALUE[ChangeSincePrior.WORSENED].value, CHANGE_VALUE[ChangeSincePrior.IMPROVED].value) == (
        "worsened", "improved")
