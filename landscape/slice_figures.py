"""Slice files -> figures: one slice (with its PCA trajectory) or two side by side.

Reads the files written by :mod:`landscape.grids`, describes what each slice is in the title
(directions, grid, evaluation data, BN policy) and calls the pure builders of ``render``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
from matplotlib.figure import Figure

from .grids import read_grid
from .render import LABELS, compare_lines, compare_surfaces, line_plot, surface_plot
from .slices import SliceResult

__all__ = ["AUTO_LOG_RATIO", "SURFACES", "compare_figure", "grid_text", "slice_figure"]

SURFACES = ("contour", "contourf", "heatmap", "surface")
# Settings in which two compared slices may differ and still be a fair comparison.
_PER_MODEL = {"variant", "spec", "sources", "trajectory", "config_hash", "moves_buffers"}
#: Without --log/--linear, a loss spanning more than this ratio (max/min) is drawn on a log
#: scale: on a linear one a plain network's basin vanishes next to a BN network's cliffs.
AUTO_LOG_RATIO = 100.0


def grid_text(shape: tuple[int, ...]) -> str:
    return f"{shape[0]} points" if len(shape) == 1 else f"{shape[1]}×{shape[0]} grid"


def _read(path: Path) -> tuple[SliceResult, dict[str, Any] | None]:
    """The slice and its PCA trajectory; accuracy blanked where the loss is not finite."""
    res = read_grid(path)
    if "loss" in res.values and "accuracy" in res.values:  # argmax of NaN logits is no accuracy
        res.values["accuracy"] = np.where(
            np.isfinite(res.values["loss"]), res.values["accuracy"], np.nan
        )
    with h5py.File(path, "r") as f:
        if (g := f.get("trajectory")) is None:
            return res, None
        ratios = np.asarray(g.attrs["explained_variance"])
        return res, {"coords": g["coords"][()], "steps": g["steps"][()], "ratios": ratios}


def _label(meta: dict[str, Any]) -> str:
    v = meta.get("variant")
    return LABELS.get(v, v or "model")


def _points(meta: dict[str, Any]) -> list[str]:
    """``step N`` of each source checkpoint (with its variant when they differ)."""
    src = meta["sources"]
    mixed = len({s["variant"] for s in src}) > 1
    return [f"step {s['step']}" + (f" ({s['variant']})" if mixed else "") for s in src]


def _describe(res: SliceResult, traj: dict | None, bn: bool, *more: SliceResult) -> str:
    """What the slice is: directions, grid; evaluation data, BN policy (``bn``), blank points."""
    meta, shape = res.meta, res.shape
    kind, pts = meta["kind"], _points(meta)
    if kind == "random":
        what = f"random {meta['normalization']}-normalized {'plane' if len(shape) == 2 else 'line'}"
        what += f" at {pts[0]}, seed {meta['seed']}"
    elif kind == "interpolate":
        what = f"interpolation {pts[0]} → {pts[1]}"
    elif kind == "plane":
        what = f"plane through {pts[0]}, {pts[1]}, {pts[2]}"
    elif kind == "pca":
        n = len(traj["steps"]) if traj else len(meta.get("trajectory") or [])
        what = f"PCA plane of {n} checkpoints around {pts[0]}"
    else:
        raise ValueError(f"unknown slice kind {kind!r} in the file")
    policy = f", BN {meta['bn']} mode" if bn else ""
    data = f"{meta['dataset']} {meta['split']} ({meta['eval_examples']} examples)"
    bad = sum(int(np.sum(r.computed & ~np.isfinite(r.values["loss"]))) for r in (res, *more))
    blank = f"\nloss not finite at {bad} points (left blank)" if bad else ""
    return f"{what}, {grid_text(shape)}\n{data}{policy}{blank}"


def _has_bn(*metas: dict[str, Any]) -> bool:
    return any(m.get("spec", {}).get("bn") for m in metas)


def _axis_labels(meta: dict[str, Any], traj: dict | None) -> tuple[str | None, str | None]:
    kind, pts = meta["kind"], _points(meta)
    if kind == "pca":
        if traj is None:
            return "PC 1", "PC 2"
        r = traj["ratios"]
        return f"PC 1 ({100 * r[0]:.1f} % of variance)", f"PC 2 ({100 * r[1]:.1f} % of variance)"
    if kind in ("interpolate", "plane"):
        return f"α  (0: {pts[0]}, 1: {pts[1]})", f"β  (0: {pts[0]}, 1: {pts[-1]})"
    return None, None  # the renderer's "α  (along direction d₁)", ...


def _metric(res: SliceResult, metric: str | None) -> tuple[np.ndarray, str]:
    metric = metric or "loss"
    if metric not in res.values:
        raise ValueError(f"no metric {metric!r} in the file; it has {', '.join(res.values)}")
    z = res.values[metric]
    return (100 * z, "accuracy (%)") if metric == "accuracy" else (z, metric)


def _lines(res: SliceResult, metric: str | None) -> dict[str, np.ndarray]:
    """1-D: every metric, or the one asked for (accuracies stay fractions for line_plot)."""
    if metric is None:
        return res.values
    _metric(res, metric)  # ValueError naming the metrics the file has
    return {metric: res.values[metric]}


def _log(log: bool | None, metric: str | None, *values: np.ndarray) -> bool:
    if log is not None or metric == "accuracy":
        return bool(log)
    v = np.concatenate([np.ravel(a) for a in values])
    v = v[np.isfinite(v) & (v > 0)]
    return bool(v.size) and v.max() / v.min() > AUTO_LOG_RATIO


def _kind(kind: str | None, res: SliceResult) -> str:
    kind = kind or ("line" if res.y is None else "contour")
    if (kind == "line") != (res.y is None):
        need = "line" if res.y is None else ", ".join(SURFACES)
        raise ValueError(f"a {len(res.shape)}-D slice is drawn with --kind {need}, not {kind}")
    return kind


def slice_figure(
    path: Path, kind: str | None, log: bool | None, metric: str | None
) -> tuple[Figure, str]:
    """The figure of one slice file (PCA files with their trajectory) and its kind."""
    res, traj = _read(path)
    kind, meta = _kind(kind, res), res.meta
    xlabel, ylabel = _axis_labels(meta, traj)
    head = f"{_label(meta)}: {meta['model']}"
    title = f"{head}\n{_describe(res, traj, _has_bn(meta))}"
    if res.y is None:
        lines = _lines(res, metric)
        log = _log(log, metric, *(v for n, v in lines.items() if n != "accuracy"))
        fig = line_plot(res.x, lines, label=meta.get("variant"), log=log, xlabel=xlabel,
                        title=title)  # fmt: skip
        return fig, kind
    z, zlabel = _metric(res, metric)
    log = _log(log, metric, z)
    fig = surface_plot(res.x, res.y, z, kind=kind, log=log, title=title, xlabel=xlabel,
                       ylabel=ylabel, zlabel=zlabel,
                       trajectory=None if traj is None else traj["coords"])  # fmt: skip
    return fig, kind


def compare_figure(
    paths: tuple[Path, Path], labels: tuple[str, str] | None, kind: str | None, log: bool | None,
    metric: str | None,
) -> tuple[Figure, str]:  # fmt: skip
    """Two slices (e.g. BN and plain) side by side on one colour scale, or overlaid (1-D)."""
    (ra, ta), (rb, _) = _read(paths[0]), _read(paths[1])
    if (ra.y is None) != (rb.y is None):
        raise ValueError("cannot compare a 1-D slice with a 2-D one")
    kind = _kind(kind, ra)
    names = list(labels) if labels else [_label(ra.meta), _label(rb.meta)]
    if names[0] == names[1]:
        names = [f"{n} ({p.stem})" for n, p in zip(names, paths)]
    keys = (ra.meta.keys() | rb.meta.keys()) - _PER_MODEL
    differ = sorted(k for k in keys if ra.meta.get(k) != rb.meta.get(k))
    title = f"{ra.meta['model']}: {_describe(ra, ta, _has_bn(ra.meta, rb.meta), rb)}"
    if differ:
        title += f"\nthe two files differ in {', '.join(differ)}"
    xlabel, ylabel = _axis_labels(ra.meta, None)  # PCA: each file has its own variances
    if ra.y is None:
        panels = {n: (r.x, _lines(r, metric)) for n, r in zip(names, (ra, rb))}
        losses = [v for _, p in panels.values() for n, v in p.items() if n != "accuracy"]
        log = _log(log, metric, *losses)
        return compare_lines(panels, log=log, xlabel=xlabel, title=title), kind
    zs = [_metric(r, metric) for r in (ra, rb)]
    log = _log(log, metric, *(z for z, _ in zs))
    panels = {n: (r.x, r.y, z) for n, r, (z, _) in zip(names, (ra, rb), zs)}
    fig = compare_surfaces(panels, kind=kind, log=log, title=title, xlabel=xlabel,
                           ylabel=ylabel, zlabel=zs[0][1])  # fmt: skip
    return fig, kind
