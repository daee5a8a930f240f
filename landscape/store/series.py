"""Append-only series: groups of equal-length, resizable column datasets, one row per step.

Time series (training log, probes, ICS) are appended with :func:`append_series` (one row)
or :func:`append_rows` (a block), read with :func:`read_series`, and cut back to a
checkpoint with :func:`truncate_series` when a run resumes. :class:`SeriesLog` buffers rows
of several groups and commits them together, copy-on-write.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from landscape.store.hdf5 import as_numpy, describe_datasets, edit, write_attrs

__all__ = [
    "SeriesLog",
    "StepOrder",
    "append_rows",
    "append_series",
    "read_series",
    "series_columns",
    "truncate_series",
]

# Rows per chunk aim at chunks of about this many bytes (HDF5 favours 10 KiB - 1 MiB).
_CHUNK_BYTES = 1 << 16
_MAX_CHUNK_ROWS = 4096


def _column_dtype(name: str, arr: np.ndarray) -> np.dtype:
    kind = arr.dtype.kind
    if kind == "f":
        return np.dtype(np.float64)
    if kind in "biu":
        return np.dtype(np.int64)
    raise ValueError(
        f"column {name!r} has dtype {arr.dtype}; series hold numbers only (float -> float64, "
        "int/bool -> int64)"
    )


def series_columns(group: h5py.Group) -> dict[str, h5py.Dataset]:
    """Series columns of a group: its datasets that are resizable along axis 0."""
    return {
        k: v
        for k, v in group.items()
        if isinstance(v, h5py.Dataset) and v.maxshape and v.maxshape[0] is None
    }


def _n_rows(cols: Mapping[str, h5py.Dataset], group: h5py.Group) -> int:
    lengths = {k: ds.shape[0] for k, ds in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"{group.file.filename}: the columns of {group.name} have unequal lengths {lengths}: "
            "the file is damaged"
        )
    return next(iter(lengths.values()), 0)


def append_rows(group: h5py.Group, **columns: Any) -> None:
    """Append many rows at once; each column is an array with a leading axis of rows.

    The first call creates chunked datasets with ``maxshape=(None, *row_shape)`` (floats
    stored as float64, ints and bools as int64). Later calls must pass exactly the same
    columns, with the same row shapes, and the same number of rows in every column.

    Args:
        group: The series group (e.g. ``/train/bn``).
        **columns: ``name=array`` with shape ``(n_rows, *row_shape)``.

    Raises:
        ValueError: On a missing or new column, unequal row counts, a changed row shape,
            a non-numeric dtype, or floats appended to an int column.
    """
    if not columns:
        raise ValueError("append_rows needs at least one column")
    arrays = {k: as_numpy(v) for k, v in columns.items()}
    for k, a in arrays.items():
        if a.ndim == 0:
            raise ValueError(f"column {k!r} has no row axis: use append_series for one row")
    counts = {k: a.shape[0] for k, a in arrays.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"columns have unequal row counts {counts}: pass equal-length arrays")
    n_new = next(iter(counts.values()))

    existing = series_columns(group)
    if existing and set(existing) != set(arrays):
        missing = sorted(set(existing) - set(arrays))
        new = sorted(set(arrays) - set(existing))
        raise ValueError(
            f"series {group.name} has columns {sorted(existing)}; this call is missing {missing} "
            f"and adds {new}: pass exactly the existing columns"
        )
    n_old = _n_rows(existing, group)

    # Validate everything before touching the file, so a bad call writes nothing.
    prepared: dict[str, np.ndarray] = {}
    for k, a in arrays.items():
        dtype = _column_dtype(k, a)
        if k in existing:
            ds = existing[k]
            if ds.shape[1:] != a.shape[1:]:
                raise ValueError(
                    f"column {k!r} of {group.name} has rows of shape {ds.shape[1:]}, got "
                    f"{a.shape[1:]}: keep the row shape fixed"
                )
            if ds.dtype.kind in "iu" and dtype.kind == "f":
                raise ValueError(
                    f"column {k!r} of {group.name} is {ds.dtype}, got floats: pass integers"
                )
            dtype = ds.dtype
        prepared[k] = a.astype(dtype, copy=False)

    for k, a in prepared.items():
        if k in existing:
            ds = existing[k]
        else:
            row_shape = a.shape[1:]
            row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64))) * a.dtype.itemsize
            chunk_rows = int(np.clip(_CHUNK_BYTES // row_bytes, 1, _MAX_CHUNK_ROWS))
            ds = group.create_dataset(
                k,
                shape=(0, *row_shape),
                maxshape=(None, *row_shape),
                dtype=a.dtype,
                chunks=(chunk_rows, *row_shape),
            )
        if n_new:
            ds.resize(n_old + n_new, axis=0)
            ds[n_old:] = a


def append_series(group: h5py.Group, **columns: Any) -> None:
    """Append one row; each column is a scalar or an array of the row's shape.

    See :func:`append_rows` for dtypes and the rules on columns.
    """
    append_rows(group, **{k: as_numpy(v)[None] for k, v in columns.items()})


#: How the ``step`` column of a series must run: ``any`` order, each step once (``unique``),
#: or strictly ``increasing`` (a log written step by step).
StepOrder = Literal["any", "unique", "increasing"]


def read_series(
    group: h5py.Group,
    *,
    steps: StepOrder = "any",
    columns: Collection[str] = (),
    text: Collection[str] = (),
) -> dict[str, np.ndarray]:
    """Read all columns of a series group into memory (name -> array, name order), checked.

    The checked reader of every series: each column is a dataset of numbers (the ``text``
    columns: of strings, returned as ``str`` objects), all of one length; a ``step`` column
    is 1-D and holds step numbers (finite, non-negative integers) in the order ``steps``
    asks for; every name in ``columns`` is a column.

    Raises:
        ValueError: naming the file and what in it is wrong (``... the file is damaged``).
    """
    where = f"{group.file.filename}: {group.name}"
    cols = series_columns(group)
    missing = [k for k in (*columns, *text) if k not in cols]
    if missing:
        found = {k: type(v).__name__.lower() for k, v in group.items() if k in missing}
        what = f" (there: {found})" if found else ""
        raise ValueError(f"{where} has no column {', '.join(missing)}{what}: the file is damaged")
    for k, ds in cols.items():
        is_text = h5py.check_string_dtype(ds.dtype) is not None
        if (is_text and k not in text) or (not is_text and ds.dtype.kind not in "biuf"):
            raise ValueError(
                f"{where}/{k} holds {'text' if is_text else ds.dtype}, not numbers: "
                "the file is damaged"
            )
        if k in text and not is_text:
            raise ValueError(f"{where}/{k} holds {ds.dtype}, not text: the file is damaged")
    _n_rows(cols, group)
    series = {k: ds.asstr()[()] if k in text else ds[()] for k, ds in cols.items()}
    if "step" in series:
        _check_steps(series["step"], where, steps)
    return series


def _check_steps(step: np.ndarray, where: str, order: StepOrder) -> None:
    """Raise ValueError unless ``step`` is 1-D, of step numbers, in ``order``."""
    if step.ndim != 1:
        raise ValueError(
            f"{where}/step has shape {step.shape}, not one step per row: the file is damaged"
        )
    bad = ~np.isfinite(step) | (step < 0) | (step != np.round(step))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{where}/step holds {step[row].item()!r} at row {row}, not a step number: the file is "
            "damaged"
        )
    if order == "increasing" and len(step) > 1 and (back := np.diff(step) <= 0).any():
        row = int(np.flatnonzero(back)[0]) + 1
        raise ValueError(
            f"{where}/step goes from {int(step[row - 1])} to {int(step[row])} at row {row}, "
            "where steps only increase: the file is damaged"
        )
    if order == "unique" and len(np.unique(step)) < len(step):
        values, counts = np.unique(step, return_counts=True)
        raise ValueError(
            f"{where}/step holds step {int(values[counts > 1][0])} twice: the file is damaged"
        )


def truncate_series(group: h5py.Group, key: str, keep_upto: float) -> None:
    """Drop the rows whose column ``key`` is greater than ``keep_upto`` (or NaN).

    Used on resume: the log must not hold steps after the checkpoint the run restarts
    from. A group with no columns yet is left alone.

    Raises:
        ValueError: If the group has columns but none named ``key``, or ``key`` is not 1-D.
    """
    cols = series_columns(group)
    if not cols:
        return
    if key not in cols:
        raise ValueError(f"series {group.name} has no column {key!r} (columns: {sorted(cols)})")
    if cols[key].ndim != 1:
        raise ValueError(f"column {key!r} of {group.name} is not 1-D: truncate on a scalar column")
    n = _n_rows(cols, group)
    keep = cols[key][()] <= keep_upto
    n_keep = int(keep.sum())
    if n_keep == n:
        return
    if keep[:n_keep].all():  # the usual case: a prefix of an ordered log
        for ds in cols.values():
            ds.resize(n_keep, axis=0)
        return
    for ds in cols.values():
        kept = ds[()][keep]
        ds.resize(n_keep, axis=0)
        if n_keep:
            ds[...] = kept


class SeriesLog:
    """Rows and attributes for the series groups of one HDF5 file, committed together.

    Rows are buffered in memory; :meth:`commit` appends them (and sets the attributes) in
    one :func:`~landscape.store.hdf5.edit`, a copy of the file that replaces it atomically:
    a failed write (a full disk) leaves the file as the previous commit left it, and readers
    can open the file at any time. A new file gets ``header(f)`` written first; without a
    ``header`` the file must exist, and a file that vanishes after the first commit is
    refused (ValueError), never made again without its header.

    Every column gets the ``description`` given to :meth:`describe` for its group.

    Args:
        path: The HDF5 file.
        header: Called on the new file before its first rows (provenance, kind, ...).
    """

    def __init__(self, path: str | Path, header: Callable[[h5py.File], None] | None = None):
        self.path, self.header = Path(path), header
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.attrs: dict[str, dict[str, Any]] = {}
        self.descriptions: dict[str, dict[str, str]] = {}
        self.committed = False  # whether this log has written the file yet

    def add(self, group: str, **row: Any) -> None:
        """Buffer one row of ``group`` (scalars, or arrays of a fixed row shape)."""
        self.rows.setdefault(group, []).append(row)

    def set_attrs(self, group: str, **attrs: Any) -> None:
        """Attributes for ``group``, set at the next commit (:func:`write_attrs`)."""
        self.attrs.setdefault(group, {}).update(attrs)

    def describe(self, group: str, descriptions: dict[str, str]) -> None:
        """What the columns of ``group`` mean: each column's ``description`` attribute,
        written with its rows (kept for every later commit)."""
        self.descriptions.setdefault(group, {}).update(descriptions)

    def pending(self, group: str) -> int:
        """Rows of ``group`` not committed yet."""
        return len(self.rows.get(group, ()))

    def commit(self) -> None:
        """Write every pending row and attribute in one atomic replacement of the file.

        Raises:
            WriteError: the file system refused the write; the file and the pending rows
                are kept as they were (a later commit may succeed).
            ValueError: rows that do not fit the existing columns (nothing is written).
        """
        if not (self.rows or self.attrs):
            return
        # A file is made (with its header) only by a log's first commit: one that vanished
        # since is refused by edit, never made again without its header.
        new = self.header is not None and not self.committed and not self.path.exists()
        with edit(self.path, fresh=new) as f:
            if self.header is not None and not set(f.attrs):
                self.header(f)
            for group, rows in self.rows.items():
                columns = {k: np.asarray([r[k] for r in rows]) for k in rows[0]}
                append_rows(f.require_group(group), **columns)
                describe_datasets(f[group], self.descriptions.get(group, {}))
            for group, attrs in self.attrs.items():
                write_attrs(f.require_group(group), attrs)
        self.rows, self.attrs, self.committed = {}, {}, True
