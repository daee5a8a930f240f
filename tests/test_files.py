"""``landscape._files``: a refused write's message gives the fix for its cause."""

from __future__ import annotations

import errno
import os

import pytest

from landscape._files import WriteError, writer_lock

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
