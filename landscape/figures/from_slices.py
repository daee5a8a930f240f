"""Slice files -> figures: one slice (with its PCA trajectory) or two side by side.

Reads the files written by :mod:`landscape.slices.grid_file`, describes what each slice is in
the title (directions, grid, evaluation data, BN mode) and calls the pure builders of
:mod:`landscape.render`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import numpy as np
from matplotlib.figure import Figure

from landscape.render import compare_lines, display_label, line_plot
from landscape.render.surfaces import SurfaceKind, compare_surfaces, surface_plot
from landscape.slices import SliceResult, read_grid
from landscape.store import open_run

__all__ = [
    "AUTO_LOG_RATIO",
    "NARROW_SHARE",
    "SURFACES",
    "compare_figure",
    "grid_text",
    "slice_figure",
]

SURFACES: tuple[str, ...] = get_args(SurfaceKind)  # the kinds render.surface_plot draws
# Settings in which two compared slices may differ and still be a fair comparison.
_PER_MODEL = {"variant", "spec", "sources", "trajectory", "config_hash", "moves_buffers"}
#: Without --log/--linear, a loss spanning more than this ratio (max/min) is drawn on a log
#: scale: on a linear one a plain network's basin vanishes next to a BN network's cliffs.
AUTO_LOG_RATIO = 100.0
#: ... and so is a comparison in which one file's loss spans less than this fraction of the
#: shared range (2 or 3 of the 15 levels: a nearly flat panel) when a log scale widens it.
NARROW_SHARE = 0.2
# The kinds the public API writes (random_plane(), run_grid, ...) -> landscape slice's names.
_KIND_ALIASES = {"random_line": "random", "random_plane": "random", "plane_through": "plane"}
_UNNAMED = ("model A", "model B", "model C")  # source checkpoints of a file that names none


def grid_text(shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return f"{shape[1]}×{shape[0]} grid"
    return f"{shape[0]} point{'' if shape[0] == 1 else 's'}"


@contextmanager
def _complete(*paths: Path) -> Iterator[None]:
    """A key missing from a file (or its meta) is a ValueError naming the file and the key."""
    try:
        yield
    except KeyError as exc:
        files = " or ".join(map(str, paths))
        raise ValueError(f"{files} lacks {exc} (not a complete slice file)") from None


def _read(path: Path) -> tuple[SliceResult, dict[str, Any] | None]:
    """The slice and its PCA trajectory (accuracy is NaN where the outputs were not finite:
    the evaluation stores it so, see ``landscape.slices.engine._evaluate``)."""
    res = read_grid(path)
    with open_run(path) as f:
        if (g := f.get("trajectory")) is None:
            return res, None
        ratios = np.asarray(g.attrs["explained_variance"])
        return res, {"coords": g["coords"][()], "steps": g["steps"][()], "ratios": ratios}


def _kind_of(meta: dict[str, Any]) -> str:
    kind = str(meta.get("kind", "grid"))
    return _KIND_ALIASES.get(kind, kind)


def _label(meta: dict[str, Any]) -> str:
    v = meta.get("variant")
    return display_label(v) if v else "model"


def _points(meta: dict[str, Any]) -> list[str]:
    """``step N`` of each source checkpoint (with its variant when they differ); [] if none."""
    src = meta.get("sources") or []
    mixed = len({s.get("variant") for s in src}) > 1
    return [f"step {s['step']}" + (f" ({s.get('variant')})" if mixed else "") for s in src]


def _describe(res: SliceResult, traj: dict | None, bn: bool) -> list[str]:
    """What the slice is (directions, grid) and how it was evaluated (data, BN mode)."""
    meta, shape = res.meta, res.shape
    kind, pts = _kind_of(meta), _points(meta)
    named = pts + list(_UNNAMED[len(pts) :])
    shape_name = "plane" if len(shape) == 2 else "line"
    if kind == "random":
        norm = meta.get("normalization")
        norm = "unnormalized" if norm == "none" else norm and f"{norm}-normalized"
        what = " ".join(s for s in ("random", norm, shape_name) if s)
        what += f" at {pts[0]}" if pts else ""
        what += f", seed {meta['seed']}" if meta.get("seed") is not None else ""
    elif kind == "interpolate":
        what = f"interpolation {named[0]} → {named[1]}"
    elif kind == "plane":
        what = f"plane through {named[0]}, {named[1]}, {named[2]}"
    elif kind == "pca":
        n = len(traj["steps"]) if traj else len(meta.get("trajectory") or [])
        what = f"PCA plane of {n} checkpoints" + (f" around {pts[0]}" if pts else "")
    else:  # "grid": run_grid with the caller's directions; or a kind of the caller's own
        given = "the given direction" + ("s" if len(shape) == 2 else "")
        what = f"{shape_name} along {given}" if kind == "grid" else f"{kind} {shape_name}"
    examples = f"{meta['eval_examples']} examples" if "eval_examples" in meta else ""
    data = " ".join(str(meta[k]) for k in ("dataset", "split") if meta.get(k))
    data = f"{data} ({examples})" if data and examples else data or examples
    mode = f"BN {meta['bn_mode']} mode" if bn and meta.get("bn_mode") else ""
    return [f"{what}, {grid_text(shape)}", ", ".join(s for s in (data, mode) if s)]


def _not_finite(*results: SliceResult) -> str:
    bad = sum(int(np.sum(r.computed & ~np.isfinite(r.values["loss"]))) for r in results)
    return f"loss not finite at {bad} point{'s' * (bad > 1)} (left blank)" if bad else ""


def _has_bn(*metas: dict[str, Any]) -> bool:
    """Whether to name the BN mode: a model with BN, or (no spec) a mode other than eval."""
    return any(
        m["spec"].get("bn") if "spec" in m else m.get("bn_mode", "eval") != "eval" for m in metas
    )


def _axis_labels(meta: dict[str, Any], traj: dict | None) -> tuple[str | None, str | None]:
    kind, pts = _kind_of(meta), _points(meta)
    named = pts + list(_UNNAMED[len(pts) :])
    if kind == "pca":
        if traj is None:
            return "PC 1", "PC 2"
        r = traj["ratios"]
        return f"PC 1 ({100 * r[0]:.1f} % of variance)", f"PC 2 ({100 * r[1]:.1f} % of variance)"
    if kind in ("interpolate", "plane"):
        return f"α  (0: {named[0]}, 1: {named[1]})", f"β  (0: {named[0]}, 1: {named[-1]})"
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


def _losses(values: dict[str, np.ndarray]) -> np.ndarray:
    """Every loss-like value of one file (accuracies have their own scale)."""
    return np.concatenate([np.ravel(v) for n, v in values.items() if n != "accuracy"] or [[]])


def _narrowest(panels: list[np.ndarray], f: Callable[[np.ndarray], np.ndarray]) -> float:
    """The smallest span of one panel's ``f(values)`` as a fraction of the span of all."""
    spans = [np.ptp(f(p)) for p in panels]
    full = np.ptp(f(np.concatenate(panels)))
    return float(min(spans) / full) if full > 0 else 1.0


