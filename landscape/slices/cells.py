"""A slice file as a run meets it: checked part by part, held by one writer, its cells
changed in place.

:func:`checked` names the first part of a file that is missing or damaged (and the fix),
without reading the data; :func:`writing` is the writer lock, taken by rank 0 under torchrun.
A slice file is made whole (:mod:`.grid_file`): every value and mask dataset contiguous and
allocated when it was made. From then on a run only overwrites bytes of those datasets, and
it does so with Python's own ``os.pwrite`` at the offsets HDF5 reports, never through HDF5:
HDF5 caches raw data and reports a failed write only when it frees the dataset (h5py then
prints and ignores it), so a refused write went by unnoticed and the mask was written after
it. Here every refused write is an ``OSError`` at once (a :class:`WriteError`), and a block
is written values first, then ``fdatasync``, then the mask: a cell's mask says 1 only once
its values are on the disk, whatever happens after (a power cut, a full disk, a kill).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from landscape import distributed
from landscape._files import WriteError, remove_stale_temporaries, writer_lock
from landscape.store.hdf5 import read_attr

__all__ = [
    "REMAKE",
    "CellWriter",
    "Cells",
    "DamagedSliceFile",
    "cells_of",
    "checked",
    "ordered",
    "torch_dtype",
    "writing",
]

#: Why a writer lock can be refused where a file may still be read (and found complete).
READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
#: What a slice file that cannot be read or continued says it needs.
REMAKE = "make it again (--overwrite, overwrite=True) or remove it"


class DamagedSliceFile(ValueError):
    """A slice file with a part missing or damaged (the message names it, and the fix)."""


@contextlib.contextmanager
def writing(path: Path, r: distributed.Ranks) -> Iterator[WriteError | None]:
    """Rank 0 holds the writer lock of ``path`` for the block (temporaries of killed runs
    removed, :func:`~landscape._files.remove_stale_temporaries`); every rank hears whether
    another process holds it (``ValueError``).

    Yields None, or where the lock file cannot be made for want of write access (a read-only
    file system, no permission) the :class:`WriteError` why: then nothing may be written, but
    a file that is complete already can still be reported as such.
    """

    @contextlib.contextmanager
    def held() -> Iterator[WriteError | None]:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(writer_lock(path))
            except WriteError as refused:
                if refused.errno not in READ_ONLY:
                    raise
                yield refused
                return
            remove_stale_temporaries(path)  # of runs killed while writing it (we hold the lock)
            yield None

    with distributed.held_on_main(held, r) as refused:
        yield refused


def checked(f: h5py.File, path: Path) -> tuple[dict[str, Any], list[str]]:
    """The ``meta`` and metric names of a slice file, its parts checked without reading
    their data (but the coordinates): a ValueError names the first part missing or damaged,
    and the fix."""
    try:
        meta = read_attr(f, "meta", {})
        metrics = [str(n) for n in meta["metrics"]]
    except (ValueError, TypeError, KeyError):  # no meta, not JSON, no metric list
        meta, metrics = {}, []
    if meta.get("bn") in ("eval", "train", "recalibrate") and "bn_mode" not in meta:
        meta["bn_mode"] = meta.pop("bn")  # older files name it "bn"
    need = ["coords/x", "computed", "directions/d1", *(f"values/{n}" for n in metrics)]
    if missing := ["meta"] * (not metrics) + [k for k in need if k not in f]:
        raise DamagedSliceFile(f"{path} is not a complete slice file (missing {missing[0]}): "
                               f"{REMAKE}")  # fmt: skip
    axes = [f["coords/x"], *([f["coords/y"]] if "y" in f["coords"] else [])]
    for ds in axes:
        if not _numbers(ds, "f", 1) or not np.isfinite(ds[()]).all():
            _damaged(path, f"{ds.name[1:]} is not a list of finite coordinates")
    shape = tuple(a.shape[0] for a in axes[::-1])
    for ds in [f["computed"], *(f["values"][n] for n in f["values"])]:
        if not _numbers(ds, "u" if ds.name == "/computed" else "f"):
            _damaged(path, f"{ds.name[1:]} is not a grid of numbers")
        if ds.shape != shape:
            raise DamagedSliceFile(f"{path} is not a consistent slice file ({ds.name[1:]} has "
                                   f"shape {ds.shape}, the coordinates give {shape}): "
                                   f"{REMAKE}")  # fmt: skip
    for top in ("directions", "buffer_directions"):
        for d in ordered(f[top], path) if top in f else []:
            for ds in d.values():
                if not _numbers(ds, "fiu") or not isinstance(ds.attrs.get("name"), str):
                    _damaged(path, f"{ds.name[1:]} is not a tensor with a parameter name")
                if torch_dtype(ds) is None:
                    _damaged(path, f"{ds.name[1:]} names no torch dtype")
    return meta, metrics


def _numbers(obj: h5py.HLObject, kinds: str, ndim: int | None = None) -> bool:
    """Whether ``obj`` is a dataset of numbers (numpy kinds ``kinds``), of ``ndim`` axes."""
    return (isinstance(obj, h5py.Dataset) and obj.dtype.kind in kinds
            and ndim in (None, obj.ndim))  # fmt: skip


def _damaged(path: Path, what: str) -> None:
    raise DamagedSliceFile(f"{path} is a damaged slice file ({what}): {REMAKE}")


def ordered(group: h5py.Group, path: Path) -> list[h5py.Group]:
    """The groups ``d1``, ``d2``, ... of a directions group (nothing else in it)."""
    names = [f"d{k}" for k in range(1, len(group) + 1)] if isinstance(group, h5py.Group) else []
    if not names or sorted(group) != sorted(names):
        _damaged(path, f"{group.name[1:]} is not a group of groups d1, d2, ...")
    if not all(isinstance(group[n], h5py.Group) for n in names):
        _damaged(path, f"{group.name[1:]} is not a group of groups d1, d2, ...")
    return [group[n] for n in names]


def torch_dtype(ds: h5py.Dataset) -> torch.dtype | None:
    """The torch dtype a direction's ``dtype`` attribute names; None if it names none."""
    dtype = getattr(torch, str(ds.attrs.get("dtype", "")), None)
    return dtype if isinstance(dtype, torch.dtype) else None


