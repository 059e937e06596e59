"""The transaction bundle: conditional creates, internal references, determinism, demo wording."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.identifier import Identifier

from hilum.common.fhir.bundle import build_report_bundle, if_none_exist
from hilum.common.fhir.references import conditional_reference
from hilum.common.fhir.validation import bundle_json, validate_bundle
from hilum.common.reported_findings import reported_findings
from hilum.common.study import StudyInfo
from hilum.common.wording import DEMO_NOTICE, DEMO_WARNING
from hilum.v1 import messages_pb2
from tests.helpers import reference_values, resources_of

MRN_SYSTEM = "urn:oid:1.2.3.4.5.6"
ISSUED = datetime(2024, 3, 5, 9, 30, tzinfo=UTC)


def _build(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo | None,
    issued: datetime = ISSUED,
    **options: Any,
) -> dict[str, Any]:
    bundle = build_report_bundle(
        study,
        reported_findings(comparison),
        draft,
        prior_study=prior_study,
        issued=issued,
        patient_identifier_system=MRN_SYSTEM,
        **options,
    )
    return bundle_json(bundle)


def _entry(data: dict[str, Any], kind: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [e for e in data["entry"] if e["resource"]["resourceType"] == kind]
    (entry,) = entries
    return entry


@pytest.fixture
def data(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> dict[str, Any]:
    return _build(study, comparison, draft, prior_study)


def test_bundle_is_valid(data: dict[str, Any]) -> None:
    assert data["resourceType"] == "Bundle" and data["type"] == "transaction"
    assert validate_bundle(data) == []


def test_entries_and_order(data: dict[str, Any]) -> None:
    kinds = [e["resource"]["resourceType"] for e in data["entry"]]
    assert kinds == [
        "ImagingStudy",
        "ImagingStudy",
        "Device",
        "Observation",
        "Observation",
        "Observation",
        "DiagnosticReport",
        "Provenance",
    ]


def _change(observation: dict[str, Any]) -> str | None:
    """The change-since-prior code of an Observation, None when it states none."""
    codes = [
        c["valueCodeableConcept"]["coding"][0]["code"]
        for c in observation["component"]
        if c["code"]["coding"][0]["code"] == "change-since-prior"
    ]
    return codes[0] if codes else None


def test_one_observation_per_reported_finding_in_report_order(data: dict[str, Any]) -> None:
    observations = resources_of(data, "Observation")
    codes = [o["code"]["coding"][0]["code"] for o in observations]
    assert codes == ["pneumothorax", "effusion", "cardiomegaly"]  # present, uncertain, resolved
    assert [_change(o) for o in observations] == ["new", "unchanged", "resolved"]


def test_a_prior_without_findings_states_no_change(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> None:
    del comparison.prior.findings[:]
    data = _build(study, comparison, draft, None)
    assert validate_bundle(data) == []
    observations = resources_of(data, "Observation")
    assert [o["code"]["coding"][0]["code"] for o in observations] == ["pneumothorax", "effusion"]
    assert [_change(o) for o in observations] == [None, None]


MRN_REFERENCE = f"Patient?identifier={MRN_SYSTEM}|MRN-0042"


def test_every_reference_is_an_entry_full_url_or_the_hospitals_patient(data: dict[str, Any]) -> None:
    full_urls = {e["fullUrl"] for e in data["entry"]}
    references = list(reference_values(data))
    assert len(references) > 20
    internal = [r for r in references if r.startswith("urn:uuid:")]
    assert set(internal) <= full_urls
    assert set(references) - set(internal) == {MRN_REFERENCE}
    for entry in data["entry"]:
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"


def test_conditional_creates_on_stable_identifiers(
    data: dict[str, Any], study: StudyInfo, prior_study: StudyInfo
) -> None:
    requests = {e["resource"]["resourceType"]: e["request"] for e in data["entry"]}
    assert "Patient" not in requests
    assert requests["DiagnosticReport"]["ifNoneExist"] == (
        f"identifier=urn:ietf:rfc:3986|urn:hilum:report:{study.study_instance_uid}:demo-untrained"
    )
    assert requests["Device"]["ifNoneExist"] == (
        "identifier=https://hilum.dev/fhir/NamingSystem/algorithm|cxr_findings:demo-untrained"
    )
    studies = [
        e["request"]["ifNoneExist"] for e in data["entry"] if e["resource"]["resourceType"] == "ImagingStudy"
    ]
    assert studies == [
        f"identifier=urn:dicom:uid|urn:oid:{study.study_instance_uid}",
        f"identifier=urn:dicom:uid|urn:oid:{prior_study.study_instance_uid}",
    ]
    assert requests["Provenance"]["ifNoneExist"] == (
        "_tag=https://hilum.dev/fhir/CodeSystem/report-provenance|"
        f"urn:hilum:report:{study.study_instance_uid}:demo-untrained"
    )
    provenance = _entry(data, "Provenance")["resource"]
    assert provenance["meta"]["tag"][0]["code"] == f"urn:hilum:report:{study.study_instance_uid}:demo-untrained"
    assert all(e["request"]["method"] == "POST" for e in data["entry"])
    assert all(e["request"]["url"] == e["resource"]["resourceType"] for e in data["entry"])


def test_report_and_observations_point_at_both_studies(data: dict[str, Any]) -> None:
    study_urls = [e["fullUrl"] for e in data["entry"] if e["resource"]["resourceType"] == "ImagingStudy"]
    report = _entry(data, "DiagnosticReport")["resource"]
    assert [r["reference"] for r in report["imagingStudy"]] == study_urls
    observation_urls = [e["fullUrl"] for e in data["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert [r["reference"] for r in report["result"]] == observation_urls
    for observation in resources_of(data, "Observation"):
        assert [r["reference"] for r in observation["derivedFrom"]] == study_urls
        assert observation["device"]["reference"] == _entry(data, "Device")["fullUrl"]
    provenance = _entry(data, "Provenance")["resource"]
    assert [t["reference"] for t in provenance["target"]] == [
        _entry(data, "DiagnosticReport")["fullUrl"],
        *observation_urls,
    ]
    assert provenance["agent"][0]["who"]["reference"] == _entry(data, "Device")["fullUrl"]


def test_demo_wording_in_report_and_device(data: dict[str, Any]) -> None:
    assert _entry(data, "DiagnosticReport")["resource"]["conclusion"].startswith(DEMO_NOTICE)
    device = _entry(data, "Device")["resource"]
    assert any(DEMO_WARNING in n["name"] for n in device["deviceName"])


def test_building_twice_gives_identical_json(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    first = json.dumps(_build(study, comparison, draft, prior_study), sort_keys=True)
    second = json.dumps(_build(study, comparison, draft, prior_study), sort_keys=True)
    assert first == second


def test_another_model_version_gives_another_report(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    first = _build(study, comparison, draft, prior_study)
    comparison.current.model.version = "demo-untrained-2"
    second = _build(study, comparison, draft, prior_study)
    assert first["entry"][0]["fullUrl"] == second["entry"][0]["fullUrl"]  # the same ImagingStudy
    assert _entry(first, "DiagnosticReport")["fullUrl"] != _entry(second, "DiagnosticReport")["fullUrl"]
    assert _entry(first, "Provenance")["request"] != _entry(second, "Provenance")["request"]


def test_validated_weights_without_prior(
    study: StudyInfo,
    comparison_factory: Callable[..., messages_pb2.PriorComparison],
    draft_factory: Callable[[messages_pb2.PriorComparison], messages_pb2.DraftReport],
) -> None:
    comparison = comparison_factory(demo=False, with_prior=False)
    data = _build(study, comparison, draft_factory(comparison), None)
    assert validate_bundle(data) == []
    assert len(resources_of(data, "ImagingStudy")) == 1
    assert "DEMO" not in json.dumps(data)


def test_prior_known_only_by_uid_is_a_logical_reference(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport
) -> None:
    prior_uid = comparison.prior.study_instance_uid
    data = _build(study, comparison, draft, None)
    assert validate_bundle(data) == []
    assert len(resources_of(data, "ImagingStudy")) == 1
    logical = _entry(data, "DiagnosticReport")["resource"]["imagingStudy"][1]
    assert logical == {
        "type": "ImagingStudy",
        "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{prior_uid}"},
    }


def test_inputs_about_different_studies_are_refused(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    draft.study_instance_uid = "9.9.9"
    with pytest.raises(ValueError, match="draft is for study"):
        _build(study, comparison, draft, prior_study)


def test_reported_findings_of_another_study_are_refused(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    comparison.current.study.study_instance_uid = "9.9.9"
    with pytest.raises(ValueError, match="reported findings are for study"):
        _build(study, comparison, draft, prior_study)


def test_a_prior_study_without_a_prior_in_the_findings_is_refused(
    study: StudyInfo,
    comparison_factory: Callable[..., messages_pb2.PriorComparison],
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    with pytest.raises(ValueError, match="name no prior"):
        _build(study, comparison_factory(with_prior=False), draft, prior_study)


def test_prior_study_must_be_the_comparisons_prior(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    with pytest.raises(ValueError, match="prior"):
        _build(study, comparison, draft, replace(prior_study, study_instance_uid="7.7.7"))


def test_issued_needs_an_offset(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    with pytest.raises(ValueError, match="timezone"):
        _build(study, comparison, draft, prior_study, issued=datetime(2024, 3, 5, 9, 30))


def test_if_none_exist_escapes_search_syntax() -> None:
    criteria = if_none_exist(Identifier(system="urn:x", value="a|b,c d"))
    assert criteria == "identifier=urn:x|a%5C%7Cb%5C%2Cc%20d"


def test_every_resource_names_the_hospitals_patient_by_mrn(data: dict[str, Any]) -> None:
    for entry in data["entry"]:
        subject = entry["resource"].get("subject")
        if subject is None:
            continue
        assert subject == {"reference": MRN_REFERENCE, "type": "Patient",
                           "identifier": {"type": subject["identifier"]["type"], "system": MRN_SYSTEM,
                                          "value": "MRN-0042"}}
        assert subject["identifier"]["type"]["coding"][0]["code"] == "MR"


def test_a_patient_is_created_only_where_configured(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    data = _build(study, comparison, draft, prior_study, create_patient=True)
    assert validate_bundle(data) == []
    patient = _entry(data, "Patient")
    assert patient["request"]["ifNoneExist"] == f"identifier={MRN_SYSTEM}|MRN-0042"
    assert _entry(data, "DiagnosticReport")["resource"]["subject"] == {"reference": patient["fullUrl"]}
    assert MRN_REFERENCE not in set(reference_values(data))


def test_the_report_is_based_on_the_order_and_presented_as_text_and_html(
    study: StudyInfo, comparison: messages_pb2.PriorComparison, draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    order = conditional_reference("ServiceRequest", Identifier(system="urn:acc", value="ACC1"))
    html = '<div xmlns="http://www.w3.org/1999/xhtml"><p>FINDINGS</p></div>'
    data = _build(study, comparison, draft, prior_study, based_on=order, presented_html=html)
    assert validate_bundle(data) == []
    report = _entry(data, "DiagnosticReport")["resource"]
    assert report["basedOn"] == [{"reference": "ServiceRequest?identifier=urn:acc|ACC1", "type": "ServiceRequest",
                                  "identifier": {"system": "urn:acc", "value": "ACC1"}}]
    forms = {form["contentType"]: base64.b64decode(form["data"]).decode() for form in report["presentedForm"]}
    assert forms["text/html; charset=utf-8"] == html
    assert "FINDINGS" in forms["text/plain; charset=utf-8"]


def test_observations_carry_an_interpretation_and_the_chest_as_body_site(data: dict[str, Any]) -> None:
    observations = resources_of(data, "Observation")
    assert [o["interpretation"][0]["coding"][0]["code"] for o in observations] == ["POS", "IND", "NEG"]
    assert all(o["bodySite"]["coding"][0]["code"] == "51185008" for o in observations)


def test_devices_are_observations_of_the_current_study_that_the_validator_accepts(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    # A child's PICC: measured, no placement call; an ETT called malpositioned.
    comparison.current.devices.extend([
        messages_pb2.DeviceFinding(
            kind=messages_pb2.DEVICE_KIND_PICC, probability=0.8, tip_distance_mm=12.0, landmark="cavoatrial junction",
            measurement="Imager Pixel Spacing corrected by the Estimated Radiographic Magnification Factor 1.1",
            position_reason="placement thresholds are for adults; patient is under 18",
        ),
        messages_pb2.DeviceFinding(
            kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9, position=messages_pb2.DEVICE_POSITION_MALPOSITIONED,
            position_called=True, tip_distance_mm=-5.0, landmark="carina",
        ),
    ])
    data = _build(study, comparison, draft, prior_study)
    assert validate_bundle(data) == []
    observations = resources_of(data, "Observation")
    assert [o["code"]["coding"][0]["code"] for o in observations] == [
        "pneumothorax", "effusion", "cardiomegaly", "device:ett", "device:picc"
    ]
    ett, picc = observations[3:]
    assert [ett["valueCodeableConcept"]["coding"][0]["code"], picc["valueCodeableConcept"]["coding"][0]["code"]] == [
        "malpositioned", "not-assessed"
    ]
    reason = [c["valueString"] for c in picc["component"] if c["code"]["coding"][0]["code"] == "position-reason"]
    assert reason == ["placement thresholds are for adults; patient is under 18"]
    # Devices are judged on the current study alone; the report and its Provenance list them with the findings.
    current = data["entry"][0]["fullUrl"]
    assert [r["reference"] for r in picc["derivedFrom"]] == [current]
    observation_urls = [e["fullUrl"] for e in data["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert [r["reference"] for r in _entry(data, "DiagnosticReport")["resource"]["result"]] == observation_urls
    assert [t["reference"] for t in _entry(data, "Provenance")["resource"]["target"]][1:] == observation_urls
    requests = [e["request"]["ifNoneExist"] for e in data["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert requests[3:] == [
        f"identifier=urn:ietf:rfc:3986|urn:hilum:observation:{study.study_instance_uid}:demo-untrained:device:ett",
        f"identifier=urn:ietf:rfc:3986|urn:hilum:observation:{study.study_instance_uid}:demo-untrained:device:picc",
    ]


def test_the_devices_model_is_its_own_device_and_author_of_the_tube_and_line_observations(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    comparison.current.devices_model.CopyFrom(messages_pb2.ModelInfo(
        name="cxr_devices", version="landmarks-2", demo_weights=False, weights_sha256="ab" * 32,
        label_set="9 landmarks"))
    comparison.current.devices.append(messages_pb2.DeviceFinding(
        kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9, position=messages_pb2.DEVICE_POSITION_SATISFACTORY,
        position_called=True, tip_distance_mm=45.0, landmark="carina"))
    data = _build(study, comparison, draft, prior_study)
    assert validate_bundle(data) == []
    devices = [e for e in data["entry"] if e["resource"]["resourceType"] == "Device"]
    assert [d["resource"]["identifier"][0]["value"] for d in devices] == [
        "cxr_findings:demo-untrained", "cxr_devices:landmarks-2"]
    findings_url, devices_url = (d["fullUrl"] for d in devices)
    # The devices model runs validated weights here: its Device carries no demo warning, the findings model's does.
    assert "safety" in devices[0]["resource"] and "safety" not in devices[1]["resource"]
    assert {"type": {"text": "weights SHA-256"}, "value": "ab" * 32} in devices[1]["resource"]["version"]
    observations = resources_of(data, "Observation")
    assert [o["device"]["reference"] for o in observations] == [findings_url] * 3 + [devices_url]
    assert "note" not in observations[-1]
    authors = [a["who"]["reference"] for a in _entry(data, "Provenance")["resource"]["agent"]]
    assert authors == [findings_url, devices_url]


def test_without_tubes_or_lines_the_devices_model_adds_no_device(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    comparison.current.devices_model.CopyFrom(messages_pb2.ModelInfo(name="cxr_devices", version="2"))
    data = _build(study, comparison, draft, prior_study)
    assert len(resources_of(data, "Device")) == 1
    assert len(_entry(data, "Provenance")["resource"]["agent"]) == 1


def test_a_report_that_supersedes_an_earlier_version_is_amended_and_names_it(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    data = _build(study, comparison, draft, prior_study, amends="0.9.0")
    assert validate_bundle(data) == []
    report = _entry(data, "DiagnosticReport")["resource"]
    assert report["status"] == "amended"
    notice = "AMENDED: this result replaces the one reported for this study with model version 0.9.0."
    # The demo disclaimer still comes first, then the amendment.
    assert report["conclusion"].startswith(f"{DEMO_NOTICE} {notice} ")
    text = base64.b64decode(report["presentedForm"][0]["data"]).decode()
    assert text.splitlines()[:3] == [DEMO_WARNING, notice, "FINDINGS: There is a right pneumothorax."]
    provenance = _entry(data, "Provenance")["resource"]
    earlier = f"urn:hilum:report:{study.study_instance_uid}:0.9.0"
    assert provenance["entity"][-1] == {"role": "revision", "what": {
        "type": "DiagnosticReport", "identifier": {"system": "urn:ietf:rfc:3986", "value": earlier}}}
    assert provenance["activity"]["coding"][0]["code"] == "UPDATE"
    # The first report of a study is preliminary and revises nothing.
    first = _build(study, comparison, draft, prior_study)
    assert _entry(first, "DiagnosticReport")["resource"]["status"] == "preliminary"
    assert all(e["role"] == "source" for e in _entry(first, "Provenance")["resource"]["entity"])


def test_tubes_compared_with_the_prior_pass_the_validator(
    study: StudyInfo,
    comparison: messages_pb2.PriorComparison,
    draft: messages_pb2.DraftReport,
    prior_study: StudyInfo,
) -> None:
    comparison.current.devices.append(messages_pb2.DeviceFinding(
        kind=messages_pb2.DEVICE_KIND_ETT, probability=0.9, tip_distance_mm=35.0, landmark="carina"))
    comparison.device_changes.append(messages_pb2.DeviceComparison(
        kind=messages_pb2.DEVICE_KIND_ETT, number=1, change=messages_pb2.DEVICE_CHANGE_MOVED, tip_movement_mm=-15.0))
    data = _build(study, comparison, draft, prior_study)
    assert validate_bundle(data) == []
    (ett,) = [o for o in resources_of(data, "Observation") if o["code"]["coding"][0]["code"] == "device:ett"]
    assert {c["code"]["coding"][0]["code"] for c in ett["component"]} >= {"change-since-prior", "tip-movement"}
