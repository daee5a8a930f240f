"""``landscape info``: a readable summary of an HDF5 file, a run directory or a checkpoint.

Provenance first (when, by which version and command), then the tree of groups and
datasets with shapes, row counts and how much of each grid is computed; for a run
directory also its checkpoints per variant and its figures; for a checkpoint its step,
model spec, tensor count and extra metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape.store.checkpoint import load_checkpoint
from landscape.store.checkpoint_files import CheckpointError, list_checkpoints
from landscape.store.hdf5 import attr_str, open_run
from landscape.store.layout import CHECKPOINTS, FIGURES, RUN_FILE
from landscape.store.provenance import PROVENANCE_KEYS, read_provenance
from landscape.store.series import series_columns
from landscape.store.weights import load_state_dict_file, weights_checkpoint

_NAN_COUNT_LIMIT = 50_000_000  # larger float datasets are not scanned for NaN
_ATTR_PREVIEW = 70  # characters of an attribute shown
_FOLD_AFTER, _FOLD_SHOWN = 8, 3  # a group of more plain datasets shows its first three

__all__ = ["describe", "describe_checkpoint"]


def _preview(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.size > 8:
        text = f"array{value.shape} {value.dtype}"
    else:
        text = attr_str(value.tolist() if isinstance(value, np.ndarray) else value)
    text = " ".join(text.split())
    return text if len(text) <= _ATTR_PREVIEW else text[: _ATTR_PREVIEW - 3] + "..."


def _dataset_line(name: str, ds: h5py.Dataset, series: bool) -> str:
    shape = "x".join(map(str, ds.shape)) or "scalar"
    line = f"{name}  {ds.dtype} ({shape})"
    if series and ds.ndim > 1:
        line += f"  rows of {tuple(ds.shape[1:])}"
    if ds.dtype.kind == "f" and ds.size and ds.size <= _NAN_COUNT_LIMIT:
        n_nan = int(np.isnan(ds[()]).sum())
        if series:
            line += f"  {n_nan} NaN" if n_nan else ""
        else:
            line += f"  {ds.size - n_nan}/{ds.size} computed"
    return line


def _dataset_lines(name: str, ds: h5py.Dataset, series: bool, pad: str) -> list[str]:
    """The dataset's line with its description (ends the line) and its other attributes
    below, leaving out ``name`` and ``dtype`` where they repeat the dataset's own."""
    line = _dataset_line(name, ds, series)
    if "description" in ds.attrs:
        line += f"  # {attr_str(ds.attrs['description'])}"
    redundant = {"description": None, "name": name, "dtype": str(ds.dtype)}
    extra = [f"{pad}  @{k}: {_preview(v)}" for k, v in ds.attrs.items()
             if k not in redundant or redundant[k] not in (None, attr_str(v))]  # fmt: skip
    return [pad + line, *extra]


def _group_lines(group: h5py.Group, depth: int, skip_attrs: tuple[str, ...]) -> list[str]:
    pad = "  " * depth
    lines = []
    attrs = {k: v for k, v in group.attrs.items() if k not in skip_attrs}
    for k, v in attrs.items():
        lines.append(f"{pad}@{k}: {_preview(v)}")
    cols = series_columns(group)
    plain = [n for n, item in group.items() if isinstance(item, h5py.Dataset) and n not in cols]
    folded = plain[_FOLD_SHOWN:] if len(plain) > _FOLD_AFTER else []  # e.g. a direction's tensors
    for name, item in group.items():
        if name in folded:
            continue
        if isinstance(item, h5py.Group):
            sub_cols = series_columns(item)
            head = f"{pad}{name}/"
            if sub_cols:
                lengths = sorted({ds.shape[0] for ds in sub_cols.values()})
                rows = "/".join(map(str, lengths))
                head += f"  series: {rows} rows x {len(sub_cols)} columns"
            lines.append(head)
            lines.extend(_group_lines(item, depth + 1, ()))
        elif isinstance(item, h5py.Dataset):
            lines.extend(_dataset_lines(name, item, name in cols, pad))
    if folded:
        values = sum(group[n].size for n in folded)
        lines.append(f"{pad}... {len(folded)} more datasets like these ({values:,} values)")
    return lines


def _describe_file(path: Path) -> list[str]:
    with open_run(path) as f:
        prov = read_provenance(f)
        lines = [f"{path}  (HDF5, schema {prov.get('schema_version', 'unknown')})"]
        if prov:
            lines.append(
                f"created {prov.get('created', '?')} by {prov.get('package', '?')} "
                f"{prov.get('package_version', '?')} (git {prov.get('git_commit', '?')[:12]}) "
                f"on {prov.get('hostname', '?')}, device {prov.get('device', '?')}"
            )
            lines.append(f"command: {prov.get('command_line', '?')}")
        else:
            lines.append("no provenance attributes (not written by landscape?)")
        lines.extend(_group_lines(f, 1, PROVENANCE_KEYS))
    return lines


