"""Acceptance rules: the samples and every odd but valid input accepted; every bad input refused with its
code and a reason without patient data; each rule on its own; robust and fast on adversarial bytes."""

from __future__ import annotations

import dataclasses
import io
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from hilum.common.dicom.header import parse_dataset, read_header
from hilum.common.settings import IngestionSection
from hilum.common.study import InstanceInfo
from hilum.ingestion.acceptance import (
    MAX_IMAGE_PIXELS,
    AcceptanceRules,
    AcceptedInstance,
    RejectedInstance,
    accept_instance,
)
from hilum.samples import bad_inputs as bad
from hilum.samples.dicom_files import dx_dataset
from hilum.samples.rejectable_inputs import write_rejectable_inputs
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.v1 import ingestion_pb2
from tests.unit.common.dicom.sample_bytes import COLUMNS, ROWS, bare_bytes, edited_bytes, write_small_samples

Code = ingestion_pb2.RejectionCode
Edit = Callable[[Callable[[Dataset], object]], bytes]  # the `edited` fixture
RULES = AcceptanceRules()
# pydicom warns about the values these tests make malformed on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
# Patient data of the samples and of the bad inputs: never in a reason.
PHI = [spec.patient_name for spec in SAMPLE_STUDIES] + [spec.patient_id for spec in SAMPLE_STUDIES]
PHI += [bad.PATIENT_ID, bad.PATIENT_NAME, bad.ODD_NAME_PATIENT_ID, "SYNTHETIC", "ERIN", "1956", "1962"]


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_small_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture
def edited(sample_files: list[Path]) -> Edit:
    """Part 10 bytes of the first sample after an edit to its dataset."""
    return lambda change: edited_bytes(sample_files[0], lambda ds: change(ds))


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


def test_bare_dataset_without_preamble_is_accepted(sample_files: list[Path]) -> None:
    content = bare_bytes(pydicom.dcmread(sample_files[0]))
    assert content[128:132] != b"DICM"
    assert accept_instance(content, RULES).header.instance.sop_instance_uid == SAMPLE_STUDIES[0].sop_instance_uid


@pytest.mark.parametrize(("name", "content"), bad.acceptable_oddities(), ids=[n for n, _ in bad.acceptable_oddities()])
def test_every_acceptable_oddity_is_accepted(name: str, content: bytes) -> None:
    accepted = accept_instance(content, RULES)
    assert accepted.header.instance.sop_instance_uid == bad.variant_study(name).sop_instance_uid
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
    assert (named.patient_id, named.name) == (bad.ODD_NAME_PATIENT_ID, bad.ODD_PATIENT_NAME)
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


# 1. Readable DICOM


def test_garbage_and_empty_bytes_are_not_dicom() -> None:
    garbage = random.Random(3).randbytes(4096)
    for content in (garbage, b"", bytes(128) + b"DICM" + garbage, b"\x08\x00" + garbage):
        assert code_of(content) == Code.REJECTION_CODE_NOT_DICOM
    assert rejection(garbage).reason.startswith("The content is not DICOM")


def test_a_file_cut_inside_its_header_is_truncated_not_missing_attributes(sample_files: list[Path]) -> None:
    content = sample_files[0].read_bytes()
    cut = content[: content.index(b"Synthetic image made") + 5]
    rejected = rejection(cut)
    assert rejected.code == Code.REJECTION_CODE_NOT_DICOM
    assert rejected.reason.startswith("The content is truncated")


# 2. Transfer syntax


def test_compressed_pixels_in_a_bare_dataset_have_no_transfer_syntax(sample_files: list[Path]) -> None:
    ds = pydicom.dcmread(sample_files[0])
    ds.compress(RLELossless)
    out = io.BytesIO()
    pydicom.dcmwrite(out, Dataset(ds), implicit_vr=False, little_endian=True)
    rejected = rejection(out.getvalue())
    assert rejected.code == Code.REJECTION_CODE_UNSUPPORTED_TRANSFER_SYNTAX
    assert "no file meta information" in rejected.reason


def test_unknown_transfer_syntax_is_named_in_the_reason() -> None:
    variant = next(v for v in bad.bad_inputs() if v.name == "mpeg4-video")
    assert "MPEG-4 AVC/H.264 High Profile / Level 4.1 is not supported" in rejection(variant.content).reason


# 3. Identifiers in the dataset itself