def _log(log: bool | None, metric: str | None, *panels: np.ndarray) -> bool:
    """The scale asked for; else log for a wide range or a panel that log makes readable."""
    if log is not None or metric == "accuracy":
        return bool(log)
    pos = [a[np.isfinite(a) & (a > 0)] for a in (np.ravel(p) for p in panels)]
    pos = [a for a in pos if a.size]
    if not pos:
        return False
    v = np.concatenate(pos)
    if v.max() / v.min() > AUTO_LOG_RATIO:
        return True
    linear = _narrowest(pos, np.asarray)
    return linear < NARROW_SHARE and _narrowest(pos, np.log) > linear


def _kind(kind: str | None, *results: SliceResult) -> str:
    res = results[0]
    thin = res.y is not None and any(min(r.shape) < 2 for r in results)
    kind = kind or ("line" if res.y is None else "heatmap" if thin else "contour")
    if (kind == "line") != (res.y is None):
        need = "line" if res.y is None else ", ".join(SURFACES)
        raise ValueError(f"a {len(res.shape)}-D slice is drawn with --kind {need}, not {kind}")
    return kind


def slice_figure(
    path: Path, kind: str | None, log: bool | None, metric: str | None
) -> tuple[Figure, str]:
    """The figure of one slice file (PCA files with their trajectory) and its kind."""
    with _complete(path):
        res, traj = _read(path)
        kind, meta = _kind(kind, res), res.meta
        xlabel, ylabel = _axis_labels(meta, traj)
        variant = meta.get("variant")
        head = ": ".join(s for s in (variant and _label(meta), meta.get("model")) if s)
        lines = [head, *_describe(res, traj, _has_bn(meta)), _not_finite(res)]
    title = "\n".join(s for s in lines if s)
    if res.y is None:
        values = _lines(res, metric)
        log = _log(log, metric, _losses(values))
        fig = line_plot(res.x, values, label=meta.get("variant"), log=log, xlabel=xlabel,
                        title=title, computed=res.computed)  # fmt: skip
        return fig, kind
    z, zlabel = _metric(res, metric)
    log = _log(log, metric, z)
    fig = surface_plot(res.x, res.y, z, kind=kind, log=log, title=title, xlabel=xlabel,
                       ylabel=ylabel, zlabel=zlabel, computed=res.computed,
                       trajectory=None if traj is None else traj["coords"])  # fmt: skip
    return fig, kind


