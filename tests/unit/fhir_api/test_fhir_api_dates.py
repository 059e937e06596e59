"""FHIR dates as ranges at their precision, and the instants the store serves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hilum.fhir_api.dates import BadDate, fhir_range, from_us, http_date, instant_text, to_us


def _range(text: str) -> tuple[datetime, datetime]:
    low, high = fhir_range(text)
    return from_us(low), from_us(high)


def test_partial_dates_cover_their_whole_period() -> None:
    assert _range("2024") == (datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    assert _range("2024-12") == (datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    assert _range("2024-02-29") == (datetime(2024, 2, 29, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    assert _range("2024-03-05T08:15Z")[1] - _range("2024-03-05T08:15Z")[0] == timedelta(minutes=1)
    assert _range("2024-03-05T08:15:00Z")[1] - _range("2024-03-05T08:15:00Z")[0] == timedelta(seconds=1)
    assert _range("2024-03-05T08:15:00.12Z")[1] - _range("2024-03-05T08:15:00.12Z")[0] == timedelta(milliseconds=10)


def test_offsets_are_honoured_and_no_offset_means_utc() -> None:
    assert _range("2024-03-05T08:15:00+01:00")[0] == datetime(2024, 3, 5, 7, 15, tzinfo=UTC)
    assert _range("2024-03-05T08:15:00")[0] == datetime(2024, 3, 5, 8, 15, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "24", "2024-13", "2024-02-30", "2024-03-05T25:00Z", "yesterday"])
def test_malformed_values_are_refused(text: str) -> None:
    with pytest.raises(BadDate):
        fhir_range(text)


def test_instants_round_trip_and_render() -> None:
    moment = datetime(2024, 3, 5, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert from_us(to_us(moment)) == moment
    assert instant_text(to_us(moment)) == "2024-03-05T07:30:00.123456Z"
    assert http_date(to_us(moment)) == "Tue, 05 Mar 2024 07:30:00 GMT"
