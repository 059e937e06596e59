"""Bad inputs and acceptable oddities: enough of them, every class covered, deterministic, small, each
what its name says, with its own UIDs, and marked DIMSE-sendable exactly when the DICOM door can be sent it."""

from __future__ import annotations

import io
import re

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID

from hilum.common.dicom.storage_contexts import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from hilum.samples import bad_inputs as bad
from hilum.samples.acceptable_oddities import ACCEPTABLE_ODDITIES
from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.samples.variant_files import COLUMNS, ROWS
from hilum.v1 import ingestion_pb2

Code = ingestion_pb2.RejectionCode
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # the inputs are malformed on purpose
# What acceptance itself decides; the others depend on what is already stored, or on who sends.
ACCEPTANCE_CODES = set(Code.values()) - {
    Code.REJECTION_CODE_UNSPECIFIED,
    Code.REJECTION_CODE_IDENTITY_CONFLICT,
    Code.REJECTION_CODE_INSTANCE_CONFLICT,
    Code.REJECTION_CODE_NOT_AUTHORIZED,
}
# Readable, negotiable, and still not sendable: the fault is in the file meta or the encoding, which a
# C-STORE does not carry (the sender re-encodes the dataset), or the content is too costly to read and re-send.
NOT_SENDABLE_WHILE_NEGOTIABLE = {
    "meta-sop-instance-mismatch",
    "meta-sop-class-mismatch",
    "implicit-dataset-under-explicit-meta",
    "truncated-in-header",
    "deflate-bomb",
}


@pytest.fixture(scope="module")
def variants() -> dict[str, bad.BadInput]:
    return {variant.name: variant for variant in bad.bad_inputs()}


@pytest.fixture(scope="module")
def oddities() -> dict[str, bytes]:
    return dict(bad.acceptable_oddities())


def read(content: bytes) -> Dataset | None:
    """The dataset a peer's toolkit reads from content, or None."""
    try:
        return pydicom.dcmread(io.BytesIO(content), force=True)
    except Exception:
        return None


def test_there_are_enough_variants_with_unique_file_safe_names(
    variants: dict[str, bad.BadInput], oddities: dict[str, bytes]
) -> None:
    assert len(bad.bad_inputs()) == len(variants) >= 35
    assert len(bad.acceptable_oddities()) == len(oddities) >= 15
    names = [*variants, *oddities]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in names)


def test_every_code_acceptance_decides_has_bad_inputs(variants: dict[str, bad.BadInput]) -> None:
    counts = {code: sum(v.code == code for v in variants.values()) for code in ACCEPTANCE_CODES}
    assert all(count >= 2 for count in counts.values()), {Code.Name(code): n for code, n in counts.items()}


def test_the_bytes_are_the_same_on_every_build(
    variants: dict[str, bad.BadInput], oddities: dict[str, bytes]
) -> None:
    for name, code, sendable, build in bad.BAD_INPUTS:
        assert bad.BadInput(name, build(name), code, sendable) == variants[name]
    for name, build in ACCEPTABLE_ODDITIES:
        assert build(name) == oddities[name], name
    assert bad.bad_inputs() == list(variants.values())  # built once, handed out as fresh lists
    assert bad.bad_inputs() is not bad.bad_inputs()


def test_inputs_are_small(variants: dict[str, bad.BadInput], oddities: dict[str, bytes]) -> None:
    sizes = [len(v.content) for v in variants.values()] + [len(content) for content in oddities.values()]
    assert max(sizes) < 1_000_000 and sum(sizes) < 12_000_000


def test_each_variant_has_uids_of_its_own(variants: dict[str, bad.BadInput], oddities: dict[str, bytes]) -> None:
    """Accepting one never meets another (or a sample study) already stored under the same UID."""
    seen: dict[str, str] = {spec.study_instance_uid: spec.label for spec in SAMPLE_STUDIES}
    seen |= {spec.sop_instance_uid: spec.label for spec in SAMPLE_STUDIES}
    contents = {**{n: v.content for n, v in variants.items() if n != "deflate-bomb"}, **oddities}
    for name, content in contents.items():
        ds = read(content)
        for keyword in ("StudyInstanceUID", "SOPInstanceUID"):
            value = str(ds.get(keyword, "")) if ds is not None else ""
            if re.fullmatch(r"[0-9.]{8,64}", value) and value != str(ds.get("SeriesInstanceUID", "")):
                assert seen.setdefault(value, name) == name, (keyword, name, seen[value])



def test_dimse_sendable_matches_what_the_dicom_door_negotiates(variants: dict[str, bad.BadInput]) -> None:
    for name, variant in variants.items():
        ds = None if name == "deflate-bomb" else read(variant.content)
        negotiable = (
            ds is not None
            and "SOPClassUID" in ds
            and "SOPInstanceUID" in ds
            and UID(str(ds.SOPClassUID)) in STORAGE_SOP_CLASSES
            and UID(str(ds.file_meta.get("TransferSyntaxUID", ""))) in TRANSFER_SYNTAXES
        )
        if variant.dimse_sendable:
            assert negotiable, name
        else:
            assert not negotiable or name in NOT_SENDABLE_WHILE_NEGOTIABLE, name


def test_bad_inputs_are_what_their_names_say(variants: dict[str, bad.BadInput]) -> None:
    assert variants["empty"].content == b""
    assert variants["png-image"].content.startswith(b"\x89PNG\r\n\x1a\n")
    assert variants["jpeg-file"].content.startswith(b"\xff\xd8")
    assert len(variants["truncated-preamble"].content) == 100
    for name, syntax in [("claims-jpeg-baseline-holds-raw", "1.2.840.10008.1.2.4.50"),
                         ("claims-rle-holds-raw", "1.2.840.10008.1.2.5")]:
        ds = read(variants[name].content)
        assert ds is not None and ds.file_meta.TransferSyntaxUID == syntax
        assert not ds["PixelData"].is_undefined_length and len(ds.PixelData) == ROWS * COLUMNS * 2
    meta = read(variants["meta-sop-instance-mismatch"].content)
    assert meta is not None and meta.file_meta.MediaStorageSOPInstanceUID != meta.SOPInstanceUID
    assert read(variants["no-transfer-syntax"].content).file_meta.get("TransferSyntaxUID") is None  # type: ignore[union-attr]
    strip = read(variants["strip-4000x100"].content)
    assert strip is not None and (strip.Rows, strip.Columns) == (4000, 100)
    bomb = variants["deflate-bomb"].content
    assert len(bomb) < 400_000 and b"1.2.840.10008.1.2.1.99" in bomb[:400]



def test_bad_input_is_frozen() -> None:
    variant = bad.bad_inputs()[0]
    with pytest.raises(AttributeError):
        variant.code = Code.REJECTION_CODE_NOT_CHEST  # type: ignore[misc]