def _names(paths: tuple[Path, Path], labels: tuple[str, str] | None, metas: list) -> list[str]:
    """The two panels' labels: as given, else the variants told apart by the shortest
    distinct tail of the file paths ("bn (lr0.1/slice)", ...)."""
    if labels:
        if labels[0] == labels[1]:
            raise ValueError(f"both labels are {labels[0]!r}: give two different labels")
        return list(labels)
    names = [_label(m) for m in metas]
    if names[0] != names[1]:
        return names
    parts = [p.resolve().with_suffix("").parts for p in paths]
    for k in range(1, max(map(len, parts)) + 1):
        if (tails := ["/".join(p[-k:]) for p in parts])[0] != tails[1]:
            return [f"{n} ({t})" for n, t in zip(names, tails)]
    return [f"{n} (file {c})" for n, c in zip(names, "AB")]  # the same file twice


def compare_figure(
    paths: tuple[Path, Path], labels: tuple[str, str] | None, kind: str | None, log: bool | None,
    metric: str | None,
) -> tuple[Figure, str]:  # fmt: skip
    """Two slices (e.g. BN and plain) side by side on one colour scale, or overlaid (1-D).

    What both files share goes into the title; what differs (model, grid, data, ...) goes
    under each panel's label (2-D) or into the title per file (1-D).
    """
    with _complete(*paths):
        (ra, ta), (rb, tb) = _read(paths[0]), _read(paths[1])
        if (ra.y is None) != (rb.y is None):
            raise ValueError("cannot compare a 1-D slice with a 2-D one")
        ka, kb = _kind_of(ra.meta), _kind_of(rb.meta)
        if ka != kb:
            fix = "compare two slices of one kind"
            raise ValueError(f"cannot compare slices of different kinds ({ka}, {kb}): {fix}")
        kind = _kind(kind, ra, rb)
        names = _names(paths, labels, [ra.meta, rb.meta])
        bn = _has_bn(ra.meta, rb.meta)
        descs = []
        for r, t in ((ra, ta), (rb, tb)):
            what, data = _describe(r, t, bn)
            descs.append([f"{m}: {what}" if (m := r.meta.get("model")) else what, data])
        axes = {n: _axis_labels(r.meta, t) for n, r, t in zip(names, (ra, rb), (ta, tb))}
    same = [a == b for a, b in zip(*descs)]
    lines = []
    for eq, pair in zip(same, zip(*descs)):  # 1-D: what differs goes into the title, per file
        if eq or ra.y is None:
            lines += [pair[0]] if eq else [f"{n}, {s}" for n, s in zip(names, pair)]
    keys = (ra.meta.keys() | rb.meta.keys()) - _PER_MODEL
    differ = sorted(k for k in keys if ra.meta.get(k) != rb.meta.get(k))
    lines.append(_not_finite(ra, rb))
    if differ:
        lines.append(f"the two files differ in {', '.join(differ)}")
    if ra.y is None:
        xl = {x for x, _ in axes.values()}
        xlabel = xl.pop() if len(xl) == 1 else "α  (0 and 1: each file's checkpoints, as above)"
        panels = {n: (r.x, _lines(r, metric)) for n, r in zip(names, (ra, rb))}
        log = _log(log, metric, *(_losses(p) for _, p in panels.values()))
        title = "\n".join(s for s in lines if s)
        computed = {n: r.computed for n, r in zip(names, (ra, rb))}
        return compare_lines(panels, log=log, xlabel=xlabel, title=title,
                             computed=computed), kind  # fmt: skip
    zs = [_metric(r, metric) for r in (ra, rb)]
    log = _log(log, metric, *(z for z, _ in zs))
    panels = {n: (r.x, r.y, z) for n, r, (z, _) in zip(names, (ra, rb), zs)}
    fig = compare_surfaces(panels, kind=kind, log=log, title="\n".join(s for s in lines if s),
                           xlabel={n: a[0] for n, a in axes.items()},
                           ylabel={n: a[1] for n, a in axes.items()}, zlabel=zs[0][1],
                           computed={n: r.computed for n, r in zip(names, (ra, rb))},
                           notes={n: "\n".join(s for s, eq in zip(d, same) if not eq)
                                  for n, d in zip(names, descs)})  # fmt: skip
    return fig, kind
