"""The one guard every output goes through: a path is written only where it holds nothing,
or holds what this writer writes.

A file's kind is read from its content, never from its name: the root attribute
``landscape_kind`` that every HDF5 file the toolkit writes carries, the signatures of files
written before it existed (a slice's ``slice_format``, an offline probe file's settings, a
run log's ``variants``), the magic bytes of checkpoints, and the stamp on figures
(:mod:`landscape.store.figure_stamp`: an image landscape did not draw is never a figure).
Nothing but a regular file is ever opened (a FIFO would make the reader wait forever).
``overwrite`` lets a command replace an output of its own kind; nothing replaces a file of
another kind (a run's log, a checkpoint, a text file), whatever the flags. Before this
guard, ``landscape probe --out run.h5 --overwrite`` replaced a run's log with a probe file.

``train --overwrite`` removes what the old run wrote and nothing else
(:func:`remove_run_outputs`): never through a symbolic link, never a file another process
is writing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Literal

import h5py
import torch

from landscape._files import remove_stale_temporaries, sha256_of, writer_lock
from landscape.store.checkpoint import CHECKPOINT_FORMAT
from landscape.store.checkpoint_files import step_of_name
from landscape.store.figure_stamp import image_format, stamped
from landscape.store.hdf5 import read_attr
from landscape.store.layout import (
    CHECKPOINTS,
    FIGURES,
    HESSIAN_FILE,
    PROBES_FILE,
    RUN_FILE,
    SLICES,
    VARIANTS,
    checkpoint_dir,
)

__all__ = [
    "FOREIGN_IMAGE",
    "KIND_ATTR",
    "Kind",
    "check_output",
    "kind_of",
    "remove_empty_run_folders",
    "remove_run_outputs",
    "remove_run_temporaries",
]

#: Root attribute naming what an HDF5 file of the toolkit is.
KIND_ATTR = "landscape_kind"
Kind = Literal[
    "run log", "offline probe file", "hessian file", "probe log", "slice file", "sweep file",
    "figure", "checkpoint", "VTK file", "study file",
]  # fmt: skip

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format
_PICKLE_MAGIC = b"\x80"  # torch.save's legacy format (a pickle)
_SNIFF_BYTES = 512
#: What a path that is neither a regular file nor a directory is (never opened).
_SPECIAL = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"),
            (stat.S_ISBLK, "device"))  # fmt: skip
#: An image that carries no landscape stamp (:mod:`landscape.store.figure_stamp`).
FOREIGN_IMAGE = "image landscape did not draw"


def kind_of(path: str | Path) -> str:
    """What ``path`` holds, by content; nothing but a regular file is ever opened.

    Returns:
        A :data:`Kind`, or ``"nothing"`` (absent, below a file, a dangling link or an empty
        file), ``"directory"``, ``"FIFO"``, ``"socket"``, ``"device"``, ``"HDF5 file"``
        (another HDF5 file), ``"damaged HDF5 file"``, :data:`FOREIGN_IMAGE` or ``"file"``.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # below a file: nothing can be there,
        return "nothing"  # and the writer's own error names the path (WriteError's advice)
    except OSError:  # no permission to look, a loop of links
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    for test, name in _SPECIAL:
        if test(mode):
            return name
    try:  # O_NONBLOCK: a FIFO put here since the stat cannot make the open wait
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return "file"
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "file"
        if st.st_size == 0:
            return "nothing"
        head = f.read(_SNIFF_BYTES)
    if h5py.is_hdf5(path):
        return _hdf5_kind(path)
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC):
        return "checkpoint"
    if head.startswith(b"<?xml") and b"<VTKFile" in head:
        return "VTK file"
    if (fmt := image_format(head)) is not None:
        return "figure" if stamped(path, fmt) else FOREIGN_IMAGE
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
    return f"an {kind}" if kind[0] in "aeiou" or kind.startswith("HDF5") else f"a {kind}"


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
    if found in {name for _, name in _SPECIAL}:
        raise ValueError(f"{path} is {_a(found)}, not a regular file: landscape writes only "
                         f"regular files; choose another {option}")  # fmt: skip
    hint = " (a figure drawn before landscape stamped its figures counts as one: delete it " \
        "yourself to redraw it)" if found == FOREIGN_IMAGE else ""  # fmt: skip
    raise ValueError(
        f"{path} holds {_a(found)}, not {_a(kinds[0])}: it is never replaced, whatever "
        f"--overwrite says; choose another {option}{hint}"
    )


