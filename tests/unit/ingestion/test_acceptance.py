"""Acceptance rules: the samples and every odd but valid input accepted; every bad input refused with its
code and a reason without patient data; each rule on its own; robust and fast on adversarial bytes."""

from __future__ import annotations

import dataclasses
import io
import os
import random
import statistics
import threading
import time
from pathlib import Path

import pydicom
import pytest

from hilum.common.dicom.header import parse_dataset, read_header
from hilum.common.dicom.pixels import DECODE_SLOTS
from hilum.common.settings import IngestionSection
from hilum.common.study import InstanceInfo
from hilum.ingestion.acceptance import AcceptanceRules, AcceptedInstance, RejectedInstance, accept_instance
from hilum.ingestion.rejection import RejectedInstance as RaisedByTheRules
from hilum.samples import bad_inputs as bad
from hilum.samples.acceptable_oddities import ODD_NAME_PATIENT_ID, ODD_PATIENT_NAME
from hilum.samples.dicom_files import dx_dataset
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.samples.variant_files import variant_study
from hilum.v1 import ingestion_pb2
from tests.unit.common.dicom.sample_bytes import COLUMNS, ROWS, bare_bytes
from tests.unit.ingestion.acceptance_checks import RULES, code_of, rejection

Code = ingestion_pb2.RejectionCode
# pydicom warns about the values these tests make malformed on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_the_public_api_is_the_rules_and_their_outcomes() -> None:
    import hilum.ingestion.acceptance as acceptance

    assert sorted(acceptance.__all__) == ["AcceptanceRules", "AcceptedInstance", "RejectedInstance", "accept_instance"]
    assert RejectedInstance is RaisedByTheRules  # callers catch what every rules module raises


# The rules


def test_default_rules_are_the_ingestion_settings_defaults() -> None:
    assert AcceptanceRules() == AcceptanceRules.from_settings(IngestionSection())
    assert RULES.chest_body_parts == {"CHEST", "THORAX", "LUNG", "CHEST_LAT"}
    assert (RULES.accept_secondary_capture, RULES.min_image_side_px, RULES.max_aspect_ratio) == (False, 128, 3.0)