@pytest.mark.parametrize(
    ("keyword", "name"),
    [
        ("StudyInstanceUID", "Study Instance UID"),
        ("SeriesInstanceUID", "Series Instance UID"),
        ("SOPInstanceUID", "SOP Instance UID"),
        ("SOPClassUID", "SOP Class UID"),
    ],
)
def test_missing_uid_is_missing_even_when_the_file_meta_has_it(edited: Edit, keyword: str, name: str) -> None:
    rejected = rejection(edited(lambda ds: delattr(ds, keyword)))
    assert rejected.code == Code.REJECTION_CODE_MISSING_ATTRIBUTE
    assert rejected.reason == f"{name} is missing or is not a valid UID: every instance needs one in its dataset"


@pytest.mark.parametrize("value", ["1.2.../../etc", "1.2.03", "1." * 40 + "1", "", "SYNTHETIC"])
def test_malformed_uid_is_missing_attribute(edited: Edit, value: str) -> None:
    rejected = rejection(edited(lambda ds: setattr(ds, "StudyInstanceUID", value)))
    assert rejected.code == Code.REJECTION_CODE_MISSING_ATTRIBUTE


def test_the_same_uid_for_two_things_is_invalid(edited: Edit) -> None:
    rejected = rejection(edited(lambda ds: setattr(ds, "SOPInstanceUID", ds.SeriesInstanceUID)))
    assert rejected.code == Code.REJECTION_CODE_MISSING_ATTRIBUTE
    assert "repeats the Series Instance UID" in rejected.reason


@pytest.mark.parametrize("patient_id", [None, "", "  ", ["SYN-000101", "SYN-000102"]])
def test_patient_id_is_required_and_single(edited: Edit, patient_id: object) -> None:
    def change(ds: Dataset) -> None:
        if patient_id is None:
            del ds.PatientID
        else:
            ds.PatientID = patient_id

    rejected = rejection(edited(change))
    assert rejected.code == Code.REJECTION_CODE_MISSING_ATTRIBUTE
    assert rejected.reason.startswith("Patient ID is missing")


# 4. SOP agreement: the file meta, and DIMSE's Affected SOP UIDs


def test_file_meta_that_names_another_instance_is_a_sop_mismatch() -> None:
    variants = {v.name: v for v in bad.bad_inputs()}
    instance = rejection(variants["meta-sop-instance-mismatch"].content)
    assert instance.reason == (
        "The file meta information's Media Storage SOP Instance UID differs from the dataset's SOP Instance UID"
    )
    assert "Media Storage SOP Class UID differs" in rejection(variants["meta-sop-class-mismatch"].content).reason


def test_affected_sop_must_name_the_dataset(sample_files: list[Path]) -> None:
    content, spec = sample_files[0].read_bytes(), SAMPLE_STUDIES[0]
    dx = "1.2.840.10008.5.1.4.1.1.1.1"
    assert accept_instance(content, RULES, (dx, spec.sop_instance_uid)).header.instance.sop_class_uid == dx
    assert accept_instance(content, RULES, (dx + "\0", spec.sop_instance_uid + " ")).notes == ()
    other_instance = rejection(content, affected_sop=(dx, spec.sop_instance_uid + ".1"))
    assert other_instance.code == Code.REJECTION_CODE_SOP_MISMATCH
    assert other_instance.reason == (
        "The dataset's SOP Instance UID differs from the C-STORE request's Affected SOP Instance UID"
    )
    other_class = rejection(content, affected_sop=(ComputedRadiographyImageStorage, spec.sop_instance_uid))
    assert other_class.code == Code.REJECTION_CODE_SOP_MISMATCH
    assert spec.sop_instance_uid not in other_class.reason + other_instance.reason


# 5. SOP class and modality


def test_computed_radiography_is_accepted_as_cr(edited: Edit) -> None:
    def to_cr(ds: Dataset) -> None:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
        ds.Modality = "CR"
        del ds.ImagerPixelSpacing  # CR often gives only Pixel Spacing
        ds.PixelSpacing = [0.15, 0.16]

    accepted = accept_instance(edited(to_cr), RULES)
    assert (accepted.header.instance.modality, accepted.header.instance.pixel_spacing_mm) == ("CR", (0.15, 0.16))
    assert accepted.notes == ()


def test_modality_that_contradicts_the_sop_class_is_unsupported(edited: Edit) -> None:
    rejected = rejection(edited(lambda ds: setattr(ds, "Modality", "CT")))
    assert rejected.code == Code.REJECTION_CODE_UNSUPPORTED_MODALITY
    assert rejected.reason.startswith("Modality CT is not supported, and contradicts the SOP Class")
    odd = rejection(edited(lambda ds: setattr(ds, "Modality", "ct^" + SAMPLE_STUDIES[0].patient_name)))
    assert "Modality (unreadable value)" in odd.reason


