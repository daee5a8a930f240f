"""A slice file's cells changed in place: a refused write leaves its cells' mask at 0 (the
values reach the disk before the mask), a file removed meanwhile is named, damaged files
are named part by part, and only a complete file may be 'continued' where nothing can be
written."""

from __future__ import annotations

import errno
import json
import os
import re

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape import _files
from landscape._files import WriteError
from landscape.slices import cells, random_directions, read_grid, run_grid
from tests.slices import damage as spoil
from tests.slices.helpers import batches, bn_net

XS, YS = "-1:1:5", "-0.5:0.5:3"  # 15 points: the first made with the file, then blocks of 4
META = {"kind": "random_plane", "seed": 3}
CE = nn.CrossEntropyLoss()


@pytest.fixture
def setup():
    model = bn_net()
    return model, batches(sizes=(6, 5)), random_directions(model, 2, seed=3)


@pytest.fixture
def full(tmp_path, setup):
    model, data, dirs = setup
    return run_grid(tmp_path / "full.h5", model, CE, data, dirs, XS, YS, meta=META)


def _consistent(path, full) -> np.ndarray:
    """Every cell whose mask says 1 holds the uninterrupted run's values (the others NaN, or
    their value where the mask was refused after it); returns the mask."""
    part = read_grid(path)
    for name, v in full.values.items():
        assert np.array_equal(part.values[name][part.computed], v[part.computed]), name
        rest = part.values[name][~part.computed]
        assert (np.isnan(rest) | (rest == v[~part.computed])).all(), name
    return part.computed


# Each flush of a block: one write per metric (loss, accuracy; adjacent cells), one sync, one
# write of the mask. Which call of the third block is refused:
REFUSED = {"values": ("pwrite", 7), "sync": ("sync", 3), "mask": ("pwrite", 9)}


@pytest.mark.parametrize("where", sorted(REFUSED))
@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_a_refused_write_leaves_the_mask_of_its_block_at_0(tmp_path, setup, full, monkeypatch,
                                                           where, code):  # fmt: skip
    """The third block's values, their sync (a write-back error reported late) or its mask
    cannot be written: one WriteError naming the file and the reason, the mask of that block
    stays 0 (values first, synced, then the mask), earlier blocks are intact, and a rerun
    evaluates the rest to the uninterrupted values."""
    model, data, dirs = setup
    path, calls, (what, nth) = tmp_path / "slice.h5", {"pwrite": 0, "sync": 0}, REFUSED[where]
    real = {"pwrite": os.pwrite, "sync": cells._sync}

    def refusing(name):
        def call(*args):
            calls[name] += 1
            if name == what and calls[name] >= nth:
                raise OSError(code, os.strerror(code))
            return real[name](*args)

        return call

    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", refusing("pwrite"))
        patch.setattr(cells, "_sync", refusing("sync"))
        with pytest.raises(WriteError, match=f"cannot write .*slice\\.h5: {os.strerror(code)}; "
                           "what was written before is intact"):  # fmt: skip
            run_grid(path, model, CE, data, dirs, XS, YS, meta=META, chunk=4)
    done = _consistent(path, full)
    assert done.sum() == 1 + 2 * 4  # the first point, then two blocks of four
    resumed = run_grid(path, model, CE, data, dirs, XS, YS, meta=META, chunk=4)
    for name, v in full.values.items():
        assert np.array_equal(resumed.values[name], v), name


def test_a_file_removed_while_it_is_written_is_named(tmp_path, setup):
    model, data, dirs = setup
    path = tmp_path / "slice.h5"

    def remove(done: int, total: int) -> None:
        if done == 3 and path.exists():
            path.unlink()

    with pytest.raises(WriteError, match="removed or replaced while this run wrote it; run the"):
        run_grid(path, model, CE, data, dirs, XS, YS, meta=META, chunk=4, progress=remove)
    assert not path.exists()


def _lock_refused(code: int):
    def take(lock, target):
        raise OSError(code, os.strerror(code), str(lock))

    return take


READ_ONLY = re.escape(
    "Read-only file system; what was written before is intact: the file "
    "system is read-only: remount it read-write or write to another place"
)