def remove_run_outputs(run: str | Path) -> list[Path]:
    """Delete what landscape wrote in the run directory ``run``, and only that (``train
    --overwrite``); return the files kept below its folders.

    What goes: ``checkpoints/<variant>/step_XXXXXXX.pt`` that are landscape checkpoints of
    that step and variant (and temporaries of killed saves of them), ``probes.h5`` if it is
    an offline probe file, ``hessian.h5`` if it is a Hessian file, files below
    ``figures/`` that carry landscape's stamp, slice files below ``slices/`` whose every
    source checkpoint is one of those checkpoints (by name and SHA-256), and ``run.h5``
    last; then the layout's folders left empty. Everything else stays (a ZIP, an empty
    file, your PDF, a slice of another run's checkpoint).

    Nothing is deleted before every check passed: a symbolic link where the run writes (its
    folders, ``run.h5``, ``probes.h5``, ``hessian.h5``, a checkpoint's name) is never
    followed, deleted or replaced; a file at a checkpoint's name that is not the run's
    checkpoint is never replaced; and the writer locks (:func:`landscape._files.writer_lock`)
    of ``probes.h5``, ``hessian.h5`` and the slice files are taken first, so an output
    another process is writing stays.

    Raises:
        ValueError: one of those, naming the path; nothing was deleted.
    """
    run = Path(run)
    ckpt_root, variants = run / CHECKPOINTS, [checkpoint_dir(run, v) for v in VARIANTS]
    for p in (ckpt_root, *variants, run / FIGURES, run / SLICES, run / RUN_FILE, run / PROBES_FILE,
              run / HESSIAN_FILE):  # fmt: skip
        _refuse_link(p)
    remove, locked, checkpoints = [], [], set()
    for folder in variants:
        for p in _walk(folder):
            if _CHECKPOINT_TMP.fullmatch(p.name) and p.parent == folder and _regular(p):
                remove.append(p)
            elif step_of_name(p.name) is not None and p.parent == folder:
                _refuse_link(p)
                if not _run_checkpoint(p, folder.name):
                    raise ValueError(
                        f"{p} is not a checkpoint of this run (not written by landscape train): "
                        "it is never replaced; move it away or choose another --out"
                    )
                checkpoints.add(p)
    hashes: dict[Path, str | None] = {}
    figures = [p for p in _walk(run / FIGURES) if _regular(p) and kind_of(p) == "figure"]
    slices = [p for p in _walk(run / SLICES) if _regular(p) and kind_of(p) == "slice file"
              and _of_run(p, run, checkpoints, hashes)]  # fmt: skip
    if kind_of(run / PROBES_FILE) == "offline probe file":
        locked.append(run / PROBES_FILE)
    if kind_of(run / HESSIAN_FILE) == "hessian file":
        locked.append(run / HESSIAN_FILE)
    locked += slices
    remove += sorted(checkpoints) + figures
    with contextlib.ExitStack() as held:
        for p in [run / RUN_FILE, *locked]:
            try:
                held.enter_context(writer_lock(p))
            except ValueError:
                raise ValueError(
                    f"{p} is being written by another process (a probe or slice in progress?) "
                    "and would go with the old run: nothing was deleted; wait for it to finish"
                ) from None
        for p in locked:
            remove_stale_temporaries(p)  # of killed writers: we hold the lock
        for p in [*remove, *locked, run / RUN_FILE]:
            p.unlink(missing_ok=True)
    kept = [p for top in (ckpt_root, run / FIGURES, run / SLICES) for p in _walk(top)
            if not _LOCK_FILE.fullmatch(p.name)]  # fmt: skip
    remove_empty_run_folders(run, (*variants, ckpt_root, run / FIGURES, run / SLICES))
    return sorted(kept)


