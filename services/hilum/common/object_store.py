"""Filesystem object store for DICOM objects (a PVC in Kubernetes): atomic writes, keys never escape the root."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

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
        """Write content under key atomically (temp file, fsync, rename), so a crash never leaves half an object."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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


def write_text_atomically(path: Path, text: str) -> None:
    """Write text to path via a temp file and rename; readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