@dataclass(frozen=True)
class Cells:
    """Where a slice file's cells lie: ``{dataset: (offset, dtype)}`` for ``values/<name>``
    and ``computed`` (each row-major, ``size`` cells), and the file's identity."""

    places: dict[str, tuple[int, np.dtype]]
    size: int
    identity: tuple[int, int]  # (st_dev, st_ino)


def cells_of(f: h5py.File, path: Path) -> Cells:
    """The cells of the open slice file ``f`` (at ``path``), checked writable in place.

    Raises:
        DamagedSliceFile: A value or mask dataset that is not contiguous, allocated and
            unfiltered (not made by :func:`~landscape.slices.run_grid`).
    """
    places: dict[str, tuple[int, np.dtype]] = {}
    names = [f"values/{n}" for n in f["values"]] + ["computed"]
    size = f["computed"].size
    for name in names:
        ds = f[name]
        offset = ds.id.get_offset()
        if (
            ds.chunks is not None
            or ds.compression is not None
            or ds.external
            or offset is None
            or ds.size != size
            or ds.id.get_storage_size() != ds.size * ds.dtype.itemsize
        ):
            _damaged(path, f"{name} is not stored as one block of cells")
        places[name] = (f.userblock_size + offset, ds.dtype)
    st = os.stat(path)
    return Cells(places, size, (st.st_dev, st.st_ino))


_sync = getattr(os, "fdatasync", os.fsync)  # no fdatasync on macOS


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _write_runs(fd: int, place: tuple[int, np.dtype], index: np.ndarray, v: np.ndarray) -> None:
    """Cells ``index`` (sorted flat indices) := ``v``: one write per run of adjacent cells."""
    offset, dtype = place
    starts = np.flatnonzero(np.diff(index, prepend=-2) != 1)
    for a, b in zip(starts, [*starts[1:], len(index)]):
        _pwrite(
            fd, np.asarray(v[a:b], dtype=dtype).tobytes(), offset + int(index[a]) * dtype.itemsize
        )


class CellWriter:
    """Buffers evaluated points and writes them ``chunk`` at a time: values, fdatasync, mask.

    Each flush opens the file by its path (no HDF5 handle: readers are never locked out
    and a reader's open file does not stop the run), checks that it is still the file it was
    (not removed or replaced meanwhile), writes the values of the pending cells, syncs them to
    the disk, then writes their mask cells. A refused write raises :class:`WriteError` at
    once; its block's mask cells are then still 0 (a rerun evaluates them again) and the
    block is dropped, so that no later flush writes a mask for it.
    """

    def __init__(self, path: Path, cells: Cells, chunk: int) -> None:
        self.path, self.cells, self.chunk = path, cells, chunk
        self.pending: list[tuple[int, dict[str, float]]] = []

    def add(self, k: int, point: dict[str, float]) -> None:
        self.pending.append((k, point))
        if len(self.pending) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        block, self.pending = sorted(self.pending, key=lambda p: p[0]), []
        if not block:
            return
        index = np.array([k for k, _ in block])
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            raise self._gone() from None
        except OSError as exc:
            raise WriteError(self.path, exc) from exc
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.cells.identity:
                raise self._gone()
            for name in dict.fromkeys(n for _, point in block for n in point):
                has = np.array([name in point for _, point in block])
                v = np.array([point[name] for _, point in block if name in point], np.float64)
                _write_runs(fd, self.cells.places[f"values/{name}"], index[has], v)
            _sync(fd)  # the values are on the disk before the mask says they are there
            _write_runs(fd, self.cells.places["computed"], index, np.ones(len(index), np.uint8))
        except WriteError:
            raise
        except OSError as exc:
            raise WriteError(self.path, exc) from exc
        finally:
            os.close(fd)

    def _gone(self) -> WriteError:
        return WriteError(self.path, "it was removed or replaced while this run wrote it",
                          advice="run the same command again to make it anew")  # fmt: skip
