"""Defensive, typed readers of DICOM attributes: absent or malformed values become defaults, never errors.

Headers from the field are often imperfect; a bad optional value must not stop an instance, and
callers decide which absences matter.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

_UID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")
_UID_MAX_LENGTH = 64
_CODE_STRING = re.compile(r"[A-Z0-9 _]{1,16}")


def raw_value(ds: Dataset, keyword: str) -> Any:
    """The value of an attribute, or None when it is absent or cannot be decoded."""
    # pydicom decodes values lazily, so a malformed value only raises here, on first access;
    # the exception types vary with the VR and the fault, hence the broad catch.
    try:
        return ds.get(keyword)
    except Exception:
        return None


def text(ds: Dataset, keyword: str) -> str:
    """A string attribute, stripped; multiple values are joined with a backslash; "" when absent."""
    value = raw_value(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def integer(ds: Dataset, keyword: str) -> int | None:
    """An integer attribute (IS, US, …), or None when absent, empty or not an integer."""
    value = raw_value(ds, keyword)
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) > 0 else None
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def floats(ds: Dataset, keyword: str) -> tuple[float, ...]:
    """The values of a numeric attribute (DS, FL, …) as finite floats; () when absent or malformed."""
    value = raw_value(ds, keyword)
    if value is None or value == "":
        return ()
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return ()
    return numbers if all(math.isfinite(n) for n in numbers) else ()


def uid(ds: Dataset, keyword: str) -> str:
    """A UID attribute, or "" when absent or not a well-formed UID (digits and dots, at most 64)."""
    value = text(ds, keyword).rstrip("\0")
    if len(value) > _UID_MAX_LENGTH or not _UID.fullmatch(value):
        return ""
    return value


def printable(value: str) -> str:
    """A code string fit for a PHI-free message: itself when it is 1 to 16 upper-case letters, digits,
    spaces or underscores (a CS value), else "(unreadable value)".
    """
    return value if _CODE_STRING.fullmatch(value) else "(unreadable value)"


def parse_date(value: str) -> date | None:
    """A DICOM DA value ("YYYYMMDD", or the old "YYYY.MM.DD") as a date; None when malformed."""
    digits = value.strip().replace(".", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def parse_time(value: str) -> time | None:
    """A DICOM TM value ("HHMMSS.FFFFFF", shorter forms, old colons) as a time; None if malformed."""
    whole, _, fraction = value.strip().replace(":", "").partition(".")
    if len(whole) not in (2, 4, 6) or not whole.isdigit() or (fraction and not fraction.isdigit()):
        return None
    hour, minute, second = int(whole[0:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
    microsecond = int(fraction[:6].ljust(6, "0")) if fraction else 0
    try:
        return time(hour, minute, min(second, 59), microsecond)  # 60 is a leap second in TM
    except ValueError:
        return None


def date_of(ds: Dataset, keyword: str) -> date | None:
    """A DA attribute as a date; None when absent or malformed."""
    return parse_date(text(ds, keyword))


def datetime_of(ds: Dataset, date_keyword: str, time_keyword: str) -> datetime | None:
    """A DA and TM pair (e.g. StudyDate, StudyTime) as a naive local datetime.

    None when the date is absent or malformed; midnight when only the time is absent or malformed.
    """
    day = date_of(ds, date_keyword)
    if day is None:
        return None
    return datetime.combine(day, parse_time(text(ds, time_keyword)) or time())


def codes(ds: Dataset, sequence_keyword: str) -> list[tuple[str, str]]:
    """(coding scheme designator, code value) of each item of a code sequence; [] when absent."""
    items = raw_value(ds, sequence_keyword)
    if not isinstance(items, Sequence):
        return []
    found = []
    for item in items:
        if isinstance(item, Dataset):
            value = text(item, "CodeValue") or text(item, "LongCodeValue") or text(item, "URNCodeValue")
            found.append((text(item, "CodingSchemeDesignator").upper(), value))
    return found
