"""HDF5 files and attributes: opening with clear errors, JSON attributes, fixed arrays.

The file layout is specified in ``docs/hdf5-schema.md``. Dicts, lists and ``None`` are stored
as canonical JSON strings (:func:`dumps`); strings, numbers and arrays natively.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch

__all__ = [
    "as_numpy",
    "attr_str",
    "check_hdf5",
    "dumps",
    "json_default",
    "open_run",
    "read_json_attr",
    "set_attrs",
    "write_array",
    "write_json_attr",
]

OpenMode = Literal["r", "r+", "w", "w-", "x", "a"]


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


def attr_str(value: Any) -> str:
    """An attribute value as text (bytes decoded as UTF-8)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


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
    data = as_numpy(array)
    if name in group:
        del group[name]
    ds = group.create_dataset(name, data=data)
    if attrs:
        set_attrs(ds, attrs)
    return ds


def as_numpy(value: Any) -> np.ndarray:
    """A NumPy view of an array-like (tensors detached and moved to the CPU first)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


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
