"""Splitting a transaction bundle into consecutive parts whose references point at what earlier parts created."""

from __future__ import annotations

from typing import Any

from hilum.publishing.transactions import logical_location, parts, post_in_parts, resolved


def _bundle(count: int) -> dict[str, Any]:
    entries = [{"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Device"}, "request": {"method": "POST"}}]
    entries += [
        {"fullUrl": f"urn:uuid:o{n}", "resource": {"resourceType": "Observation", "device": {"reference": "urn:uuid:a"},
                                                    "subject": {"reference": "Patient?identifier=s|v"}},
         "request": {"method": "POST"}}
        for n in range(count - 1)
    ]
    return {"resourceType": "Bundle", "id": "b", "type": "transaction", "entry": entries}


def test_a_small_bundle_or_no_limit_is_one_transaction() -> None:
    bundle = _bundle(3)
    assert parts(bundle, 0) == [bundle] and parts(bundle, 3) == [bundle]


def test_parts_keep_order_and_type() -> None:
    split = parts(_bundle(5), 2)
    assert [len(p["entry"]) for p in split] == [2, 2, 1]
    assert [p["id"] for p in split] == ["b-1", "b-2", "b-3"] and all(p["type"] == "transaction" for p in split)
    assert [e["fullUrl"] for p in split for e in p["entry"]] == [e["fullUrl"] for e in _bundle(5)["entry"]]


def test_references_to_earlier_parts_are_resolved_and_others_left_alone() -> None:
    part = parts(_bundle(3), 2)[1]
    copy = resolved(part, {"urn:uuid:a": "Device/9"})
    assert copy["entry"][0]["resource"]["device"] == {"reference": "Device/9"}
    assert copy["entry"][0]["resource"]["subject"] == {"reference": "Patient?identifier=s|v"}
    assert part["entry"][0]["resource"]["device"] == {"reference": "urn:uuid:a"}  # the original is untouched


def test_locations_become_logical_references() -> None:
    assert logical_location("https://ehr/fhir/Observation/7/_history/2") == "Observation/7"
    assert logical_location("Device/9/_history/1") == "Device/9"
    assert logical_location("Device/9") == "Device/9"


def test_post_in_parts_feeds_each_part_what_the_earlier_ones_created() -> None:
    sent: list[dict[str, Any]] = []

    def post(part: dict[str, Any]) -> tuple[str, ...]:
        sent.append(part)
        return tuple(f"{e['resource']['resourceType']}/{len(sent)}{i}/_history/1" for i, e in enumerate(part["entry"]))

    locations = post_in_parts(_bundle(4), 2, post)
    assert len(sent) == 2 and len(locations) == 4
    assert sent[1]["entry"][0]["resource"]["device"] == {"reference": "Device/10"}
