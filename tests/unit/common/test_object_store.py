"""The filesystem object store: round trip, atomic writes, and keys that cannot escape the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from hilum.common.object_store import InvalidKey, ObjectStore, dicom_key


def test_round_trip_and_no_temp_files_left(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    key = dicom_key("1.2.3", "1.2.3.4", "1.2.3.4.5")
    store.put(key, b"DICM")
    assert store.exists(key) and store.get(key) == b"DICM"
    assert [p.name for p in store.path(key).parent.iterdir()] == ["1.2.3.4.5.dcm"]


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs/path", "a/../../b", "a//b", "a/./b", ""])
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKey):
        ObjectStore(tmp_path).path(key)
