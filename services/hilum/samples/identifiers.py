"""Deterministic identifiers for synthetic studies: UIDs under 2.25 and accession numbers.

The same seed and role always give the same identifier, so sample files are byte-for-byte reproducible.
"""

from __future__ import annotations

import uuid

# UIDs are "2.25." + the integer of a name-based (version 5) UUID (PS3.5 B.2): no registered org
# root is needed, and the same seed and role always give the same UID.
UID_ROOT = "2.25"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:hilum:samples:synthetic")


def _name_based(seed: int, role: str) -> int:
    """The 128-bit integer of the version 5 UUID for (seed, role)."""
    return uuid.uuid5(_NAMESPACE, f"{seed}:{role}").int


def make_uid(seed: int, role: str) -> str:
    """A UID under 2.25 for (seed, role), e.g. role "study"; the same arguments give the same UID."""
    return f"{UID_ROOT}.{_name_based(seed, role)}"


def make_accession_number(seed: int) -> str:
    """An 11-character accession number for a seed, e.g. "SYN01234567"; the same seed gives the same one."""
    return f"SYN{_name_based(seed, 'accession') % 10**8:08d}"
