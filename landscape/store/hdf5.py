"""HDF5 files and attributes: opening with clear errors, safe edits, the one attribute codec.

The file layouts are specified in ``docs/hdf5-schema.md``. Every attribute the toolkit writes
goes through :func:`write_attrs` and is read back by :func:`read_attrs` (one encoding in
every file; schema 1.1): ``str`` as variable-length UTF-8 text, ``int`` as int64, ``float``
as float64, ``bool`` as HDF5's boolean (h5py's ``numpy.bool_`` enum), NumPy arrays natively;
dicts, lists, tuples and ``None`` as canonical JSON text (:func:`dumps`). Schema 1.0 wrote
the attributes of ``/probe`` and ``/ics`` groups all as JSON (``bn_mode = '"train"'``,
``seed = '0'``); :func:`read_attrs` reads those files too.

A file that grows (a run's log, an offline probe file) is changed through :func:`edit`: the
changes are made to an image in memory that replaces the file atomically, so a write the
file system refuses (a full disk) leaves the file as the last edit left it, and the file is
never open for writing under its own name: other processes read it whenever they like.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch

from landscape._files import write_atomically

__all__ = [
    "SCHEMA_VERSION",
    "as_numpy",
    "attr_str",
    "check_hdf5",
    "check_schema",
    "describe_datasets",
    "dumps",
    "edit",
    "encode_attr",
    "group_of",
    "json_default",
    "open_run",
    "read_attr",
    "read_attrs",
    "read_json_attr",
    "read_json_object",
    "set_attrs",
    "write_array",
    "write_attrs",
    "write_json_attr",
]

OpenMode = Literal["r", "r+", "w", "w-", "x", "a"]
#: MAJOR.MINOR of the file layouts (docs/hdf5-schema.md); readers refuse a newer MAJOR.
SCHEMA_VERSION = "1.1"
_MAX_VERSION_DIGITS = 6


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


def encode_attr(value: Any, name: str = "attribute") -> Any:
    """The stored form of one attribute value (see the module docstring).

    Raises:
        ValueError: ``value`` is neither a scalar, text, an array nor JSON-serialisable.
    """
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value)
    if isinstance(value, (int, np.integer)):
        return np.int64(value)
    if isinstance(value, (float, np.floating)):
        return np.float64(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.ndarray, torch.Tensor)) and as_numpy(value).dtype.kind in "biuf":
        return as_numpy(value)
    return dumps(value, f"attribute {name!r}")  # dicts, lists, tuples, None, dataclasses


def write_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    """Set attributes of a file, group or dataset: the toolkit's one attribute writer.

    Text, numbers and booleans are stored natively, dicts and lists as JSON text (module
    docstring); read them back with :func:`read_attrs`.
    """
    for name, value in attrs.items():
        obj.attrs[name] = encode_attr(value, name)


def _decode(value: Any, legacy: bool) -> Any:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return value
    if legacy or value == "null" or value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:  # text that only looks like JSON, or 1.0's native text
            return value
    return value


def _legacy_json(obj: h5py.HLObject) -> bool:
    """Whether ``obj`` may hold schema 1.0's JSON-encoded scalars: a group below the root
    of a file of schema 1.0 (its H5Sink groups wrote every attribute as JSON)."""
    if not isinstance(obj, h5py.Group) or obj.name == "/":
        return False
    version = obj.file.attrs.get("schema_version")
    return version is not None and attr_str(version) == "1.0"


def read_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """Every attribute of ``obj`` decoded: the reader of :func:`write_attrs`.

    Numbers and booleans come back as Python ``int``, ``float`` and ``bool``, arrays as
    NumPy arrays, text as ``str``, JSON objects and arrays (text beginning with ``{`` or
    ``[``) and ``null`` as dicts, lists and None. Files of schema 1.0 are read as well: there
    the attributes of groups below the root were JSON text of any value (``'"train"'``,
    ``'0'``), decoded as such, and text that is not JSON is the text itself.
    """
    legacy = _legacy_json(obj)
    return {name: _decode(value, legacy) for name, value in obj.attrs.items()}


def read_attr(obj: h5py.HLObject, name: str, default: Any = None) -> Any:
    """One attribute decoded as :func:`read_attrs` does; ``default`` if absent."""
    if name not in obj.attrs:
        return default
    return _decode(obj.attrs[name], _legacy_json(obj))


def read_json_object(
    obj: h5py.HLObject, name: str, path: str | Path, default: dict | None = None
) -> dict[str, Any]:
    """The attribute ``name`` of ``obj``, which must hold a JSON object (``default`` if absent).

    Raises:
        ValueError: the attribute holds anything else (text that is not JSON, a list, a
            number): naming the file and the attribute as damaged.
    """
    where = f"the attribute {name} of {obj.name}" if obj.name != "/" else f"its attribute {name}"
    if name not in obj.attrs:
        if default is not None:
            return default
        raise ValueError(f"{path}: {where} is missing: the file is damaged")
    value = read_attr(obj, name)
    if isinstance(value, dict):
        return value
    shown = repr(value)
    shown = shown if len(shown) <= 40 else f"{shown[:37]}..."
    raise ValueError(f"{path}: {where} holds {shown}, not a JSON object: the file is damaged")


def describe_datasets(group: h5py.Group, descriptions: Mapping[str, str]) -> None:
    """Set the ``description`` attribute of the datasets of ``group`` named in
    ``descriptions`` (names may hold ``/``); names absent from the group are skipped."""
    for name, text in descriptions.items():
        if isinstance(group.get(name), h5py.Dataset):
            write_attrs(group[name], {"description": text})


#: Names of the schema 1.0 API, kept for callers: the same writer and reader.
set_attrs = write_attrs
read_json_attr = read_attr


def write_json_attr(obj: h5py.HLObject, name: str, value: Any) -> None:
    """One attribute, written by :func:`write_attrs` (kept from schema 1.0)."""
    write_attrs(obj, {name: value})


def write_array(
    group: h5py.Group, name: str, array: Any, attrs: Mapping[str, Any] | None = None
) -> h5py.Dataset:
    """Write (or overwrite) a fixed-shape dataset, with optional attributes.

    Args:
        group: Parent group.
        name: Dataset name (may contain ``/``; intermediate groups are created).
        array: Array-like; tensors are converted through NumPy.
        attrs: Attributes, written with :func:`write_attrs`.

    Returns:
        The dataset.
    """
    data = as_numpy(array)
    if name in group:
        del group[name]
    ds = group.create_dataset(name, data=data)
    if attrs:
        write_attrs(ds, attrs)
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
        f = h5py.File(path, mode)
    except OSError as exc:
        if _locked_by_a_writer(path):
            raise ValueError(
                f"{path} is open for writing by another process (a run in progress?): "
                "try again when it finishes"
            ) from exc
        why = " ".join(str(exc).split())[:200]
        raise ValueError(f"{path} cannot be opened as HDF5 (truncated or damaged?): {why}") from exc
    if mode in ("r", "r+"):
        try:
            check_schema(f, path)
        except ValueError:
            f.close()
            raise
    return f


def _locked_by_a_writer(path: Path) -> bool:
    """Whether another process holds HDF5's exclusive lock on ``path``: asked of the lock
    itself (a shared ``flock`` that cannot be had), never guessed from an error's text."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a file system without locks
        return False
    finally:
        os.close(fd)  # also releases the shared lock, if we got it
    return False


def check_schema(f: h5py.File, path: str | Path) -> None:
    """Refuse a file written with a newer major schema than this package reads.

    Files without ``schema_version`` (not written by landscape) are left to the reader.

    Raises:
        ValueError: naming the file, the version it holds and what to do.
    """
    if "schema_version" not in f.attrs:
        return
    version = attr_str(f.attrs["schema_version"])
    major = version.split(".")[0]
    # A major of more digits than any version will have is damage, not a newer version
    # (and int() refuses strings of thousands of digits).
    if not (major.isascii() and major.isdigit()) or len(major) > _MAX_VERSION_DIGITS:
        shown = version if len(version) <= 40 else f"{version[:20]}...({len(version)} characters)"
        raise ValueError(f"{path} has schema_version {shown!r}, not MAJOR.MINOR: it is damaged")
    if int(major) > int(SCHEMA_VERSION.split(".")[0]):
        raise ValueError(
            f"{path} was written with schema {version}; this landscape reads schema "
            f"{SCHEMA_VERSION} and older: upgrade landscape"
        )


def check_hdf5(path: Path) -> None:
    if not path.exists():
        raise ValueError(f"no such file: {path}: check the path")
    if path.is_dir() or not h5py.is_hdf5(path):
        raise ValueError(f"{path} is not an HDF5 file: pass a run directory or a .h5 file")


def group_of(f: h5py.File | h5py.Group, name: str, path: str | Path) -> h5py.Group | None:
    """The group ``name`` of ``f`` (None when absent); anything else there is an error.

    Raises:
        ValueError: ``name`` is a dataset (or another object) where a group belongs.
    """
    obj = f.get(name)
    if obj is None or isinstance(obj, h5py.Group):
        return obj
    raise ValueError(
        f"{path}: /{name} is a {type(obj).__name__.lower()}, not a group: the file is "
        "damaged or not a landscape file"
    )


@contextlib.contextmanager
def edit(path: str | Path, *, fresh: bool = False) -> Iterator[h5py.File]:
    """The HDF5 file at ``path`` for changes, copy-on-write; with ``fresh`` a new file made
    from nothing (a successful block then replaces an old file whole).

    The block works on an image of the file in memory (HDF5 never writes to disk here);
    when it ends normally the image is written next to ``path``, fsynced and renamed over
    it (:func:`landscape._files.write_atomically`). If anything fails (the block raises, the
    disk is full), ``path`` is exactly as it was and the process is unharmed: a failed write
    inside the HDF5 library itself can leave it broken until the process ends in a crash.
    Costs a read and a write of the whole file per edit: for the small files that grow by
    rows (run logs, probe files), batch the rows.

    Without ``fresh`` the file must be there: one that vanished while a command was adding
    to it (removed by another process) is refused, never made again without its header
    (kind, settings, provenance) around the rows of the moment.

    Raises:
        ValueError: ``path`` is absent and ``fresh`` is not set; nothing is written.
        WriteError: the file system refused a write; ``path`` is unchanged.
    """
    path = Path(path)
    if fresh:
        data, mode = b"", path.stat().st_mode & 0o777 if path.exists() else 0o644
    else:
        try:
            data, mode = path.read_bytes(), path.stat().st_mode & 0o777
        except FileNotFoundError:
            raise ValueError(
                f"{path} is gone (removed by another process while this one was adding to it?): "
                "nothing more was written to it; run the command again to make it anew"
            ) from None
    image = io.BytesIO(data)
    with h5py.File(image, "w" if fresh else "r+") as f:
        yield f
    write_atomically(path, image.getvalue(), mode=mode)