def remove_run_temporaries(run: str | Path) -> None:
    """Delete the temporaries of ``run.h5`` and of checkpoints that a killed ``landscape
    train`` left in ``run`` (a checkpoint's is as large as the checkpoint).

    Call only while holding the writer lock of ``run/run.h5``: then no process is writing
    them. Checkpoint folders behind a symbolic link are left alone.
    """
    run = Path(run)
    remove_stale_temporaries(run / RUN_FILE)
    if (run / CHECKPOINTS).is_symlink():
        return
    for folder in (checkpoint_dir(run, v) for v in VARIANTS):
        if folder.is_dir() and not folder.is_symlink():
            for p in folder.iterdir():
                if _CHECKPOINT_TMP.fullmatch(p.name) and _regular(p):
                    p.unlink(missing_ok=True)


def remove_empty_run_folders(run: str | Path, folders: tuple[Path, ...] | None = None) -> None:
    """Remove the run's layout folders (by default ``checkpoints/<variant>`` and
    ``checkpoints``, children first) that are empty; never a link or anything else."""
    run = Path(run)
    if folders is None:
        folders = (*(checkpoint_dir(run, v) for v in VARIANTS), run / CHECKPOINTS)
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty, absent, a link (rmdir removes no link)
            folder.rmdir()


_CHECKPOINT_TMP = re.compile(r"\.step_\d{7,}\.pt\..+\.tmp")
_LOCK_FILE = re.compile(r"\..+\.lock")


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise ValueError(
            f"{path} is a symbolic link: train --overwrite never deletes through a link nor "
            "replaces one (it may lead to another run's files); remove the link yourself or "
            "choose another --out"
        )


def _regular(path: Path) -> bool:
    """A regular file itself (a link, a FIFO, a folder: False)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _walk(folder: Path) -> list[Path]:
    """Every entry below ``folder`` that is not a folder; a link is listed, never followed."""
    if folder.is_symlink() or not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        found = sorted(entries, key=lambda e: e.name)
    out: list[Path] = []
    for e in found:
        out += _walk(Path(e.path)) if e.is_dir(follow_symlinks=False) else [Path(e.path)]
    return out


def _run_checkpoint(path: Path, variant: str) -> bool:
    """Whether ``path`` is a landscape checkpoint of ``variant`` at the step its name says
    (read weights-only, its tensors mapped, not loaded)."""
    if not _regular(path):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        extra = json.loads(obj["extra"])
        return (obj["format"] == CHECKPOINT_FORMAT and obj["step"] == step_of_name(path.name)
                and extra.get("variant") == variant)  # fmt: skip
    except Exception:  # not a zip, not a dict, no such key: not the run's checkpoint
        return False


def _of_run(path: Path, run: Path, checkpoints: set[Path], hashes: dict) -> bool:
    """Whether every checkpoint the slice file ``path`` was made from is one of the run's
    ``checkpoints``: the recorded file name under the recorded variant, with the recorded
    SHA-256 (a slice of weights, or of a file written before sources were recorded: no)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            meta = read_attr(f, "meta", {})
        variant = meta["variant"]
        used = [(s["variant"], s["file"], s["sha256"]) for s in meta["sources"]]
        used += [(variant, t["file"], t["sha256"]) for t in meta.get("trajectory") or ()]
    except Exception:  # no meta, not JSON, not the fields of a checkpoint slice
        return False
    for v, name, digest in used:
        ckpt = run / CHECKPOINTS / str(v) / str(name)
        if ckpt not in checkpoints:
            return False
        if ckpt not in hashes:
            hashes[ckpt] = sha256_of(ckpt)
        if hashes[ckpt] != digest:
            return False
    return bool(used)
