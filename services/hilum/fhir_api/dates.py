"""FHIR date, dateTime and instant values as half-open ranges of UTC microseconds, at their stated precision.

"2024" is all of 2024, "2024-03-05T08:15" that minute: search compares such ranges (FHIR R4 search, "date").
A time without an offset is taken as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE_US = 253402300799999999  # 9999-12-31T23:59:59.999999Z: the open end of a period

_VALUE = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


class BadDate(ValueError):
    """A value that is not a FHIR date, dateTime or instant."""


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of a timezone-aware datetime (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    """The UTC datetime of a microsecond timestamp."""
    return EPOCH + timedelta(microseconds=us)


def instant_text(us: int) -> str:
    """A FHIR instant with millisecond-or-better precision and a Z offset, e.g. 2024-03-05T09:30:00.000123Z."""
    return from_us(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def http_date(us: int) -> str:
    """The RFC 9110 date of a timestamp (Last-Modified), e.g. Tue, 05 Mar 2024 09:30:00 GMT."""
    return from_us(us).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _add_months(moment: datetime, months: int) -> datetime:
    total = moment.month - 1 + months
    return moment.replace(year=moment.year + total // 12, month=total % 12 + 1)


def fhir_range(text: str) -> tuple[int, int]:
    """[low, high) in UTC microseconds of a FHIR date/dateTime/instant at its precision. Raises BadDate."""
    match = _VALUE.fullmatch(text.strip())
    if match is None:
        raise BadDate(text)
    part = match.groupdict()
    try:
        zone: timezone = UTC
        if part["zone"] and part["zone"] != "Z":
            sign = 1 if part["zone"][0] == "+" else -1
            hours, minutes = int(part["zone"][1:3]), int(part["zone"][4:6])
            zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
        fraction = part["fraction"] or ""
        start = datetime(int(part["year"]), int(part["month"] or 1), int(part["day"] or 1), int(part["hour"] or 0),
                         int(part["minute"] or 0), int(part["second"] or 0), int((fraction + "000000")[:6]),
                         tzinfo=zone)
    except ValueError:
        raise BadDate(text) from None
    if part["month"] is None:
        end = start.replace(year=start.year + 1)
    elif part["day"] is None:
        end = _add_months(start, 1)
    elif part["hour"] is None:
        end = start + timedelta(days=1)
    elif part["second"] is None:
        end = start + timedelta(minutes=1)
    elif not fraction:
        end = start + timedelta(seconds=1)
    else:
        end = start + timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
    return to_us(start), to_us(end)

