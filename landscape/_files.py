"""File-system helpers shared by the store, the data downloads and the figures.

One way to write a file so that a reader never sees it half-written (:func:`atomic_path`:
a temporary file next to the target, fsynced, renamed over it), and one file hash
(:func:`sha256_of`), recorded as provenance of checkpoints, data files and slices.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "sha256_of"]

_HASH_CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    """SHA-256 hex digest of a file (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(
    target: str | Path, *, mode: int | None = None, suffix: str = ".tmp"
) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically.

    Write the file at the yielded path (creating parent directories is done here). When the
    block exits normally the file is fsynced, given ``mode`` if set (``mkstemp`` creates it
    0600) and renamed over ``target``; then the directory is fsynced where the platform
    allows it. If the block raises, the temporary file is removed and ``target`` is left as
    it was, so a reader never sees a half-written file under the final name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # Persist the rename itself; not every platform can open a directory.
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