def test_a_complete_file_is_reported_where_nothing_can_be_written(tmp_path, setup, full,
                                                                  monkeypatch):  # fmt: skip
    """A read-only file system (here: the lock file refused with EROFS) needs no writer for a
    complete file: it is reported complete; an incomplete or new one is refused, naming the
    cause and its fix."""
    model, data, dirs = setup
    path, part = tmp_path / "full.h5", tmp_path / "part.h5"
    raw = path.read_bytes()

    def stop(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(part, model, CE, data, dirs, XS, YS, meta=META, chunk=2, progress=stop)
    monkeypatch.setattr(_files, "_take", _lock_refused(errno.EROFS))
    assert run_grid(path, model, CE, data, dirs, XS, YS, meta=META) is None
    assert path.read_bytes() == raw
    for target in (part, tmp_path / "new.h5"):
        with pytest.raises(WriteError, match=READ_ONLY):
            run_grid(target, model, CE, data, dirs, XS, YS, meta=META)
    assert not (tmp_path / "new.h5").exists()


def test_a_one_point_slice_is_returned_when_it_is_made(tmp_path, setup):
    model, data, dirs = setup
    res = run_grid(tmp_path / "one.h5", model, CE, data, dirs[:1], "0:0:1", meta=META)
    assert res is not None and res.computed.all() and res.shape == (1,)
    assert run_grid(tmp_path / "one.h5", model, CE, data, dirs[:1], "0:0:1", meta=META) is None


DAMAGE = {
    "dtype": (spoil.bad_dtype, "directions/d1/0.weight names no torch dtype"),
    "name": (spoil.no_name, "directions/d1/0.weight is not a tensor with a parameter name"),
    "extra group": (spoil.extra_group, "directions is not a group of"),
    "strings": (spoil.strings, "values/loss is not a grid of numbers"),
    "coordinates": (lambda f: f["coords/x"].__setitem__(0, np.nan), "coords/x is not a list of"),
    "chunked": (
        lambda f: f.create_dataset("values/extra", (3, 5), "f8", chunks=(1, 5)),
        "values/extra is not stored as one block of cells",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_file_is_named_and_remade_only_with_overwrite(tmp_path, setup, full, case):
    """Reading, resuming and overwrite: a damaged part is one ValueError naming the file, the
    part and the fix; overwrite makes the file anew."""
    model, data, dirs = setup
    damage, needle = DAMAGE[case]
    path = tmp_path / "full.h5"
    with h5py.File(path, "r+") as f:
        damage(f)
    message = re.escape(f"{path} is a damaged slice file ({needle}") + r".*\): make it again " \
        r"\(--overwrite, overwrite=True\) or remove it"  # fmt: skip
    if case != "chunked":  # a layout only the writer needs
        with pytest.raises(ValueError, match=message):
            read_grid(path)
    with pytest.raises(ValueError, match=message):
        run_grid(path, model, CE, data, dirs, XS, YS, meta=META)
    res = run_grid(path, model, CE, data, dirs, XS, YS, meta=META, overwrite=True)
    assert np.array_equal(res.values["loss"], full.values["loss"])


def test_buffer_directions_are_checked_too(tmp_path):
    model = bn_net()
    dirs = random_directions(model, 1, seed=0)
    bdirs = [{n: torch.ones_like(b) for n, b in model.named_buffers() if b.is_floating_point()}]
    path = tmp_path / "b.h5"
    run_grid(path, model, CE, batches(), dirs, "-1:1:3", meta={}, buffer_directions=bdirs)
    with h5py.File(path, "r+") as f:
        f["buffer_directions/d1"].create_group("d9")
    with pytest.raises(
        ValueError, match="buffer_directions/d1/d9 is not a tensor with a parameter"
    ):
        read_grid(path)


def test_temporaries_of_a_killed_run_go_when_a_complete_file_is_run_again(tmp_path, setup, full):
    """A run killed while it replaced the file (a PCA slice adding its trajectory) leaves a
    temporary beside it; the next run, holding the lock, removes it even when nothing is left
    to evaluate (before: only when the file was made)."""
    model, data, dirs = setup
    stale = tmp_path / ".full.h5.k1ll3d.tmp"
    stale.write_bytes(b"partial")
    assert run_grid(tmp_path / "full.h5", model, CE, data, dirs, XS, YS, meta=META) is None
    assert not stale.exists()


def _spoiled(src, tmp_path, damage):
    """A copy of the slice file ``src`` with ``damage(f)`` done to it, and its checked parts."""
    path = tmp_path / f"copy{len(list(tmp_path.iterdir()))}.h5"
    path.write_bytes(src.read_bytes())
    with h5py.File(path, "r+") as f:
        damage(f)

    def check():
        with h5py.File(path, "r") as f:
            return cells.checked(f, path)

    return path, check


def _replace(name, make):
    def damage(f):
        del f[name]
        make(f, name)

    return damage


MORE_DAMAGE = {
    "coords/x is not a list of finite coordinates": _replace(
        "coords/x", lambda f, n: f.create_dataset(n, data=np.zeros((5, 1)))
    ),
    "buffer_directions is not a group of groups d1, d2, ...": lambda f: f.create_dataset(
        "buffer_directions", data=np.zeros(3)
    ),
    "directions is not a group of groups d1, d2, ...": _replace(
        "directions/d2", lambda f, n: f.create_dataset(n, data=np.zeros(3))
    ),
    "directions/d1/0.weight names no torch dtype": lambda f: f["directions/d1/0.weight"].attrs
    .__setitem__("dtype", "zeros"),  # a torch function, not a dtype
}  # fmt: skip


def test_more_damaged_parts_are_named(tmp_path, full):
    src = tmp_path / "full.h5"
    for needle, damage in MORE_DAMAGE.items():
        path, check = _spoiled(src, tmp_path, damage)
        message = re.escape(f"{path} is a damaged slice file ({needle}")
        with pytest.raises(cells.DamagedSliceFile, match=message):
            check()


def test_older_files_name_the_bn_mode_bn(tmp_path, full):
    """Files written before ``bn_mode`` called it ``bn``; a file with both keeps both."""
    src = tmp_path / "full.h5"
    for mode in ("eval", "train", "recalibrate"):
        old = {**read_attr_meta(src), "bn": mode}
        del old["bn_mode"]
        _, check = _spoiled(
            src, tmp_path, lambda f, m=old: f.attrs.__setitem__("meta", json.dumps(m))
        )
        meta, metrics = check()
        assert meta["bn_mode"] == mode and "bn" not in meta and metrics == ["loss", "accuracy"]
    both = {**read_attr_meta(src), "bn": "train"}
    _, check = _spoiled(src, tmp_path, lambda f: f.attrs.__setitem__("meta", json.dumps(both)))
    assert check()[0] == both
    other = {**read_attr_meta(src), "bn": "yes"}
    del other["bn_mode"]
    _, check = _spoiled(src, tmp_path, lambda f: f.attrs.__setitem__("meta", json.dumps(other)))
    assert check()[0] == other


def read_attr_meta(path):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["meta"])


def test_cells_are_written_where_they_lie_in_runs_and_short_writes(tmp_path, full, monkeypatch):
    """Cells of a block that are not adjacent go to their own places, also where the system
    writes fewer bytes than asked (``pwrite`` returns how many: the rest follows)."""
    path = tmp_path / "full.h5"
    with h5py.File(path, "r") as f:
        where = cells.cells_of(f, path)
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, off: real(fd, bytes(data[:3]), off))
    writer = cells.CellWriter(path, where, chunk=100)
    ks = [9, 0, 2, 3, 14, 7]
    for k in ks:
        writer.add(k, {"loss": 100.0 + k, "accuracy": -1.0 - k})
    writer.flush()
    got = read_grid(path)
    want_loss, want_acc = full.values["loss"].copy(), full.values["accuracy"].copy()
    want_loss.reshape(-1)[ks] = [100.0 + k for k in ks]
    want_acc.reshape(-1)[ks] = [-1.0 - k for k in ks]
    np.testing.assert_array_equal(got.values["loss"], want_loss)
    np.testing.assert_array_equal(got.values["accuracy"], want_acc)
    assert got.computed.all()
