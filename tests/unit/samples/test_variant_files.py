"""The base image of the bad inputs and oddities, and the ways a variant is written."""

from __future__ import annotations

import io

import pydicom
from pydicom.uid import ExplicitVRLittleEndian

from hilum.samples.sample_studies import SAMPLE_STUDIES
from hilum.samples.variant_files import (
    COLUMNS,
    PATIENT_ID,
    ROWS,
    bare_dataset,
    file_meta_of,
    native_pixels,
    part10,
    raw_part10,
    variant_dataset,
    variant_seed,
    variant_study,
)


def test_each_variant_has_its_own_study_seeded_by_its_name() -> None:
    assert variant_seed("a") == variant_seed("a") != variant_seed("b")
    assert 9_000_000 <= variant_seed("a") < 10_000_000
    study = variant_study("a")
    assert (study.patient_id, study.rows, study.columns) == (PATIENT_ID, ROWS, COLUMNS)
    assert study.study_instance_uid not in {spec.study_instance_uid for spec in SAMPLE_STUDIES}
    assert variant_study("b").study_instance_uid != study.study_instance_uid


def test_a_variant_is_written_as_part10_raw_or_bare() -> None:
    ds = variant_dataset("writers")
    assert native_pixels(ds).shape == (ROWS, COLUMNS)
    conformant = part10(ds)
    assert conformant[128:132] == b"DICM"
    assert pydicom.dcmread(io.BytesIO(conformant)).PatientID == PATIENT_ID
    no_syntax = raw_part10(ds, file_meta_of(ds, None), standard_meta=False, preamble=b"II*")
    assert no_syntax.startswith(b"II*\0") and b"1.2.840.10008.1.2.1" not in no_syntax[:300]
    assert file_meta_of(ds, ExplicitVRLittleEndian).TransferSyntaxUID == ExplicitVRLittleEndian
    assert bare_dataset(ds)[128:132] != b"DICM"