def _describe_run_dir(path: Path) -> list[str]:
    run_file = path / RUN_FILE
    ckpt_dir = path / CHECKPOINTS
    fig_dir = path / FIGURES
    if not (run_file.exists() or ckpt_dir.is_dir() or fig_dir.is_dir()):
        raise ValueError(
            f"{path} is not a run directory (no run.h5, checkpoints/ or figures/): "
            "pass a run directory or an .h5 file"
        )
    lines = [f"run directory {path}"]
    lines.extend(_describe_file(run_file) if run_file.exists() else ["no run.h5"])

    lines.append("checkpoints:")
    variants = sorted(p for p in ckpt_dir.iterdir() if p.is_dir()) if ckpt_dir.is_dir() else []
    if not variants:
        lines.append("  none")
    for vdir in variants:
        found = list_checkpoints(vdir)
        if found:
            lines.append(
                f"  {vdir.name}: {len(found)} checkpoint{'s' * (len(found) != 1)}, "
                f"steps {found[0][0]}..{found[-1][0]}"
            )
        else:
            lines.append(f"  {vdir.name}: 0 checkpoints")

    figures = sorted(p for p in fig_dir.rglob("*") if p.is_file()) if fig_dir.is_dir() else []
    lines.append(f"figures: {len(figures)}")
    lines.extend(f"  {p.relative_to(fig_dir)}" for p in figures)

    others = sorted(p for p in path.rglob("*.h5") if p != run_file and ckpt_dir not in p.parents)
    if others:
        lines.append("other HDF5 files (landscape info FILE for details):")
        lines.extend(f"  {p.relative_to(path)}" for p in others)
    return lines


def describe_checkpoint(
    path: str | Path,
    model: str | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    trust_pickle: bool = False,
) -> str:
    """Step, model spec, tensor count, optimizer state and extra metadata of a checkpoint;
    for your own weights (a state_dict), their tensors, and with ``model`` whether they
    load into the model its factory builds.

    Raises:
        CheckpointError: If the file is neither a readable checkpoint nor a state_dict, or
            its weights do not fit ``model``.
    """
    if model is not None:
        ckpt = weights_checkpoint(path, model, options, trust_pickle=trust_pickle)
        n = sum(t.numel() for t in ckpt.model_state.values())
        return (f"weights {path} ({ckpt.extra['form']})\n  tensors: {len(ckpt.model_state)} "
                f"({n:,} numbers)\n  model: {model} {json.dumps(dict(options or {}))}: they "
                "load into it")  # fmt: skip
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        if "foreign checkpoint" not in str(exc):
            raise
        state = load_state_dict_file(path)
        n = sum(t.numel() for t in state.values())
        shown = ", ".join(f"{k} {tuple(t.shape)}" for k, t in list(state.items())[:4])
        return (f"weights {path} (a state_dict, not a landscape checkpoint)\n  tensors: "
                f"{len(state)} ({n:,} numbers): {shown}{', ...' if len(state) > 4 else ''}\n"
                "  to probe or slice them, pass --model package.module:factory")  # fmt: skip
    n = sum(t.numel() for t in ckpt.model_state.values())
    lines = [
        f"checkpoint {path}",
        f"  step: {ckpt.step}",
        f"  model: {json.dumps(ckpt.spec, sort_keys=True)}",
        f"  tensors: {len(ckpt.model_state)} ({n:,} numbers)",
        f"  optimizer state: {'yes' if ckpt.optimizer_state else 'no'}",
        f"  extra: {json.dumps(ckpt.extra, sort_keys=True)}",
    ]
    return "\n".join(lines)


def describe(path: str | Path) -> str:
    """Human-readable summary of an HDF5 file or a run directory (``landscape info``).

    For a file: provenance (created, package version, git commit, command), then the tree
    of groups and datasets with dtypes and shapes, row counts of series groups, NaN counts
    of float columns and "computed/total" of other float datasets (grids), and attributes.
    For a run directory: the same for ``run.h5``, then checkpoints per variant (count,
    first and last step), figures, and other ``.h5`` files.

    Raises:
        ValueError: If the path is missing, not HDF5, or not a run directory.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no such file or directory: {path}: check the path")
    lines = _describe_run_dir(path) if path.is_dir() else _describe_file(path)
    return "\n".join(lines)
