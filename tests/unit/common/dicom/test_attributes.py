"""Defensive attribute readers: absent or malformed values become defaults, never errors."""

from __future__ import annotations

from datetime import date, datetime, time
from io import BytesIO

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from hilum.common.dicom.attributes import (
    codes,
    date_of,
    datetime_of,
    floats,
    integer,
    parse_date,
    parse_time,
    printable,
    raw_value,
    text,
    uid,
)

# pydicom warns about the values these tests make malformed on purpose.
PYDICOM_COMPLAINS = pytest.mark.filterwarnings(
    "ignore:Invalid value for VR", "ignore:Value .* is not valid", "ignore:The value length"
)


@PYDICOM_COMPLAINS
def test_a_value_that_cannot_be_decoded_reads_as_none() -> None:
    # Rows (US) of three bytes, as a faulty writer might send: pydicom raises when it decodes the value.
    ds = pydicom.dcmread(BytesIO(b"\x28\x00\x10\x00US\x03\x00abc"), force=True)
    assert raw_value(ds, "Rows") is None
    assert integer(ds, "Rows") is None
    assert text(ds, "Rows") == ""
    assert raw_value(ds, "PatientID") is None


@PYDICOM_COMPLAINS
def test_malformed_numbers_read_as_none_or_empty() -> None:
    content = b"\x20\x00\x11\x00IS\x02\x00x!" + b"\x28\x00\x30\x00DS\x04\x00ab\\c"
    ds = pydicom.dcmread(BytesIO(content), force=True)
    assert integer(ds, "SeriesNumber") is None
    assert floats(ds, "PixelSpacing") == ()


def test_text_strips_and_joins() -> None:
    ds = Dataset()
    ds.PatientID = " SYN-1 "
    ds.ImageType = ["ORIGINAL", "PRIMARY "]
    assert text(ds, "PatientID") == "SYN-1"
    assert text(ds, "ImageType") == "ORIGINAL\\PRIMARY"
    assert text(ds, "AccessionNumber") == ""


@PYDICOM_COMPLAINS
@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("SeriesNumber", "7", 7),
        ("SeriesNumber", "7.0", 7),
        ("SeriesNumber", "7.5", None),
        ("SeriesNumber", "", None),
        ("Rows", 512, 512),
        ("FrameIncrementPointer", None, None),
    ],
)
def test_integer(keyword: str, value: object, expected: int | None) -> None:
    ds = Dataset()
    if value is not None:
        setattr(ds, keyword, value)
    assert integer(ds, keyword) == expected


def test_integer_takes_the_first_of_several_values() -> None:
    ds = Dataset()
    ds.add_new(0x00181063, "IS", ["3", "4"])  # any multi-valued IS
    assert integer(ds, "FrameTime") == 3


@PYDICOM_COMPLAINS
def test_floats() -> None:
    ds = Dataset()
    ds.PixelSpacing = ["0.139", "0.14"]
    ds.WindowCenter = "40"
    ds.WindowWidth = "NaN"
    assert floats(ds, "PixelSpacing") == (0.139, 0.14)
    assert floats(ds, "WindowCenter") == (40.0,)
    assert floats(ds, "WindowWidth") == ()  # not finite
    assert floats(ds, "RescaleSlope") == ()


@PYDICOM_COMPLAINS
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1"),
        ("1.2.3\0", "1.2.3"),  # a NUL pad, as some writers leave
        ("1.02.3", ""),  # no leading zero in a component
        ("1.2.../../etc", ""),
        ("3.1", ""),  # a UID starts with 0, 1 or 2
        ("1." + "1" * 63, ""),  # longer than 64
    ],
)
def test_uid(value: str, expected: str) -> None:
    ds = Dataset()
    ds.StudyInstanceUID = value
    assert uid(ds, "StudyInstanceUID") == expected


def test_printable_keeps_code_strings_only() -> None:
    assert printable("CT") == "CT"
    assert printable("MONOCHROME2") == "MONOCHROME2"
    assert printable("DOE^JANE") == "(unreadable value)"
    assert printable("ct") == "(unreadable value)"
    assert printable("") == "(unreadable value)"
    assert printable("A" * 17) == "(unreadable value)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240122", date(2024, 1, 22)),
        ("2024.01.22", date(2024, 1, 22)),
        (" 20240122 ", date(2024, 1, 22)),
        ("20240230", None),
        ("2024012", None),
        ("", None),
    ],
)
def test_parse_date(value: str, expected: date | None) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("094107", time(9, 41, 7)),
        ("094107.25", time(9, 41, 7, 250000)),
        ("0941", time(9, 41)),
        ("09", time(9)),
        ("09:41:07", time(9, 41, 7)),
        ("235960", time(23, 59, 59)),  # a leap second
        ("2541", None),
        ("09410", None),
        ("0941x7", None),
    ],
)
def test_parse_time(value: str, expected: time | None) -> None:
    assert parse_time(value) == expected


@PYDICOM_COMPLAINS
def test_date_and_datetime_of() -> None:
    ds = Dataset()
    ds.StudyDate, ds.StudyTime = "20240122", "094107"
    ds.SeriesDate, ds.SeriesTime = "20240122", "99"
    assert date_of(ds, "StudyDate") == date(2024, 1, 22)
    assert datetime_of(ds, "StudyDate", "StudyTime") == datetime(2024, 1, 22, 9, 41, 7)
    assert datetime_of(ds, "SeriesDate", "SeriesTime") == datetime(2024, 1, 22)  # a bad time: midnight
    assert datetime_of(ds, "AcquisitionDate", "StudyTime") is None


def code_item(scheme: str, **value: str) -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = scheme
    for keyword, code in value.items():
        setattr(item, keyword, code)
    return item


def test_codes() -> None:
    ds = Dataset()
    ds.AnatomicRegionSequence = Sequence(
        [
            code_item("sct", CodeValue="816094009"),
            code_item("SCT", LongCodeValue="1234567890123456789"),
            code_item("URN", URNCodeValue="urn:example:chest"),
        ]
    )
    assert codes(ds, "AnatomicRegionSequence") == [
        ("SCT", "816094009"),
        ("SCT", "1234567890123456789"),
        ("URN", "urn:example:chest"),
    ]
    assert codes(ds, "ViewCodeSequence") == []
    ds.BodyPartExamined = "CHEST"
    assert codes(ds, "BodyPartExamined") == []  # not a sequence
