"""The one way Hilum writes a file that others read: whole or not at all, and durable once it returns."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, content: bytes, durable: bool = True) -> None:
    """Write content to path via a temp file in the same folder, fsync, rename, then fsync the folder.

    Readers never see a partial file, and a crash after return cannot lose the file or its name. durable=False skips
    both fsyncs, for a cache that its reader checks and can do without: a crash may then lose or empty the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not durable:
        return
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
