"""The one guard every output goes through: a path is written only where it holds nothing,
or holds what this writer writes.

A file's kind is read from its content, never from its name: the root attribute
``landscape_kind`` that every HDF5 file the toolkit writes carries, the signatures of files
written before it existed (a slice's ``slice_format``, an offline probe file's settings, a
run log's ``variants``), and the magic bytes of checkpoints and figures. ``overwrite`` lets
a command replace an output of its own kind; nothing replaces a file of another kind (a
run's log, a checkpoint, a text file), whatever the flags. Before this guard, ``landscape
probe --out run.h5 --overwrite`` replaced a run's log with a probe file.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

import h5py

__all__ = [
    "KIND_ATTR",
    "Kind",
    "check_output",
    "kind_of",
    "remove_outputs",
]

#: Root attribute naming what an HDF5 file of the toolkit is.
KIND_ATTR = "landscape_kind"
Kind = Literal[
    "run log", "offline probe file", "probe log", "slice file", "figure", "checkpoint", "VTK file"
]

_FIGURE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"%PDF-",
    b"%!PS",  # PostScript, EPS
    b"\xff\xd8\xff",  # JPEG
    b"II*\x00",  # TIFF, little- and big-endian
    b"MM\x00*",
)
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format
_PICKLE_MAGIC = b"\x80"  # torch.save's legacy format (a pickle)
_SNIFF_BYTES = 512


def kind_of(path: str | Path) -> str:
    """What ``path`` holds, by content.

    Returns:
        A :data:`Kind`, or ``"nothing"`` (absent or an empty file), ``"directory"``,
        ``"HDF5 file"`` (another HDF5 file), ``"damaged HDF5 file"`` or ``"file"``.
    """
    path = Path(path)
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return "nothing"
    if path.is_dir():
        return "directory"
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return "file"
    if h5py.is_hdf5(path):
        return _hdf5_kind(path)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC):
        return "checkpoint"
    if head.startswith(_FIGURE_MAGIC) or b"<svg" in head[:_SNIFF_BYTES]:
        return "figure"
    if head.startswith(b"<?xml") and b"<VTKFile" in head:
        return "VTK file"
    return "file"


def _hdf5_kind(path: Path) -> str:
    try:
        with h5py.File(path, "r", locking=False) as f:
            attrs = f.attrs
            if KIND_ATTR in attrs:
                value = attrs[KIND_ATTR]
                return value.decode() if isinstance(value, bytes) else str(value)
            if "slice_format" in attrs:
                return "slice file"
            if "offline_probe_settings" in attrs:
                return "offline probe file"
            if "variants" in attrs and "train" in f:
                return "run log"
            if "schema_version" in attrs and set(f) and set(f) <= {"probe", "ics"}:
                return "probe log"
            return "HDF5 file"
    except (OSError, RuntimeError, KeyError, ValueError):
        return "damaged HDF5 file"


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiouAEIOU" or kind.startswith("HDF5") else f"a {kind}"


def check_output(path: str | Path, kind: Kind | tuple[Kind, ...], *, option: str = "--out") -> bool:
    """Refuse ``path`` as an output of ``kind`` unless it holds nothing or that kind.

    Args:
        path: Where the output is to be written.
        kind: What the writer writes (or the kinds it may append to).
        option: How the user names the path, for the message.

    Returns:
        True when ``path`` holds an output of ``kind`` already (the caller continues it,
        replaces it under ``overwrite``, or refuses), False when it holds nothing.

    Raises:
        ValueError: ``path`` holds something else; it is never replaced, whatever the flags.
    """
    kinds = (kind,) if isinstance(kind, str) else kind
    found = kind_of(path)
    if found == "nothing":
        return False
    if found in kinds:
        return True
    raise ValueError(
        f"{path} holds {_a(found)}, not {_a(kinds[0])}: it is never replaced, whatever "
        f"--overwrite says; choose another {option}"
    )


def remove_outputs(directory: str | Path, kind: Kind) -> list[Path]:
    """Delete the files of ``kind`` below ``directory`` and the folders left empty.

    Anything else is left where it is. Returns the files that are left (not of ``kind``).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    kept = []
    for p in sorted(directory.rglob("*"), reverse=True):  # files before their folders
        if p.is_file() or p.is_symlink():
            if not p.is_symlink() and kind_of(p) in (kind, "nothing"):
                p.unlink()
            else:
                kept.append(p)
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    if directory.is_dir() and not any(directory.iterdir()):
        shutil.rmtree(directory)
    return sorted(kept)
