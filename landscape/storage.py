"""HDF5 run store: provenance, append-only series, arrays, and ``landscape info``.

The file layout is specified in ``docs/hdf5-schema.md``. Every HDF5 file the toolkit
writes carries :func:`provenance` as string attributes on its root. Time series (training
log, probes, ICS) are groups of equal-length, resizable column datasets: one row per
logged step, appended with :func:`append_series` / :func:`append_rows`, cut back to a
checkpoint with :func:`truncate_series` when a run resumes.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import shlex
import socket
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch

__all__ = [
    "PROVENANCE_KEYS",
    "SCHEMA_VERSION",
    "append_rows",
    "append_series",
    "attr_str",
    "check_hdf5",
    "dumps",
    "json_default",
    "open_run",
    "provenance",
    "read_json_attr",
    "read_provenance",
    "read_series",
    "series_columns",
    "set_attrs",
    "truncate_series",
    "write_array",
    "write_json_attr",
    "write_provenance",
]

SCHEMA_VERSION = "1.0"
PROVENANCE_KEYS = (
    "schema_version",
    "package",
    "package_version",
    "command_line",
    "config_json",
    "created",
    "torch_version",
    "numpy_version",
    "h5py_version",
    "python_version",
    "hostname",
    "device",
    "git_commit",
)
_PACKAGE = "landscape"
_GIT_TIMEOUT_S = 2.0
# Rows per chunk aim at chunks of about this many bytes (HDF5 favours 10 KiB - 1 MiB).
_CHUNK_BYTES = 1 << 16
_MAX_CHUNK_ROWS = 4096

OpenMode = Literal["r", "r+", "w", "w-", "x", "a"]


# --------------------------------------------------------------------------- provenance


def json_default(obj: Any) -> Any:
    """``json.dumps(..., default=json_default)``: NumPy values, paths and dataclasses."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"value of type {type(obj).__name__} is not JSON-serialisable")


def dumps(obj: Any, what: str) -> str:
    """Canonical JSON of ``obj`` (sorted keys, :func:`json_default` for NumPy, paths, dataclasses).

    Args:
        obj: The value to encode.
        what: What ``obj`` is, for the error message (``"config"``, ``"meta"``).

    Raises:
        ValueError: If ``obj`` holds something JSON cannot represent.
    """
    try:
        return json.dumps(obj, sort_keys=True, default=json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} cannot be recorded as JSON ({exc}): use str, numbers, lists and dicts"
        ) from exc