@pytest.mark.parametrize(
    ("sop_class", "modality"),
    [(CTImageStorage, "DX"), (DigitalMammographyXRayImageStorageForPresentation, "MG"), ("1.2.3.4", "DX")],
)
def test_other_sop_classes_are_unsupported_whatever_the_modality(edited: Edit, sop_class: str, modality: str) -> None:
    def change(ds: Dataset) -> None:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.Modality = modality

    assert code_of(edited(change)) == Code.REJECTION_CODE_UNSUPPORTED_MODALITY


def test_secondary_capture_only_when_the_rules_allow_it(edited: Edit) -> None:
    def to_secondary_capture(ds: Dataset, modality: str = "OT") -> None:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.Modality = modality

    content = edited(to_secondary_capture)
    refused = rejection(content)
    assert refused.code == Code.REJECTION_CODE_UNSUPPORTED_MODALITY
    assert "allow Secondary Capture in the ingestion settings" in refused.reason
    allowing = dataclasses.replace(RULES, accept_secondary_capture=True)
    assert accept_instance(content, allowing).header.instance.modality == "OT"
    assert accept_instance(edited(lambda ds: to_secondary_capture(ds, "DX")), allowing).header.instance.modality == "DX"
    ct_capture = edited(lambda ds: to_secondary_capture(ds, "CT"))
    assert code_of(ct_capture, allowing) == Code.REJECTION_CODE_UNSUPPORTED_MODALITY

    def without_anatomy(ds: Dataset) -> None:  # a capture gets no benefit of the doubt about the body part
        to_secondary_capture(ds)
        del ds.BodyPartExamined, ds.AnatomicRegionSequence
        ds.StudyDescription = "SCREENSHOT"

    assert code_of(edited(without_anatomy), allowing) == Code.REJECTION_CODE_NOT_CHEST


# 6. The chest


def test_another_body_part_beats_a_chest_region_code(edited: Edit) -> None:
    rejected = rejection(edited(lambda ds: setattr(ds, "BodyPartExamined", "KNEE")))
    assert rejected.code == Code.REJECTION_CODE_NOT_CHEST
    assert rejected.reason == "Body part KNEE is not supported: Hilum accepts chest radiographs only"


def test_unknown_body_part_is_chest_only_by_its_region_code(edited: Edit) -> None:
    accepted = accept_instance(edited(lambda ds: setattr(ds, "BodyPartExamined", "TORAX")), RULES)
    assert accepted.header.body_part == "CHEST" and len(accepted.notes) == 1

    def without_region(ds: Dataset) -> None:
        ds.BodyPartExamined = "TORAX"
        del ds.AnatomicRegionSequence

    rejected = rejection(edited(without_region))
    assert rejected.code == Code.REJECTION_CODE_NOT_CHEST
    assert rejected.reason == (
        "Body part TORAX is not one of the chest terms Hilum accepts (CHEST, CHEST_LAT, LUNG, THORAX)"
    )
    local = dataclasses.replace(RULES, chest_body_parts=frozenset({"torax"}))
    assert accept_instance(edited(without_region), local).header.body_part == "TORAX"


def test_chest_code_alone_identifies_the_chest(edited: Edit) -> None:
    def drop_body_part(ds: Dataset) -> None:
        del ds.BodyPartExamined
        ds.StudyDescription = "XR PORTABLE"

    accepted = accept_instance(edited(drop_body_part), RULES)
    assert (accepted.header.body_part, accepted.notes) == ("CHEST", ())


@pytest.mark.parametrize(
    ("study_description", "protocol_name", "outcome"),
    [
        ("XR CHEST 2 VIEWS", "", "by its Study Description"),
        ("Portable", "CXR AP", "by its Study Description"),
        ("Thorax pa", "", "by its Study Description"),
        ("XR KNEE", "", "rejected"),
        ("Portable", "L-SPINE", "rejected"),
        ("Portable", "LSPINE LAT", "rejected"),
        ("Portable", "AP ERECT", "by default"),
        ("PORTABLE HEAD UP 45", "", "by default"),  # positioning, not the head
        ("", "", "by default"),
        ("XR CHESTNUT", "", "by default"),  # a word match, not a substring
    ],
)
def test_without_body_part_the_descriptions_decide_and_a_radiograph_is_noted(
    edited: Edit, study_description: str, protocol_name: str, outcome: str
) -> None:
    def describe(ds: Dataset) -> None:
        del ds.BodyPartExamined, ds.AnatomicRegionSequence, ds.SeriesDescription
        ds.StudyDescription = study_description
        ds.ProtocolName = protocol_name

    content = edited(describe)
    if outcome == "rejected":
        assert code_of(content) == Code.REJECTION_CODE_NOT_CHEST
        return
    accepted = accept_instance(content, RULES)
    assert accepted.header.body_part == "CHEST"
    (note,) = accepted.notes
    assert note.startswith("Body Part Examined is missing;") and outcome in note


