"""The one way Hilum writes a file that others read: whole or not at all, and durable once it is in place."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class StagedFile:
    """Content written (and, when durable, synced) under a temporary name in its target's folder, not yet visible.

    publish() puts it in place with a rename; leaving a `with` block without publishing removes it. Writing first and
    publishing later lets a caller put a large file in place inside a database transaction without holding the
    transaction open while the bytes reach the disk.
    """

    def __init__(self, path: Path, temp: Path, durable: bool) -> None:
        self.path = path
        self._temp = temp
        self._durable = durable
        self.published = False

    def publish(self) -> None:
        """Rename the content into place (replacing what was there), then sync the folder when durable: once it
        returns, a crash cannot lose the file or its name. Publishing twice changes nothing."""
        if self.published:
            return
        os.replace(self._temp, self.path)
        self.published = True
        if self._durable:
            _sync_folder(self.path.parent)

    def discard(self) -> None:
        """Remove the unpublished content; a published file stays."""
        if not self.published:
            self._temp.unlink(missing_ok=True)

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.discard()


def stage_file(path: Path, content: bytes, durable: bool = True, cached: bool = True) -> StagedFile:
    """Write content to a temporary file beside path, synced when durable; it is not at path until published.

    durable=False skips the syncs, for a cache that its reader checks and can do without: a crash may then lose or
    empty the file. cached=False drops a durable file's pages from the kernel's page cache once they are on the disk,
    for a large object written once and seldom read back (_drop_cached).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
                if not cached:
                    _drop_cached(handle.fileno())
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return StagedFile(path, Path(temp), durable)


def write_atomically(path: Path, content: bytes) -> None:
    """Write content to path via a temp file in the same folder, fsync, rename, then fsync the folder.

    Readers never see a partial file, and a crash after return cannot lose the file or its name.
    """
    with stage_file(path, content) as staged:
        staged.publish()


def _drop_cached(descriptor: int) -> None:
    """Ask the kernel to drop the file's clean pages from its page cache (a hint; a no-op where there is none).

    An image is written once and read back seldom (inference reads the models' inputs kept beside it): kept cached,
    every accepted image pushes 10 MB of what is read out of memory, and in a container the page cache it fills is
    charged to the pod's memory. Without the pages, a later read comes from the disk. A file system that refuses
    the hint keeps them: the file is written and synced all the same.
    """
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as error:
        log.debug("page cache kept", extra={"error": type(error).__name__})


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
