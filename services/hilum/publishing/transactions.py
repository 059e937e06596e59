"""Splitting a transaction Bundle for servers that limit its size, without breaking its references.

Some servers refuse a transaction with conditional entries beyond a few entries (Medplum: 8). A Hilum
bundle's references all point backwards (studies and device first, then Observations, the report and
its Provenance), so consecutive parts can be sent in order: before each part, every urn:uuid reference
to an entry of an earlier part is replaced by the location the server gave that entry. Each part is
made of conditional creates, so a retry after a failed part repeats nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Json = dict[str, Any]


def parts(bundle: Json, max_entries: int) -> list[Json]:
    """The bundle as consecutive transactions of at most max_entries entries (0: the bundle itself)."""
    entries = bundle.get("entry") or []
    if max_entries <= 0 or len(entries) <= max_entries:
        return [bundle]
    head = {key: value for key, value in bundle.items() if key not in ("entry", "id")}
    return [
        {**head, "id": f"{bundle.get('id', 'bundle')}-{number}", "entry": entries[start : start + max_entries]}
        for number, start in enumerate(range(0, len(entries), max_entries), start=1)
    ]


def _references(node: Any) -> Iterator[Json]:
    """Every Reference-shaped object (a dict with a string "reference") in a JSON tree."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def resolved(part: Json, locations: Mapping[str, str]) -> Json:
    """A copy of part whose urn:uuid references to earlier parts' entries point at where the server put them.

    locations maps a fullUrl ("urn:uuid:…") to "Type/id" (any "/_history/n" suffix already removed).
    """
    copied = copy.deepcopy(part)
    for reference in _references(copied.get("entry") or []):
        target = locations.get(reference["reference"])
        if target is not None:
            reference["reference"] = target
    return copied


def logical_location(location: str) -> str:
    """"Type/id" of a response location such as "https://ehr/fhir/Observation/7/_history/2"."""
    path = location.split("/_history/", 1)[0].rstrip("/")
    pieces = path.split("/")
    return "/".join(pieces[-2:]) if len(pieces) >= 2 else path


def post_in_parts(bundle: Json, max_entries: int, post: Callable[[Json], tuple[str, ...]]) -> list[str]:
    """Post the bundle part by part (post returns each entry's location, in order); returns every location."""
    locations: dict[str, str] = {}
    answered: list[str] = []
    for part in parts(bundle, max_entries):
        sent = resolved(part, locations)
        part_locations = post(sent)
        for entry, location in zip(sent.get("entry") or [], part_locations, strict=True):
            if location:
                locations[str(entry.get("fullUrl"))] = logical_location(location)
        answered.extend(part_locations)
    return answered