def _package_version() -> str:
    try:
        return importlib.metadata.version(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


@lru_cache(maxsize=1)
def _git_commit() -> str:
    """HEAD of the repository holding this package, or "unknown" (no git, no repo, timeout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else "unknown"


def provenance(
    config: Mapping[str, Any] | None = None, *, device: str | None = None
) -> dict[str, str]:
    """Describe where a result comes from: software versions, command, config, host.

    Args:
        config: The configuration that produced the result (a dict or a dataclass); stored
            as sorted-key JSON. NumPy scalars/arrays and paths are converted.
        device: Device the computation ran on (default ``"cpu"``).

    Returns:
        ``dict[str, str]`` with exactly the keys of :data:`PROVENANCE_KEYS`.

    Raises:
        ValueError: If ``config`` holds values that cannot be written as JSON.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "package": _PACKAGE,
        "package_version": _package_version(),
        "command_line": shlex.join(sys.argv),
        "config_json": dumps(config if config is not None else {}, "config"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
        "numpy_version": np.__version__,
        "h5py_version": h5py.__version__,
        "python_version": platform.python_version(),
        "hostname": socket.gethostname(),
        "device": str(device) if device is not None else "cpu",
        "git_commit": _git_commit(),
    }


def write_provenance(obj: h5py.Group | h5py.File, prov: Mapping[str, str]) -> None:
    """Write ``prov`` as string attributes on ``obj`` (normally the file root)."""
    for key, value in prov.items():
        obj.attrs[key] = str(value)


def attr_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def read_provenance(obj: h5py.Group | h5py.File) -> dict[str, str]:
    """Return the :data:`PROVENANCE_KEYS` attributes present on ``obj`` (empty if none)."""
    return {k: attr_str(obj.attrs[k]) for k in PROVENANCE_KEYS if k in obj.attrs}


# --------------------------------------------------------------------------- attributes


def write_json_attr(obj: h5py.HLObject, name: str, value: Any) -> None:
    """Store a dict/list (or any JSON value) as a JSON string attribute."""
    obj.attrs[name] = json.dumps(value, default=json_default)


def read_json_attr(obj: h5py.HLObject, name: str, default: Any = None) -> Any:
    """Decode an attribute written by :func:`write_json_attr`; ``default`` if absent."""
    if name not in obj.attrs:
        return default
    return json.loads(attr_str(obj.attrs[name]))


def set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    """Set attributes: str, numbers and arrays natively; dicts, lists, tuples, None as JSON.

    Read JSON-encoded ones back with :func:`read_json_attr`.
    """
    for name, value in attrs.items():
        if isinstance(value, (Mapping, list, tuple)) or value is None:
            write_json_attr(obj, name, value)
        elif isinstance(value, Path):
            obj.attrs[name] = str(value)
        else:
            obj.attrs[name] = value


def write_array(
    group: h5py.Group, name: str, array: Any, attrs: Mapping[str, Any] | None = None
) -> h5py.Dataset:
    """Write (or overwrite) a fixed-shape dataset, with optional attributes.

    Args:
        group: Parent group.
        name: Dataset name (may contain ``/``; intermediate groups are created).
        array: Array-like; tensors are converted through NumPy.
        attrs: Attributes, written with :func:`set_attrs`.

    Returns:
        The dataset.
    """
    data = _as_numpy(array)
    if name in group:
        del group[name]
    ds = group.create_dataset(name, data=data)
    if attrs:
        set_attrs(ds, attrs)
    return ds


# --------------------------------------------------------------------------- series


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


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
            f"columns of {group.name} have unequal lengths {lengths}: the file is inconsistent; "
            "cut it back with truncate_series"
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
    arrays = {k: _as_numpy(v) for k, v in columns.items()}
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
    append_rows(group, **{k: _as_numpy(v)[None] for k, v in columns.items()})


def read_series(group: h5py.Group) -> dict[str, np.ndarray]:
    """Read all columns of a series group into memory (name -> array, name order).

    Raises:
        ValueError: If the columns have unequal lengths.
    """
    cols = series_columns(group)
    _n_rows(cols, group)
    return {k: ds[()] for k, ds in cols.items()}


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


# --------------------------------------------------------------------------- files


def open_run(path: str | Path, mode: OpenMode = "r") -> h5py.File:
    """Open an HDF5 file; writing modes create parent directories.

    Args:
        path: File path.
        mode: h5py mode: ``r``, ``r+``, ``w`` (truncate), ``w-``/``x`` (fail if exists),
            ``a`` (read/write, create if missing).

    Raises:
        ValueError: If a file to read is missing, not HDF5, or locked by a writer.
    """
    path = Path(path)
    if mode in ("r", "r+"):
        check_hdf5(path)
    elif mode in ("w", "w-", "x", "a"):
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        raise ValueError(f"unknown mode {mode!r}: use r, r+, w, w-, x or a")
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        if "lock" in str(exc).lower():
            raise ValueError(
                f"{path} is open for writing by another process (a run in progress?): "
                "try again when it finishes"
            ) from exc
        raise ValueError(f"cannot open {path} in mode {mode!r}: {exc}") from exc


def check_hdf5(path: Path) -> None:
    if not path.exists():
        raise ValueError(f"no such file: {path}: check the path")
    if path.is_dir() or not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file: pass a run directory or a .h5 file")
