"""What gets reported for a study, and that the draft, the CDS view and the FHIR bundle all say the same."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from hilum.common.fhir.bundle import build_report_bundle
from hilum.common.fhir.validation import bundle_json, validate_bundle
from hilum.common.reported_findings import (
    DEVICE_KIND_OF_TYPE,
    DEVICE_TYPE_OF_KIND,
    ChangeSincePrior,
    DevicePosition,
    DeviceType,
    FindingStatus,
    Laterality,
    ModelProvenance,
    PriorReference,
    ReportedDevice,
    reported_devices,
    reported_findings,
    study_date_of,
)
from hilum.common.study import InstanceInfo, PatientInfo, StudyInfo
from hilum.reporting.cds_summary import cds_view_of
from hilum.reporting.draft import draft_report
from hilum.v1 import messages_pb2

S = messages_pb2.FindingState
C = messages_pb2.Change
UID, PRIOR_UID = "1.2.3", "1.2.2"
MODEL = messages_pb2.ModelInfo(name="cxr_findings", version="demo-untrained", demo_weights=True)


def _finding(
    code: str, probability: float, state: messages_pb2.FindingState.ValueType, snomed: str = ""
) -> messages_pb2.Finding:
    return messages_pb2.Finding(code=code, display=code.capitalize(), probability=probability, threshold=0.5,
                                state=state, snomed_code=snomed)


def _comparison(*current: messages_pb2.Finding) -> messages_pb2.PriorComparison:
    return messages_pb2.PriorComparison(current=messages_pb2.StudyFindings(
        study=messages_pb2.StudyReference(study_instance_uid=UID), model=MODEL, findings=current
    ))


def _with_prior(
    comparison: messages_pb2.PriorComparison,
    prior: list[messages_pb2.Finding],
    changes: dict[str, messages_pb2.Change.ValueType],
    study_date: str = "20250301",
) -> messages_pb2.PriorComparison:
    comparison.prior.study_instance_uid = PRIOR_UID
    comparison.prior.study_date = study_date
    comparison.prior.findings.extend(prior)
    comparison.changes.extend(messages_pb2.FindingChange(code=c, change=v) for c, v in changes.items())
    return comparison


def _mixed() -> messages_pb2.PriorComparison:
    """Pneumothorax new, effusion uncertain, edema resolved, nodule absent on both."""
    return _with_prior(
        _comparison(
            _finding("nodule", 0.05, S.FINDING_STATE_ABSENT),
            _finding("edema", 0.1, S.FINDING_STATE_ABSENT, "19242006"),
            _finding("effusion", 0.45, S.FINDING_STATE_UNCERTAIN, "60046008"),
            _finding("pneumothorax", 0.91, S.FINDING_STATE_PRESENT, "36118008"),
        ),
        prior=[_finding("edema", 0.8, S.FINDING_STATE_PRESENT), _finding("nodule", 0.1, S.FINDING_STATE_ABSENT)],
        changes={"pneumothorax": C.CHANGE_NEW, "effusion": C.CHANGE_NOT_COMPARED, "edema": C.CHANGE_RESOLVED},
    )


def test_present_finding_is_reported_with_everything_about_it() -> None:
    reported = reported_findings(_comparison(_finding("pneumothorax", 0.91, S.FINDING_STATE_PRESENT, "36118008")))
    (finding,) = reported.findings
    assert (finding.code, finding.display, finding.snomed_code) == ("pneumothorax", "Pneumothorax", "36118008")
    assert finding.status == FindingStatus.PRESENT
    assert finding.probability == pytest.approx(0.91) and finding.threshold == 0.5
    assert finding.laterality == Laterality.UNSPECIFIED
    assert finding.change is None
    assert finding.model == ModelProvenance(name="cxr_findings", version="demo-untrained", demo_weights=True)
    assert reported.present == (finding,)


def test_model_provenance_keeps_the_weights_file_and_label_set_both_ways() -> None:
    info = messages_pb2.ModelInfo(name="cxr_findings", version="v7", demo_weights=False, weights_sha256="ab" * 32,
                                  label_set="18 labels, sha256 0123456789abcdef")
    assert ModelProvenance.of(info).as_info() == info
    assert ModelProvenance.of(messages_pb2.ModelInfo(name="m", version="v")).weights_sha256 == ""  # older results


def test_uncertain_finding_is_reported() -> None:
    reported = reported_findings(_comparison(_finding("effusion", 0.45, S.FINDING_STATE_UNCERTAIN)))
    assert [f.status for f in reported.findings] == [FindingStatus.UNCERTAIN]
    assert reported.uncertain == reported.findings


def test_absent_finding_is_assessed_but_not_reported() -> None:
    reported = reported_findings(_comparison(_finding("nodule", 0.05, S.FINDING_STATE_ABSENT)))
    assert reported.findings == ()
    assert reported.assessed_codes == ("nodule",)


def test_finding_resolved_since_a_compared_prior_is_reported() -> None:
    reported = reported_findings(_mixed())
    (resolved,) = reported.resolved
    assert (resolved.code, resolved.status) == ("edema", FindingStatus.RESOLVED)
    assert resolved.change == ChangeSincePrior.RESOLVED
    assert resolved.probability == pytest.approx(0.1)  # the current, sub-threshold probability


def test_a_compared_prior_gives_every_finding_a_change() -> None:
    reported = reported_findings(_mixed())
    assert reported.compared
    assert reported.prior == PriorReference(study_instance_uid=PRIOR_UID, study_date=date(2025, 3, 1))
    assert {f.code: f.change for f in reported.findings} == {
        "pneumothorax": ChangeSincePrior.NEW,
        "effusion": ChangeSincePrior.NOT_COMPARED,
        "edema": ChangeSincePrior.RESOLVED,
    }


def test_a_finding_the_priors_stage_left_out_is_not_compared() -> None:
    comparison = _mixed()
    del comparison.changes[:]
    reported = reported_findings(comparison)
    assert [f.change for f in reported.findings] == [ChangeSincePrior.NOT_COMPARED] * 2
    assert reported.resolved == ()  # resolved only as the priors stage decided it


def test_without_prior_there_is_no_change_and_nothing_resolved() -> None:
    comparison = _comparison(
        _finding("pneumothorax", 0.91, S.FINDING_STATE_PRESENT), _finding("edema", 0.1, S.FINDING_STATE_ABSENT)
    )
    reported = reported_findings(comparison)
    assert (reported.prior, reported.compared) == (None, False)
    assert [(f.code, f.change) for f in reported.findings] == [("pneumothorax", None)]


def test_a_prior_without_findings_is_named_but_not_compared() -> None:
    comparison = _mixed()
    del comparison.prior.findings[:]
    reported = reported_findings(comparison)
    assert reported.prior is not None and reported.prior.study_instance_uid == PRIOR_UID
    assert not reported.compared
    assert [(f.code, f.change) for f in reported.findings] == [("pneumothorax", None), ("effusion", None)]


def test_order_is_present_uncertain_resolved_each_most_probable_first() -> None:
    comparison = _with_prior(
        _comparison(
            _finding("edema", 0.2, S.FINDING_STATE_ABSENT),
            _finding("mass", 0.4, S.FINDING_STATE_UNCERTAIN),
            _finding("effusion", 0.6, S.FINDING_STATE_PRESENT),
            _finding("atelectasis", 0.3, S.FINDING_STATE_ABSENT),
            _finding("nodule", 0.45, S.FINDING_STATE_UNCERTAIN),
            _finding("pneumothorax", 0.9, S.FINDING_STATE_PRESENT),
        ),
        prior=[_finding("edema", 0.8, S.FINDING_STATE_PRESENT), _finding("atelectasis", 0.7, S.FINDING_STATE_PRESENT)],
        changes={"edema": C.CHANGE_RESOLVED, "atelectasis": C.CHANGE_RESOLVED},
    )
    reported = reported_findings(comparison)
    assert reported.codes == ("pneumothorax", "effusion", "nodule", "mass", "atelectasis", "edema")
    assert reported.assessed_codes == ("edema", "mass", "effusion", "atelectasis", "nodule", "pneumothorax")


def test_reported_findings_are_frozen() -> None:
    reported = reported_findings(_mixed())
    with pytest.raises(AttributeError):
        reported.findings[0].status = FindingStatus.UNCERTAIN  # type: ignore[misc]


def test_model_provenance_round_trips_a_model_info() -> None:
    assert ModelProvenance.of(MODEL).as_info() == MODEL


def test_label_names_the_side_only_when_known() -> None:
    (finding,) = reported_findings(_comparison(_finding("effusion", 0.7, S.FINDING_STATE_PRESENT))).findings
    assert finding.label == "Effusion"
    assert replace(finding, laterality=Laterality.LEFT).label == "Effusion (left)"


def test_absent_codes_are_the_assessed_labels_not_reported() -> None:
    reported = reported_findings(_mixed())
    assert reported.absent_codes == ("nodule",)


K, P = messages_pb2.DeviceKind, messages_pb2.DevicePosition


def _device(kind: messages_pb2.DeviceKind.ValueType, position: messages_pb2.DevicePosition.ValueType,
            distance: float | None = None) -> messages_pb2.DeviceFinding:
    device = messages_pb2.DeviceFinding(kind=kind, probability=0.875, position=position)
    if distance is not None:
        device.tip_distance_mm = distance
    return device


def test_devices_are_reported_from_the_current_study() -> None:
    comparison = _mixed()
    comparison.current.devices.append(_device(K.DEVICE_KIND_ETT, P.DEVICE_POSITION_SATISFACTORY, 45.3))
    (device,) = reported_findings(comparison).devices
    assert device == ReportedDevice(code="device:ett", kind=DeviceType.ETT, display="Endotracheal tube",
                                    position=DevicePosition.SATISFACTORY, tip_distance_mm=45.3, probability=0.875,
                                    landmark="carina", position_called=True)
    assert reported_findings(_mixed()).devices == ()


def test_proto_kinds_and_device_types_are_one_vocabulary() -> None:
    kinds = [kind for kind in K.values() if kind != K.DEVICE_KIND_UNSPECIFIED]
    # Each proto name is the DeviceType value in capitals, and the map goes both ways.
    assert {K.Name(kind): DEVICE_TYPE_OF_KIND[kind] for kind in kinds} == {
        f"DEVICE_KIND_{t.value.upper()}": t for t in DeviceType
    }
    assert all(DEVICE_TYPE_OF_KIND[DEVICE_KIND_OF_TYPE[t]] is t for t in DeviceType)
    # Stored payloads keep their numbers across the rename.
    assert (K.DEVICE_KIND_ETT, K.DEVICE_KIND_NG_TUBE, K.DEVICE_KIND_CVC, K.DEVICE_KIND_CHEST_TUBE,
            K.DEVICE_KIND_PACEMAKER, K.DEVICE_KIND_PICC) == (1, 2, 3, 4, 5, 6)


@pytest.mark.parametrize(("kind", "code", "display", "landmark"), [
    (K.DEVICE_KIND_ETT, "device:ett", "Endotracheal tube", "carina"),
    (K.DEVICE_KIND_NG_TUBE, "device:ng_tube", "Nasogastric tube", "gastroesophageal junction"),
    (K.DEVICE_KIND_CVC, "device:cvc", "Central venous catheter", "cavoatrial junction"),
    (K.DEVICE_KIND_PICC, "device:picc", "Peripherally inserted central catheter", "cavoatrial junction"),
    (K.DEVICE_KIND_CHEST_TUBE, "device:chest_tube", "Chest tube", None),
    (K.DEVICE_KIND_PACEMAKER, "device:pacemaker", "Pacemaker lead", None),
])
def test_each_device_kind_has_a_code_name_and_landmark(
    kind: messages_pb2.DeviceKind.ValueType, code: str, display: str, landmark: str | None
) -> None:
    (device,) = reported_devices([_device(kind, P.DEVICE_POSITION_MALPOSITIONED, -20.0)])
    assert (device.code, device.display, device.landmark) == (code, display, landmark)
    assert device.tip_distance_mm == (-20.0 if landmark else None)  # no landmark, no distance


def test_positions_map_and_unspecified_is_indeterminate() -> None:
    devices = reported_devices([_device(K.DEVICE_KIND_CHEST_TUBE, position) for position in (
        P.DEVICE_POSITION_SATISFACTORY, P.DEVICE_POSITION_MALPOSITIONED, P.DEVICE_POSITION_INDETERMINATE,
        P.DEVICE_POSITION_UNSPECIFIED)])
    assert [d.position for d in devices] == [DevicePosition.SATISFACTORY, DevicePosition.MALPOSITIONED,
                                             DevicePosition.INDETERMINATE, DevicePosition.INDETERMINATE]
    # Without position_called, only a satisfactory or malpositioned position (older payloads) is a call.
    assert [d.position_called for d in devices] == [True, True, False, False]


def test_a_called_indeterminate_position_is_a_call() -> None:
    device = _device(K.DEVICE_KIND_CVC, P.DEVICE_POSITION_INDETERMINATE, 30.0)
    device.position_called = True
    device.position_reason = "tip 30.0 mm above the cavoatrial junction, in the upper or middle superior vena cava"
    (reported,) = reported_devices([device])
    assert (reported.position, reported.position_called) == (DevicePosition.INDETERMINATE, True)
    assert reported.position_reason == device.position_reason


def test_a_device_without_a_call_carries_its_reason_landmark_and_measurement() -> None:
    device = _device(K.DEVICE_KIND_PICC, P.DEVICE_POSITION_UNSPECIFIED, 12.04)
    device.landmark = "cavoatrial junction"
    device.measurement = "Imager Pixel Spacing corrected by the Estimated Radiographic Magnification Factor 1.1"
    device.position_reason = "placement thresholds are for adults; patient is under 18"
    (reported,) = reported_devices([device])
    assert reported == ReportedDevice(
        code="device:picc", kind=DeviceType.PICC, display="Peripherally inserted central catheter",
        position=DevicePosition.INDETERMINATE, tip_distance_mm=12.0, probability=0.875,
        landmark="cavoatrial junction", measurement=device.measurement, position_reason=device.position_reason,
        position_called=False,
    )


def test_the_findings_landmark_is_kept_and_a_distance_needs_one() -> None:
    measured_to_carina = _device(K.DEVICE_KIND_CVC, P.DEVICE_POSITION_SATISFACTORY, 15.0)
    measured_to_carina.landmark = "carina"
    no_landmark = _device(K.DEVICE_KIND_PACEMAKER, P.DEVICE_POSITION_UNSPECIFIED, 15.0)
    unmeasured = _device(K.DEVICE_KIND_ETT, P.DEVICE_POSITION_UNSPECIFIED)
    unmeasured.measurement = "distance not measurable: no pixel spacing"
    ett, cvc, lead = reported_devices([measured_to_carina, no_landmark, unmeasured])
    assert (cvc.landmark, cvc.tip_distance_mm) == ("carina", 15.0)
    assert (lead.landmark, lead.tip_distance_mm) == (None, None)
    assert (ett.landmark, ett.tip_distance_mm, ett.measurement) == ("carina", None, unmeasured.measurement)


def test_devices_are_numbered_per_kind_and_ordered_by_kind() -> None:
    devices = reported_devices([
        _device(K.DEVICE_KIND_PICC, P.DEVICE_POSITION_SATISFACTORY, 5.0),
        _device(K.DEVICE_KIND_CVC, P.DEVICE_POSITION_SATISFACTORY, 10.0),
        _device(K.DEVICE_KIND_UNSPECIFIED, P.DEVICE_POSITION_SATISFACTORY),
        _device(K.DEVICE_KIND_PACEMAKER, P.DEVICE_POSITION_SATISFACTORY),
        _device(K.DEVICE_KIND_ETT, P.DEVICE_POSITION_SATISFACTORY),
        _device(K.DEVICE_KIND_CVC, P.DEVICE_POSITION_MALPOSITIONED),
    ])
    assert [(d.code, d.display, d.tip_distance_mm) for d in devices] == [
        ("device:ett", "Endotracheal tube", None),
        ("device:cvc", "Central venous catheter", 10.0),
        ("device:cvc:2", "Second central venous catheter", None),
        ("device:picc", "Peripherally inserted central catheter", 5.0),
        ("device:pacemaker", "Pacemaker lead", None),
    ]


@pytest.mark.parametrize(("value", "expected"), [("20250301", date(2025, 3, 1)), ("", None), ("2025", None),
                                                 ("20251301", None), ("2025030x", None)])
def test_study_date_of(value: str, expected: date | None) -> None:
    assert study_date_of(value) == expected


# Every output reads the same ReportedFindings, so all name the same findings in the same order.

PATIENT = PatientInfo(patient_id="P7", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F")
ISSUED = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)


def _study(uid: str) -> StudyInfo:
    instance = InstanceInfo(sop_instance_uid=f"{uid}.1.1", sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
                            series_instance_uid=f"{uid}.1", series_number=1, instance_number=1, modality="DX",
                            view_position="PA", rows=64, columns=64, pixel_spacing_mm=(0.139, 0.139))
    return StudyInfo(study_instance_uid=uid, patient=PATIENT, started=datetime(2025, 3, 2, 10, 5),
                     accession_number="A1", description="XR CHEST PA", instances=(instance,))


Outputs = tuple[list[str], list[tuple[str, str | None]], list[dict[str, Any]]]


def _outputs(comparison: messages_pb2.PriorComparison) -> Outputs:
    """The reported codes the draft's FINDINGS cite (in report order), the CDS view's (code, change), the bundle's
    Observations."""
    reported = reported_findings(comparison)
    draft = draft_report(reported)
    prior = _study(PRIOR_UID) if reported.prior is not None else None
    data = bundle_json(build_report_bundle(_study(UID), reported, draft, prior_study=prior, issued=ISSUED,
                                           patient_identifier_system="urn:oid:1.2.3"))
    assert validate_bundle(data) == []
    view = cds_view_of(_study(UID), reported, draft, "report-1", ISSUED, "urn:oid:1.2.3.4")
    stated = [code for s in draft.findings for code in s.finding_codes if code in reported.codes]
    observations = [e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Observation"]
    shown = [(f.code, f.change.value if f.change else None) for f in view.findings]
    return sorted(stated, key=reported.codes.index), shown, observations


def _observation_change(observation: dict[str, Any]) -> str | None:
    values = [c["valueCodeableConcept"]["coding"][0]["code"] for c in observation["component"]
              if c["code"]["coding"][0]["code"] == "change-since-prior"]
    return values[0] if values else None


def test_draft_cds_view_and_observations_name_the_same_findings() -> None:
    drafted, shown, observations = _outputs(_mixed())
    observed = [(o["code"]["coding"][0]["code"], _observation_change(o)) for o in observations]
    assert drafted == [code for code, _ in shown] == ["pneumothorax", "effusion", "edema"]
    assert shown == observed == [("pneumothorax", "new"), ("effusion", "not-compared"), ("edema", "resolved")]
    assert [o["valueCodeableConcept"]["coding"][0]["display"] for o in observations] == [
        "Present", "Indeterminate", "Absent"
    ]


@pytest.mark.parametrize("case", ["no prior", "prior without findings"])
def test_without_a_compared_prior_no_output_states_a_change(case: str) -> None:
    comparison = _mixed()
    if case == "no prior":
        comparison.ClearField("prior")
        del comparison.changes[:]
    else:
        del comparison.prior.findings[:]
    drafted, shown, observations = _outputs(comparison)
    observed = [(o["code"]["coding"][0]["code"], _observation_change(o)) for o in observations]
    assert drafted == ["pneumothorax", "effusion"]
    assert shown == observed == [("pneumothorax", None), ("effusion", None)]


def test_draft_and_observations_name_the_same_devices() -> None:
    comparison = _mixed()
    picc = _device(K.DEVICE_KIND_PICC, P.DEVICE_POSITION_UNSPECIFIED, 8.0)
    picc.position_reason = "placement thresholds are for adults; patient is under 18"
    comparison.current.devices.extend([picc, _device(K.DEVICE_KIND_ETT, P.DEVICE_POSITION_MALPOSITIONED, -5.0)])
    reported = reported_findings(comparison)
    draft = draft_report(reported)
    _, _, observations = _outputs(comparison)
    drafted = [c for s in draft.findings for c in s.finding_codes if c.startswith("device:")]
    observed = [o["code"]["coding"][0]["code"] for o in observations if o["code"]["coding"][0]["code"].startswith(
        "device:")]
    assert drafted == observed == ["device:ett", "device:picc"]
    assert [o["valueCodeableConcept"]["coding"][0]["code"] for o in observations[-2:]] == [
        "malpositioned", "not-assessed"
    ]
