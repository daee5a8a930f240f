"""File-system helpers shared by the store, the data downloads and the figures.

One way to write a file so that a reader never sees it half-written (:func:`atomic_path`:
a temporary file next to the target, fsynced, renamed over it), one error for a write the
file system refuses (:class:`WriteError`: a full disk, an I/O error, a read-only mount), one
lock that keeps a second writer off an output (:func:`writer_lock`), and one file hash
(:func:`sha256_of`), recorded as provenance of checkpoints, data files and slices.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "WRITE_ERRNOS",
    "WriteError",
    "atomic_path",
    "remove_stale_temporaries",
    "sha256_of",
    "write_atomically",
    "writer_lock",
]

_HASH_CHUNK = 1 << 20
_HELD: dict[Path, int] = {}  # writer locks this process holds: path -> depth
#: What the file system answers when it cannot take a write.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})
_RERUN = "then run the same command again (train: with --resume)"
#: What to do about a refused write, by ``errno``: one clause each, the fix for that cause.
ADVICE = {
    errno.ENOSPC: f"free space on its file system, {_RERUN}",
    errno.EDQUOT: f"free space within your disk quota (or have it raised), {_RERUN}",
    errno.EFBIG: "the file reached a file-size limit (ulimit -f, or the file system's largest "
    f"file): raise the limit or write to another file system, {_RERUN}",
    errno.EROFS: "the file system is read-only: remount it read-write or write to another place",
    errno.EACCES: "no permission to write there: fix the permissions or write to another place",
    errno.ENOENT: "the path is not a usable directory (a part of it is missing, is a file or "
    "cannot be made): choose another path",
    errno.EIO: f"the device reported an I/O error: check the disk (dmesg), {_RERUN}",
}
ADVICE[errno.EPERM] = ADVICE[errno.EACCES]
ADVICE[errno.ENOTDIR] = ADVICE[errno.EEXIST] = ADVICE[errno.ENOENT]
_OTHER = f"fix the file system, {_RERUN}"


class WriteError(OSError):
    """A file could not be written (no space left, an I/O error, a read-only file system).

    The message names the file and the reason, says that what was written before is intact
    (every writer of the toolkit replaces files atomically or writes into space allocated
    before) and gives the fix for that reason (:data:`ADVICE`, by ``errno``); an ``advice``
    replaces both clauses.
    """

    def __init__(
        self, path: str | Path, reason: BaseException | str, advice: str | None = None
    ) -> None:
        why = " ".join(str(reason).split()) or type(reason).__name__
        code = reason.errno if isinstance(reason, OSError) else None
        if isinstance(reason, OSError) and reason.strerror:
            why = reason.strerror
        fix = advice or f"what was written before is intact: {ADVICE.get(code or 0, _OTHER)}"
        super().__init__(f"cannot write {path}: {why[:200]}; {fix}")
        self.path = Path(path)
        self.errno = code


@contextlib.contextmanager
def writer_lock(target: str | Path) -> Iterator[None]:
    """Hold the one-writer lock of ``target`` for the block (reentrant within a process).

    An advisory ``flock`` on a hidden ``.<name>.lock`` beside ``target``, removed when the
    block ends; the operating system releases the lock when the process ends, however it
    ends (a lock file left by a killed process is simply taken over). Readers never take
    it, so a file stays readable while it is written.

    Raises:
        ValueError: another process is writing ``target``.
    """
    target = Path(target).resolve()
    if target in _HELD:
        _HELD[target] += 1
        try:
            yield
        finally:
            _HELD[target] -= 1
        return
    lock = target.parent / f".{target.name}.lock"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = _take(lock, target)
    except OSError as exc:  # a read-only file system, a full disk, no permission
        raise WriteError(target, exc) from exc
    _HELD[target] = 1
    try:
        yield
    finally:
        del _HELD[target]
        with contextlib.suppress(OSError):
            lock.unlink()  # still ours: removed before the lock is released
        os.close(fd)


def _take(lock: Path, target: Path) -> int:
    """Lock ``lock`` (created if needed) and return its descriptor; retried when the file was
    replaced between our open and our lock (its holder removed it on release)."""
    for _ in range(100):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(
                f"{target} is being written by another process (a run in progress?): wait "
                "for it to finish, or write to another path"
            ) from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise ValueError(f"cannot take the writer lock of {target}: {lock} keeps changing")


def remove_stale_temporaries(target: str | Path) -> None:
    """Delete ``atomic_path`` temporaries of ``target`` left by a killed process.

    Call only while holding :func:`writer_lock` of ``target``: then no other process is
    writing one.
    """
    target = Path(target)
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


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
    it was, so a reader never sees a half-written file under the final name. A write the
    file system refuses (:data:`WRITE_ERRNOS`: a full disk, an I/O error) becomes a
    :class:`WriteError` naming ``target``.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    except OSError as exc:
        raise WriteError(target, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise WriteError(target, exc) from exc
        raise
    # Persist the rename itself; not every platform can open a directory.
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_atomically(target: str | Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``target`` through :func:`atomic_path` (plain Python writes).

    Files built in memory (an HDF5 image, a ``torch.save`` buffer) are written this way, so
    that a full disk is an ``OSError`` of Python's own (a :class:`WriteError`), never a
    failure inside a C library that leaves it in a broken state.
    """
    with atomic_path(target, mode=mode) as tmp:
        tmp.write_bytes(data)