def test_rules_come_from_settings_with_body_parts_in_upper_case() -> None:
    section = IngestionSection(
        chest_body_parts=["chest", "Torax"], accept_secondary_capture=True, min_image_side_px=64, max_aspect_ratio=2
    )
    rules = AcceptanceRules.from_settings(section)
    assert rules == AcceptanceRules(frozenset({"CHEST", "TORAX"}), True, 64, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.min_image_side_px = 1  # type: ignore[misc]
    for invalid in ({"min_image_side_px": 0}, {"max_aspect_ratio": 0.5}):
        with pytest.raises(ValueError):
            AcceptanceRules(**invalid)  # type: ignore[arg-type]


# Accepted instances


def test_each_sample_is_accepted_with_its_header_and_no_notes(sample_files: list[Path]) -> None:
    for path, spec in zip(sample_files, SAMPLE_STUDIES, strict=True):
        accepted = accept_instance(path.read_bytes(), RULES)
        assert isinstance(accepted, AcceptedInstance) and accepted.notes == ()
        # The samples say DX and CHEST themselves: what acceptance returns is the header as read.
        assert accepted.header == read_header(parse_dataset(path.read_bytes()))
        assert (accepted.header.study_instance_uid, accepted.header.instance.sop_instance_uid) == (
            spec.study_instance_uid,
            spec.sop_instance_uid,
        )
    portable = accept_instance(sample_files[3].read_bytes(), RULES).header
    assert (portable.instance.view_position, portable.study_description) == ("AP", "XR CHEST AP PORTABLE")


def test_the_instance_is_stored_with_its_object_key(sample_files: list[Path]) -> None:
    header = accept_instance(sample_files[0].read_bytes(), RULES).header
    stored = dataclasses.replace(header.instance, object_key="studies/abc/instance.dcm")
    assert stored == InstanceInfo(
        sop_instance_uid=SAMPLE_STUDIES[0].sop_instance_uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
        series_instance_uid=SAMPLE_STUDIES[0].series_instance_uid,
        series_number=1,
        instance_number=1,
        modality="DX",
        view_position="PA",
        rows=ROWS,
        columns=COLUMNS,
        pixel_spacing_mm=(0.139, 0.139),
        object_key="studies/abc/instance.dcm",
    )


def test_a_decode_waits_for_a_free_slot_so_a_busy_door_holds_a_bounded_number_of_images(
    sample_files: list[Path],
) -> None:
    """While every one of the process's DECODE_SLOTS is taken, acceptance waits before decoding; a slot given back
    lets it finish."""
    content = sample_files[0].read_bytes()
    outcome: list[object] = []
    taken = 0
    while DECODE_SLOTS.acquire(blocking=False):
        taken += 1
    try:
        waiting = threading.Thread(target=lambda: outcome.append(accept_instance(content, RULES)))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive() and outcome == []  # parsed and checked, now waiting for a slot
    finally:
        for _ in range(taken):
            DECODE_SLOTS.release()
    waiting.join(30)
    assert not waiting.is_alive() and isinstance(outcome[0], AcceptedInstance)
    assert taken == (os.cpu_count() or 1)


def test_bare_dataset_without_preamble_is_accepted(sample_files: list[Path]) -> None:
    content = bare_bytes(pydicom.dcmread(sample_files[0]))
    assert content[128:132] != b"DICM"
    assert accept_instance(content, RULES).header.instance.sop_instance_uid == SAMPLE_STUDIES[0].sop_instance_uid


@pytest.mark.parametrize(("name", "content"), bad.acceptable_oddities(), ids=[n for n, _ in bad.acceptable_oddities()])
def test_every_acceptable_oddity_is_accepted(name: str, content: bytes) -> None:
    accepted = accept_instance(content, RULES)
    assert accepted.header.instance.sop_instance_uid == variant_study(name).sop_instance_uid
    assert accepted.header.body_part in RULES.chest_body_parts
    assert accepted.header.instance.modality in ("CR", "DX")


def test_oddities_carry_notes_where_acceptance_took_weaker_evidence() -> None:
    notes = {name: accept_instance(content, RULES).notes for name, content in bad.acceptable_oddities()}
    assert notes["missing-body-part-described-chest"] == (
        "Body Part Examined is missing; accepted as a chest radiograph by its Study Description or Protocol Name",
    )
    (by_default,) = notes["missing-body-part-and-region"]
    assert by_default.startswith("Body Part Examined is missing; accepted as a chest radiograph by default")
    assert notes["local-body-part-with-chest-region"][0].endswith("accepted by its Anatomic Region Sequence")
    assert notes["missing-modality"][0].startswith("Modality is missing; taken as DX from the SOP Class")
    assert notes["dx-class-modality-cr"][0].startswith("Modality CR does not match the SOP Class")
    noted = {"missing-body-part-described-chest", "missing-body-part-and-region", "local-body-part-with-chest-region",
             "missing-modality", "dx-class-modality-cr"}
    assert all(note == () for name, note in notes.items() if name not in noted)


def test_odd_values_are_read_defensively_into_the_header() -> None:
    oddities = dict(bad.acceptable_oddities())
    named = accept_instance(oddities["odd-characters-in-names"], RULES).header.patient
    assert (named.patient_id, named.name) == (ODD_NAME_PATIENT_ID, ODD_PATIENT_NAME)
    malformed = accept_instance(oddities["malformed-optional-values"], RULES).header
    assert (malformed.study_started, malformed.patient.birth_date, malformed.patient.sex) == (None, None, "")
    assert (malformed.instance.series_number, malformed.instance.instance_number) == (None, None)
    assert accept_instance(oddities["lower-case-body-part"], RULES).header.body_part == "CHEST"
    assert accept_instance(oddities["missing-body-part-and-region"], RULES).header.body_part == "CHEST"


# Every bad input


@pytest.mark.parametrize("variant", bad.bad_inputs(), ids=lambda variant: variant.name)
def test_every_bad_input_gets_exactly_its_code(variant: bad.BadInput) -> None:
    rejected = rejection(variant.content)
    assert Code.Name(rejected.code) == Code.Name(variant.code), rejected.reason


def test_rejectable_inputs_get_their_codes(tmp_path: Path) -> None:
    inputs = write_rejectable_inputs(tmp_path)
    assert code_of(inputs["not_dicom"].read_bytes()) == Code.REJECTION_CODE_NOT_DICOM
    ct = rejection(inputs["ct_image"].read_bytes())
    assert ct.code == Code.REJECTION_CODE_UNSUPPORTED_MODALITY
    assert ct.reason == "SOP Class CT Image Storage is not supported: Hilum accepts chest radiographs (CR, DX)"
    assert code_of(inputs["no_pixel_data"].read_bytes()) == Code.REJECTION_CODE_NO_PIXEL_DATA


# Robustness and cost


def test_mutated_files_are_accepted_or_rejected_never_crash() -> None:
    """Random byte changes, cuts, insertions and deletions: every outcome is an acceptance or a code."""
    rng = random.Random(11)
    seeds = [content for _, content in bad.acceptable_oddities()]
    seeds += [v.content for v in bad.bad_inputs() if 1000 < len(v.content) < 400_000 and v.name != "deflate-bomb"]
    outcomes: set[int] = set()
    for _ in range(300):
        content = bytearray(rng.choice(seeds))
        position = rng.randrange(min(len(content), 2000))
        kind = rng.randrange(4)
        if kind == 0:
            for _ in range(rng.randrange(1, 12)):
                content[rng.randrange(min(len(content), 2000))] = rng.randrange(256)
        elif kind == 1:
            del content[rng.randrange(len(content)) :]
        elif kind == 2:
            content[position:position] = rng.randbytes(rng.randrange(1, 16))
        else:
            del content[position : position + rng.randrange(1, 16)]
        try:
            accept_instance(bytes(content), RULES)
            outcomes.add(0)
        except RejectedInstance as rejected:
            assert rejected.reason
            outcomes.add(rejected.code)
    assert len(outcomes) >= 5


def test_a_full_size_radiograph_is_judged_in_well_under_a_third_of_a_second() -> None:
    ds = dx_dataset(SAMPLE_STUDIES[0])  # 2500 x 2000, 12 bits
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, enforce_file_format=True)
    content = out.getvalue()
    accept_instance(content, RULES)  # the first call imports the decoders
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        accept_instance(content, RULES)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.3, timings
