"""Offline probe files (``landscape probe``): their names, and the one checked reader.

Layout (``docs/hdf5-schema.md``, "Offline probe files"): the root holds the provenance, the
settings (attribute ``offline_probe_settings``, a JSON object) and the probe batches'
indices ``/offline_probe_batches``; per variant, the series ``/offline_probe/<variant>``
(and ``/offline_ics/<variant>`` with ICS), one row per checkpoint, then the commit row
``/offline_checkpoints/<variant>`` (step, sha256, file), written last in the same edit.

:func:`read_offline_file` checks all of it before anything reads or adds to the file: a
rerun of the probe must never take a damaged commit row for "not done yet" and probe (and
append) a checkpoint again, and a figure must never draw rows no commit row vouches for.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape import store

__all__ = ["OfflineFile", "read_offline_file", "read_offline_probes"]

PROBE, ICS, SOURCES = "offline_probe", "offline_ics", "offline_checkpoints"
BATCHES, SETTINGS_ATTR = "offline_probe_batches", "offline_probe_settings"
SOURCE_COLUMNS = ("step", "sha256", "file")
#: The columns every reader of ``/offline_probe/<variant>`` and ``/offline_ics`` relies on.
_PROBE_NEEDS = ("step", "step_sizes", "loss", "grad_distance", "beta", "beta_mean", "beta_std")
_ICS_NEEDS = ("step", "l2", "cos")
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: What to do about a damaged offline probe file (it is never changed by the reader).
FIX = "probe again into a new file (landscape probe ... --out NEW, or --overwrite to replace it)"


@dataclass
class OfflineFile:
    """The checked content of an offline probe file.

    Attributes:
        settings: the probe settings (``offline_probe_settings``).
        batches: ``(B, batch_size)`` training-set indices of the probe batches.
        done: per variant, ``{step: sha256}`` of the committed checkpoints.
        probes: per variant, the committed ``/offline_probe`` rows (in probing order) with
            the ``sha256`` and ``file`` of their checkpoints.
    """

    settings: dict[str, Any]
    batches: np.ndarray
    done: dict[str, dict[int, str]] = field(default_factory=dict)
    probes: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


@contextlib.contextmanager
def _damaged(path: Path) -> Iterator[None]:
    """ValueErrors of the store's readers, with what to do about the file appended."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"{exc}; {FIX}") from None


def read_offline_file(path: str | Path) -> OfflineFile:
    """Read and check an offline probe file written by :func:`probe_checkpoints`.

    Checked: the settings are a JSON object; the probe batches a 2-D integer array of the
    settings' shape; every variant below ``/offline_probe``, ``/offline_ics`` and
    ``/offline_checkpoints`` a group; the commit rows (step, sha256, file) of equal length,
    each step a step number and once, each sha256 a SHA-256; every committed checkpoint's
    probe (and, with ICS, ICS) row present, of numbers, at the same step.

    Raises:
        ValueError: naming the file and what in it is damaged (the file is not changed).
    """
    path = Path(path)
    with store.open_run(path) as f, _damaged(path):
        settings = store.read_json_object(f, SETTINGS_ATTR, path)
        batches = _batches(f, settings, path)
        for name in (PROBE, ICS, SOURCES):
            for variant in store.group_of(f, name, path) or ():
                store.group_of(f, f"{name}/{variant}", path)
        out = OfflineFile(settings, batches)
        for variant in store.group_of(f, SOURCES, path) or ():
            _read_variant(f, variant, settings, path, out)
    return out


def read_offline_probes(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Finished rows per variant, in probing order: ``/offline_probe`` + ``sha256``, ``file``
    (checked: :func:`read_offline_file`)."""
    return read_offline_file(path).probes


def _batches(f: h5py.File, settings: dict[str, Any], path: Path) -> np.ndarray:
    ds = f.get(BATCHES)
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 2 or ds.dtype.kind not in "iu":
        found = "missing" if ds is None else f"a {type(ds).__name__.lower()}"
        if isinstance(ds, h5py.Dataset):
            found = f"of shape {ds.shape} and dtype {ds.dtype}"
        raise ValueError(
            f"{path}: /{BATCHES} is {found}, not the probe batches' indices (a 2-D integer "
            "array): the file is damaged"
        )
    want = (settings.get("num_batches"), settings.get("batch_size"))
    if all(isinstance(n, int) for n in want) and ds.shape != want:
        raise ValueError(
            f"{path}: /{BATCHES} has shape {ds.shape}, but the settings ask for {want[0]} "
            f"batches of {want[1]}: the file is damaged"
        )
    return ds[()]


def _read_variant(
    f: h5py.File, variant: str, settings: dict[str, Any], path: Path, out: OfflineFile
) -> None:
    """The committed checkpoints of ``variant`` and their rows, checked, into ``out``."""
    src = f[f"{SOURCES}/{variant}"]
    if not len(src):
        return
    rows = store.read_series(src, steps="unique", columns=("step",), text=("sha256", "file"))
    steps, shas = rows["step"], rows["sha256"]
    if n_bad := sum(not _SHA256.fullmatch(h) for h in shas):
        raise ValueError(
            f"{path}: {src.name}/sha256 holds {n_bad} values that are not SHA-256 digests: "
            "the file is damaged"
        )
    n = len(steps)
    if not n:
        return
    kinds = [(PROBE, _PROBE_NEEDS)] + ([(ICS, _ICS_NEEDS)] if settings.get("ics") else [])
    for name, needs in kinds:
        group = store.group_of(f, f"{name}/{variant}", path)
        if group is None:
            raise ValueError(
                f"{path}: {src.name} commits {n} checkpoints but /{name}/{variant} is "
                "missing: the file is damaged"
            )
        series = store.read_series(group, columns=needs)
        if len(series["step"]) < n or not np.array_equal(series["step"][:n], steps):
            raise ValueError(
                f"{path}: /{name}/{variant} holds the steps {_few(series['step'][:n])}, not "
                f"the committed checkpoints' {_few(steps)}: the file is damaged"
            )
        if name == PROBE:
            out.probes[variant] = {k: v[:n] for k, v in series.items()}
            out.probes[variant] |= {"sha256": shas, "file": rows["file"]}
    out.done[variant] = dict(zip(steps.tolist(), shas.tolist()))


def _few(values: np.ndarray, most: int = 6) -> str:
    """``[0, 50, 100]``, or the first ``most`` values and how many more."""
    head = ", ".join(str(v) for v in values[:most].tolist())
    return f"[{head}]" if len(values) <= most else f"[{head}, ... {len(values)} in all]"
