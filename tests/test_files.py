"""``landscape._files``: a refused write's message gives the fix for its cause; an atomic
write fsyncs the whole temporary file before renaming it over the target."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from landscape._files import WriteError, write_atomically, writer_lock

ADVICE = {
    errno.ENOSPC: "free space on its file system, then run the same command again",
    errno.EDQUOT: "free space within your disk quota",
    errno.EFBIG: "file-size limit (ulimit -f",
    errno.EROFS: "the file system is read-only: remount it read-write or write to another place",
    errno.EACCES: "no permission to write there: fix the permissions",
    errno.EPERM: "no permission to write there: fix the permissions",
    errno.ENOENT: "the path is not a usable directory",
    errno.ENOTDIR: "the path is not a usable directory",
    errno.EEXIST: "the path is not a usable directory",
    errno.EIO: "the device reported an I/O error: check the disk",
}


@pytest.mark.parametrize("code", sorted(ADVICE), ids=errno.errorcode.get)
def test_each_cause_gets_its_own_advice(code):
    message = str(WriteError("/d/out.h5", OSError(code, os.strerror(code))))
    assert message.startswith(f"cannot write /d/out.h5: {os.strerror(code)}; what was written "
                              "before is intact: ")  # fmt: skip
    assert ADVICE[code] in message and len(message.splitlines()) == 1
    if code not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        assert "free space" not in message  # before: the one advice for every cause
    assert WriteError("/d/out.h5", OSError(code, "x")).errno == code


def test_other_causes_and_own_advice():
    other = "fix the file system, then run the same command again (train: with --resume)"
    assert str(WriteError("f", "gone")).endswith(other)
    assert str(WriteError("f", "gone", advice="do this")) == "cannot write f: gone; do this"


def test_a_folder_that_is_a_file_is_named_as_a_path_problem(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(WriteError, match=r"notes\.txt/out\.h5: File exists; .* the path is not "
                       "a usable directory"):  # fmt: skip
        with writer_lock(tmp_path / "notes.txt" / "out.h5"):
            pass


def _write_bytes(target):
    write_atomically(target, b"x" * 1000)


def _write_checkpoint(target):
    from landscape.store import save_checkpoint

    save_checkpoint(target, model=torch.nn.Linear(3, 2), step=0, spec={}, config={})


def _write_hdf5(target):
    from landscape.store import edit

    with edit(target, fresh=True) as f:
        f["values"] = list(range(100))


@pytest.mark.parametrize("write", [_write_bytes, _write_checkpoint, _write_hdf5])
def test_the_temporary_file_is_fsynced_whole_before_its_rename(tmp_path, monkeypatch, write):
    """A crash after the rename must not leave a target whose data never reached the disk:
    the file renamed over the target was fsynced, at its final size, before the rename."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync", st.st_ino, st.st_size))
        real_fsync(fd)

    def replace(src, dst, **kwargs):
        events.append(("replace", os.stat(src).st_ino, Path(dst)))
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "out.bin"
    write(target)
    renames = [i for i, e in enumerate(events) if e[0] == "replace" and e[2] == target]
    assert len(renames) == 1
    inode, size = events[renames[0]][1], target.stat().st_size
    assert target.stat().st_ino == inode and size > 0
    assert ("fsync", inode, size) in events[: renames[0]]
