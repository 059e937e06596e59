"""Deterministic identifiers: UIDs valid under 2.25 and stable across runs, accession numbers likewise."""

from __future__ import annotations

from pydicom.uid import UID

from hilum.samples.identifiers import UID_ROOT, make_accession_number, make_uid


def test_same_seed_and_role_give_the_same_uid_across_runs() -> None:
    assert make_uid(101, "study") == make_uid(101, "study")
    # Pinned: sample files made by earlier versions must keep their UIDs.
    assert make_uid(101, "study") == "2.25.208296826420722990248074954278195765583"
    assert make_uid(0, "implementation") == "2.25.150107793154574818724347730582647024770"


def test_uids_differ_by_seed_and_by_role() -> None:
    uids = {make_uid(seed, role) for seed in (1, 2, 909) for role in ("study", "series", "instance")}
    assert len(uids) == 9


def test_uids_are_valid_and_under_2_25() -> None:
    for seed in (0, 1, 10**9):
        uid = make_uid(seed, "frame-of-reference")
        assert uid.startswith(f"{UID_ROOT}.")
        assert len(uid) <= 64
        assert UID(uid).is_valid


def test_accession_number_is_11_characters_and_deterministic() -> None:
    number = make_accession_number(101)
    assert number == "SYN62370258"
    assert make_accession_number(101) == number != make_accession_number(102)
    for seed in range(20):
        other = make_accession_number(seed)
        assert len(other) == 11 and other.startswith("SYN") and other[3:].isdigit()
