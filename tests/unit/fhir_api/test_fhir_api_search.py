"""Search over stored reports: each parameter and prefix, _include, paging that stays stable, and refusals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hilum.fhir_api.dates import to_us
from hilum.fhir_api.search import SearchError, SearchResult, search
from hilum.fhir_api.store import delete_resource, store_bundle
from tests.unit.fhir_api.synthetic_reports import MRN_SYSTEM, SyntheticReport, synthetic_report

PATIENTS = 3
REPORTS = 12
STORED_AT = datetime(2025, 1, 1, tzinfo=UTC)  # report n is stored at STORED_AT + n minutes
NOW_US = to_us(datetime(2025, 6, 1, tzinfo=UTC))


@pytest.fixture
def reports(sessions: sessionmaker[Session]) -> list[SyntheticReport]:
    """Twelve reports of three patients, study n on 2024-01-01 + n days, stored one minute apart."""
    made = [synthetic_report(index, PATIENTS) for index in range(REPORTS)]
    with sessions.begin() as session:
        for report in made:
            store_bundle(session, report.bundle, STORED_AT + timedelta(minutes=report.index))
    return made


def _find(sessions: sessionmaker[Session], resource_type: str, params: Sequence[tuple[str, str]], *,
          lenient: bool = False) -> SearchResult:
    with sessions() as session:
        return search(session, resource_type, params, default_count=50, max_count=100, now_us=NOW_US,
                      lenient=lenient)


def _report_ids(result: SearchResult) -> list[str]:
    return [hit.resource_id for hit in result.matches]


def _ids(reports: list[SyntheticReport], resource_type: str = "DiagnosticReport") -> list[str]:
    return [report.resource_ids(resource_type)[0] for report in reports]


def test_patient_identifier_in_each_spelling(sessions: sessionmaker[Session], reports: list[SyntheticReport]) -> None:
    expected = _ids([r for r in reports if r.index % PATIENTS == 1])
    for name in ("patient:identifier", "patient.identifier", "subject:identifier", "subject.identifier",
                 "subject:Patient.identifier"):
        assert _report_ids(_find(sessions, "DiagnosticReport", [(name, f"{MRN_SYSTEM}|MRN-00001")])) == expected
    assert _report_ids(_find(sessions, "DiagnosticReport", [("patient:identifier", "MRN-00001")])) == expected
    assert _report_ids(_find(sessions, "DiagnosticReport", [("patient:identifier", "urn:other|MRN-00001")])) == []
    either = _find(sessions, "DiagnosticReport", [("patient:identifier", f"{MRN_SYSTEM}|MRN-00001,MRN-00002")])
    assert len(either.matches) == 8
    observations = _find(sessions, "Observation", [("patient.identifier", f"{MRN_SYSTEM}|MRN-00001")])
    assert {json.loads(hit.text)["subject"]["identifier"]["value"] for hit in observations.matches} == {"MRN-00001"}


def test_date_prefixes_follow_the_precision_of_the_value(sessions: sessionmaker[Session],
                                                         reports: list[SyntheticReport]) -> None:
    def days(*params: tuple[str, str]) -> list[int]:
        found = set(_report_ids(_find(sessions, "DiagnosticReport", params)))
        return [r.index for r in reports if r.resource_ids("DiagnosticReport")[0] in found]

    assert days(("date", "2024-01-03")) == [2]  # study 2 started 2024-01-03T08:00Z
    assert days(("date", "eq2024-01")) == list(range(REPORTS))
    assert days(("date", "2024-01-03T08:00:00Z")) == [2]
    assert days(("date", "2024-01-03T09:00Z")) == []
    assert days(("date", "ge2024-01-10")) == [9, 10, 11]
    assert days(("date", "gt2024-01-10")) == [10, 11]
    assert days(("date", "le2024-01-02")) == [0, 1]
    assert days(("date", "lt2024-01-02")) == [0]
    assert days(("date", "sa2024-01-10")) == [10, 11]
    assert days(("date", "eb2024-01-02")) == [0]
    assert days(("date", "ne2024-01-03")) == [i for i in range(REPORTS) if i != 2]
    assert days(("date", "ge2024-01-04"), ("date", "lt2024-01-06")) == [3, 4]  # repeated: AND
    assert days(("date", "2024-01-02,2024-01-05")) == [1, 4]  # comma: OR
    assert 5 in days(("date", "ap2024-01-06T12:00Z"))  # 10% of ~17 months either side
    studies = _find(sessions, "ImagingStudy", [("date", "2024-01-12")])
    assert [json.loads(hit.text)["started"] for hit in studies.matches] == ["2024-01-12T08:00:00Z"]


def test_last_updated_and_sort(sessions: sessionmaker[Session], reports: list[SyntheticReport]) -> None:
    after = _find(sessions, "DiagnosticReport", [("_lastUpdated", "gt2025-01-01T00:09:00Z")])
    assert _report_ids(after) == _ids(reports[10:])
    minute = _find(sessions, "DiagnosticReport", [("_lastUpdated", "2025-01-01T00:03Z")])
    assert _report_ids(minute) == _ids(reports[3:4])
    newest = _find(sessions, "DiagnosticReport", [("_sort", "-_lastUpdated"), ("_count", "3")])
    assert _report_ids(newest) == _ids(reports[::-1][:3])


def test_status_code_identifier_and_id(sessions: sessionmaker[Session], reports: list[SyntheticReport]) -> None:
    everything = _ids(reports)
    assert _report_ids(_find(sessions, "DiagnosticReport", [("status", "preliminary")])) == everything
    assert _report_ids(_find(sessions, "DiagnosticReport", [("status", "final")])) == []
    code = json.loads(_find(sessions, "DiagnosticReport", [])
                      .matches[0].text)["code"]["coding"][0]
    for value in (f"{code['system']}|{code['code']}", code["code"]):
        assert _report_ids(_find(sessions, "DiagnosticReport", [("code", value)])) == everything
    assert _report_ids(_find(sessions, "DiagnosticReport", [("code", f"|{code['code']}")])) == []
    identifier = json.loads(_find(sessions, "DiagnosticReport", [("_id", everything[5])]).matches[0].text)[
        "identifier"][0]
    found = _find(sessions, "DiagnosticReport", [("identifier", f"{identifier['system']}|{identifier['value']}")])
    assert _report_ids(found) == [everything[5]]
    assert _report_ids(_find(sessions, "DiagnosticReport", [("_id", f"{everything[1]},{everything[2]}")])) == \
        everything[1:3]
    assert len(_find(sessions, "Device", [("status", "active")]).matches) == 1


def test_include_adds_the_referenced_resources_once(sessions: sessionmaker[Session],
                                                    reports: list[SyntheticReport]) -> None:
    report = reports[4]
    result = _find(sessions, "DiagnosticReport", [("_id", report.resource_ids("DiagnosticReport")[0]),
                                                  ("_include", "DiagnosticReport:result"),
                                                  ("_include", "DiagnosticReport:imaging-study:ImagingStudy"),
                                                  ("_include", "DiagnosticReport:subject")])
    assert sorted((hit.resource_type, hit.resource_id) for hit in result.includes) == sorted(
        [("Observation", i) for i in report.resource_ids("Observation")]
        + [("ImagingStudy", i) for i in report.resource_ids("ImagingStudy")])  # no stored Patient to include
    devices = _find(sessions, "Observation", [("_include", "Observation:device"),
                                              ("_include", "Observation:derived-from")])
    assert sorted({hit.resource_type for hit in devices.includes}) == ["Device", "ImagingStudy"]
    assert len([hit for hit in devices.includes if hit.resource_type == "Device"]) == 1
    everything = _find(sessions, "Observation", [("_include", "*"), ("_count", "1")])
    assert {hit.resource_type for hit in everything.includes} == {"Device", "ImagingStudy"}


def test_include_skips_deleted_resources(sessions: sessionmaker[Session], reports: list[SyntheticReport]) -> None:
    report = reports[0]
    with sessions.begin() as session:
        delete_resource(session, "ImagingStudy", report.resource_ids("ImagingStudy")[0], STORED_AT + timedelta(days=1))
    result = _find(sessions, "DiagnosticReport", [("_id", report.resource_ids("DiagnosticReport")[0]),
                                                  ("_include", "DiagnosticReport:imaging-study")])
    assert result.includes == []
    assert _find(sessions, "ImagingStudy", [("_id", report.resource_ids("ImagingStudy")[0])]).matches == []


@pytest.mark.parametrize("sort", ["", "_lastUpdated", "-_lastUpdated"])
def test_paging_forward_and_back_is_stable_while_reports_arrive(
        sessions: sessionmaker[Session], reports: list[SyntheticReport], sort: str) -> None:
    base = [("_count", "5"), *([("_sort", sort)] if sort else [])]
    first = _find(sessions, "DiagnosticReport", base)
    assert first.total is None and first.previous_cursor is None and first.next_cursor is not None
    for index in range(REPORTS, REPORTS + 3):  # new reports arrive between pages
        with sessions.begin() as session:
            store_bundle(session, synthetic_report(index, PATIENTS).bundle, STORED_AT + timedelta(minutes=index))
    pages = [first]
    cursor: str | None = first.next_cursor
    while cursor is not None:
        pages.append(_find(sessions, "DiagnosticReport", [*base, ("_cursor", cursor)]))
        cursor = pages[-1].next_cursor
    seen = [rid for page in pages for rid in _report_ids(page)]
    expected = _ids([synthetic_report(i, PATIENTS) for i in range(REPORTS + 3)])
    assert len(seen) == len(set(seen))
    if sort == "-_lastUpdated":  # the newest came before the first page was read: not shown again
        assert seen == _ids(reports)[::-1]
    else:
        assert seen == expected
    assert pages[-1].next_cursor is None
    back = pages[1].previous_cursor
    assert back is not None
    assert _report_ids(_find(sessions, "DiagnosticReport", [*base, ("_cursor", back)])) == _report_ids(first)


def test_totals_when_cheap_or_asked(sessions: sessionmaker[Session], reports: list[SyntheticReport]) -> None:
    assert _find(sessions, "DiagnosticReport", [("patient:identifier", "MRN-00000")]).total == 4
    assert _find(sessions, "DiagnosticReport", [("_count", "2")]).total is None
    assert _find(sessions, "DiagnosticReport", [("_count", "2"), ("_total", "accurate")]).total == REPORTS
    counted = _find(sessions, "DiagnosticReport", [("_summary", "count")])
    assert (counted.total, counted.matches) == (REPORTS, [])
    assert _find(sessions, "DiagnosticReport", [("_count", "1000")]).count == 100


@pytest.mark.parametrize(("resource_type", "params"), [
    ("DiagnosticReport", [("category", "RAD")]),
    ("DiagnosticReport", [("status:not", "final")]),
    ("Device", [("date", "2024")]),
    ("ImagingStudy", [("code", "36554-4")]),
    ("DiagnosticReport", [("date", "last tuesday")]),
    ("DiagnosticReport", [("_sort", "date")]),
    ("DiagnosticReport", [("_count", "many")]),
    ("DiagnosticReport", [("_include", "DiagnosticReport:performer")]),
    ("DiagnosticReport", [("_include", "Observation:device")]),
    ("DiagnosticReport", [("_cursor", "bm90IGEgY3Vyc29y")]),
    ("Provenance", []),
])
def test_what_is_not_supported_is_refused(sessions: sessionmaker[Session], resource_type: str,
                                          params: list[tuple[str, str]]) -> None:
    with pytest.raises(SearchError):
        _find(sessions, resource_type, params)


def test_lenient_handling_ignores_unknown_parameters(sessions: sessionmaker[Session],
                                                     reports: list[SyntheticReport]) -> None:
    result = _find(sessions, "DiagnosticReport", [("category", "RAD"), ("status", "preliminary")], lenient=True)
    assert (len(result.matches), result.ignored) == (REPORTS, ["category"])
    assert result.query == [("status", "preliminary")]
