"""Atomic, durable file writes: whole or nothing, and no temp file left behind on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hilum.common.atomic_file import stage_file, write_atomically
from tests.helpers import cached_bytes


def test_writes_creates_folders_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file.json"
    write_atomically(target, b"first")
    write_atomically(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    write_atomically(target, b"kept")
    with pytest.raises(TypeError):
        write_atomically(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"kept"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The descriptors os.fsync is called with from here on (each still synced)."""
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    return calls


def test_a_durable_write_syncs_the_file_and_its_folder_and_a_cache_write_neither(
    tmp_path: Path, synced: list[int]
) -> None:
    write_atomically(tmp_path / "record.dcm", b"kept")
    assert len(synced) == 2  # the file, then the folder that names it
    with stage_file(tmp_path / "cache.npz", b"cached", durable=False) as cache:
        cache.publish()
    assert len(synced) == 2
    assert (tmp_path / "cache.npz").read_bytes() == b"cached"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.npz", "record.dcm"]  # no temp file left


def test_a_staged_file_is_out_of_sight_until_published_and_gone_if_never_published(tmp_path: Path) -> None:
    target = tmp_path / "image.dcm"
    write_atomically(target, b"old")
    with stage_file(target, b"new") as staged:
        assert target.read_bytes() == b"old"  # written and synced, not in place
        staged.publish()
        staged.publish()  # once in place, again changes nothing
    assert target.read_bytes() == b"new"
    with stage_file(target, b"abandoned"):
        pass
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["image.dcm"]


def test_a_durable_staged_file_syncs_its_content_when_written_and_its_folder_when_published(
    tmp_path: Path, synced: list[int]
) -> None:
    with stage_file(tmp_path / "record.dcm", b"kept") as staged:
        assert len(synced) == 1
        staged.publish()
    assert len(synced) == 2


def test_a_file_staged_uncached_leaves_the_page_cache_once_synced_and_a_cached_one_stays(tmp_path: Path) -> None:
    """An image written once and seldom read back does not push what is read out of memory."""
    content = os.urandom(4 * 2**20)
    with stage_file(tmp_path / "image.dcm", content, cached=False) as image, \
            stage_file(tmp_path / "inputs.npz", content) as inputs:
        image.publish()
        inputs.publish()
    assert cached_bytes(tmp_path / "image.dcm") == 0
    assert cached_bytes(tmp_path / "inputs.npz") == len(content)
    assert (tmp_path / "image.dcm").read_bytes() == content  # read back from the disk


def test_a_file_system_that_refuses_the_hint_keeps_the_pages_and_the_file_is_written_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "posix_fadvise", refuse)
    with stage_file(tmp_path / "image.dcm", b"pixels", cached=False) as image:
        image.publish()
    assert (tmp_path / "image.dcm").read_bytes() == b"pixels"
