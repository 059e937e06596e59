"""Filesystem object store for DICOM objects (a PVC in Kubernetes): atomic writes, keys never escape the root."""

from __future__ import annotations

import re
from pathlib import Path

from hilum.common.atomic_file import StagedFile, stage_file, write_atomically

_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class InvalidKey(ValueError):
    """A key that is not a relative path of safe segments."""


class ObjectStore:
    """Objects under one root directory, addressed by relative keys such as "dicom/<study>/<sop>.dcm"."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The file behind key; refuses keys with '..' or absolute paths."""
        if not _KEY.match(key) or any(part in {".", ".."} for part in key.split("/")):
            raise InvalidKey(f"invalid object key {key!r}")
        return self.root / key

    def put(self, key: str, content: bytes) -> None:
        """Write content under key atomically and durably, so a crash never leaves half an object."""
        write_atomically(self.path(key), content)

    def stage(self, key: str, content: bytes, durable: bool = True, cached: bool = True) -> StagedFile:
        """Write content for key without putting it in place yet (atomic_file.StagedFile): publish() does, a `with`
        block left unpublished removes it; durable=False: a cache its reader checks, which a crash may lose or empty
        (no fsync); cached=False: a large object seldom read back, its pages dropped from the page cache once synced."""
        return stage_file(self.path(key), content, durable, cached)

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        """Remove the object under key; a missing object is not an error (deletes are retried)."""
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


def dicom_key(study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str) -> str:
    """The object key of a DICOM instance, grouped by study and series."""
    return f"dicom/{study_instance_uid}/{series_instance_uid}/{sop_instance_uid}.dcm"


def quarantine_key(content_sha256: str) -> str:
    """The object key of a refused instance's original bytes, by their sha256 (the same bytes are kept once)."""
    return f"quarantine/{content_sha256}.dcm"