def test_a_region_code_for_another_part_is_not_chest(edited: Edit) -> None:
    def knee(ds: Dataset) -> None:
        del ds.BodyPartExamined
        ds.AnatomicRegionSequence[0].CodeValue = "72696002"

    assert code_of(edited(knee)) == Code.REJECTION_CODE_NOT_CHEST


# 7. Pixel data


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"PhotometricInterpretation": "RGB"}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"PhotometricInterpretation": "YBR_FULL"}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"SamplesPerPixel": 3}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"NumberOfFrames": 2}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"NumberOfFrames": 0}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"BitsStored": 6, "HighBit": 5}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"BitsStored": 17}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"BitsAllocated": 32}, Code.REJECTION_CODE_UNSUPPORTED_PIXEL_FORMAT),
        ({"Rows": None}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"Columns": 0}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"SamplesPerPixel": None}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"BitsAllocated": None}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"PixelRepresentation": 2}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
        ({"PhotometricInterpretation": None}, Code.REJECTION_CODE_MISSING_ATTRIBUTE),
    ],
)
def test_pixel_format_is_checked(edited: Edit, change: dict[str, object], code: int) -> None:
    def apply(ds: Dataset) -> None:
        for keyword, value in change.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)

    assert code_of(edited(apply)) == code


def test_truncated_pixel_data_is_incomplete(sample_files: list[Path]) -> None:
    content = sample_files[0].read_bytes()
    rejected = rejection(content[: len(content) - 1000])
    assert rejected.code == Code.REJECTION_CODE_NO_PIXEL_DATA
    assert rejected.reason == (
        f"Pixel Data is incomplete: it holds {ROWS * COLUMNS * 2 - 1000} bytes where Rows, Columns and "
        f"Bits Allocated need {ROWS * COLUMNS * 2}"
    )


def test_a_compressed_frame_must_match_rows_and_columns_before_it_is_decoded() -> None:
    variants = {v.name: v for v in bad.bad_inputs()}
    bomb = rejection(variants["jpeg2000-frame-declares-40000-square"].content)
    assert bomb.reason == (
        f"The compressed frame is 40000 x 40000 pixels of 1 components where the dataset says {ROWS} x {COLUMNS} "
        "greyscale"
    )
    assert "3 components" in rejection(variants["jpeg-frame-of-three-components"].content).reason


# 8. Assessable images


def test_size_and_aspect_limits_come_from_the_rules(sample_files: list[Path]) -> None:
    content = sample_files[0].read_bytes()
    small = rejection(content, dataclasses.replace(RULES, min_image_side_px=COLUMNS + 1))
    assert small.code == Code.REJECTION_CODE_NOT_ASSESSABLE
    assert small.reason == f"The image is {ROWS} x {COLUMNS} pixels: too small to assess (at least 201 on each side)"
    narrow = rejection(content, dataclasses.replace(RULES, max_aspect_ratio=1.2))  # 256 / 200 = 1.28
    assert narrow.code == Code.REJECTION_CODE_NOT_ASSESSABLE
    assert "aspect ratio is beyond 1.2 to 1" in narrow.reason
    lenient = AcceptanceRules(min_image_side_px=1, max_aspect_ratio=50)
    assert accept_instance(dict(bad.acceptable_oddities())["eight-bit"], lenient).notes == ()
    strip = next(v for v in bad.bad_inputs() if v.name == "strip-4000x100")
    assert accept_instance(strip.content, lenient).header.instance.rows == 4000


@pytest.mark.parametrize(("varying", "accepted"), [(0, False), (0.004, False), (0.03, True)])
def test_a_blank_plate_is_not_assessable(edited: Edit, varying: float, accepted: bool) -> None:
    """Blank: fewer than 1% of the pixels differ from the most common value, after the VOI window."""

    def blank(ds: Dataset) -> None:
        image = np.full(ROWS * COLUMNS, 1000, dtype="<u2")
        image[: int(varying * image.size)] = np.arange(int(varying * image.size)) % 3000 + 1001
        ds.PixelData = np.random.default_rng(1).permutation(image).tobytes()

    content = edited(blank)
    if accepted:
        assert accept_instance(content, RULES).notes == ()
    else:
        assert rejection(content).reason.startswith("The image is blank")


def test_declared_sizes_beyond_any_detector_are_refused_before_decoding() -> None:
    variant = next(v for v in bad.bad_inputs() if v.name == "oversized-compressed")
    assert str(MAX_IMAGE_PIXELS) in rejection(variant.content).reason


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
