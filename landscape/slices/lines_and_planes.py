"""Loss along lines and planes in parameter space (Li et al. 2018), by their geometry.

    random line:   f(a)    = L(theta + a d)
    random plane:  f(a, b) = L(theta + a d1 + b d2)
    interpolation: f(a)    = L((1 - a) theta + a theta') = L(theta + a (theta' - theta))
    plane through: f(a, b) = L(theta_a + a (theta_b - theta_a) + b (theta_c - theta_a))

Each picks its directions (:mod:`.directions`: random and filter-normalized, or between
models) and hands them to :func:`~landscape.slices.engine.evaluate_grid`, which evaluates
``L`` on the grid and documents the BatchNorm modes and the fast paths. With ``out=``, the
slice goes to a resumable HDF5 file (:func:`~landscape.slices.grid_file.run_grid`, the
directions and all settings with it): a killed run continues where it stopped, and a call on
a complete file returns the stored slice without evaluating anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from landscape._params import get_params
from landscape.data.evaluation import BatchLoss, Data, Loss, Metric
from landscape.slices.coords import Coords
from landscape.slices.directions import (
    Ignore,
    Normalization,
    buffer_direction,
    checkpoint_direction,
    random_directions,
)
from landscape.slices.directions import orthogonalize as _orthogonalize
from landscape.slices.engine import SliceBNMode, SliceResult, evaluate_grid
from landscape.slices.grid_file import read_grid, run_grid

__all__ = ["interpolate", "plane_through", "random_line", "random_plane"]


def random_line(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    x: Coords = "-1:1:51",
    *,
    seed: int = 0,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
    bn_mode: SliceBNMode = "eval",
    metrics: Mapping[str, Metric | BatchLoss] | None = None,
    progress: Callable[[int, int], None] | None = None,
    out: str | Path | None = None,
    **options: Any,
) -> SliceResult:
    """``f(a) = L(theta + a d)`` along a random (filter-normalized) direction.

    ``options`` go to :func:`evaluate_grid` (precision, recalibrate_batches, accuracy, ...);
    with ``out`` (a ``.h5`` path) the slice is written there, resumably (``overwrite``,
    ``chunk`` go to :func:`run_grid`).
    """
    dirs = random_directions(model, 1, seed=seed, normalization=normalization, ignore=ignore)
    meta = dict(kind="random_line", seed=seed, normalization=normalization, ignore=ignore)
    opts = dict(bn_mode=bn_mode, metrics=metrics, progress=progress, **options)
    return _evaluate(out, meta, model, loss_fn, data, dirs, x, None, **opts)


def random_plane(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    x: Coords = "-1:1:51",
    y: Coords = "-1:1:51",
    *,
    seed: int = 0,
    orthogonalize: bool = False,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
    bn_mode: SliceBNMode = "eval",
    metrics: Mapping[str, Metric | BatchLoss] | None = None,
    progress: Callable[[int, int], None] | None = None,
    out: str | Path | None = None,
    **options: Any,
) -> SliceResult:
    """``f(a, b) = L(theta + a d1 + b d2)`` on a random (filter-normalized) plane.

    ``d1`` equals the direction of :func:`random_line` with the same seed; with
    ``orthogonalize``, ``d2`` is made orthogonal to ``d1`` (Gram-Schmidt, norm kept).
    """
    d1, d2 = random_directions(model, 2, seed=seed, normalization=normalization, ignore=ignore)
    if orthogonalize:
        d2 = _orthogonalize(d2, d1)
    meta = dict(kind="random_plane", seed=seed, normalization=normalization, ignore=ignore,
                orthogonalize=orthogonalize)  # fmt: skip
    opts = dict(bn_mode=bn_mode, metrics=metrics, progress=progress, **options)
    return _evaluate(out, meta, model, loss_fn, data, [d1, d2], x, y, **opts)


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: Loss,
    data: Data,
    x: Coords = "-0.5:1.5:401",
    *,
    move_buffers: bool = True,
    bn_mode: SliceBNMode = "eval",
    metrics: Mapping[str, Metric | BatchLoss] | None = None,
    progress: Callable[[int, int], None] | None = None,
    out: str | Path | None = None,
    **options: Any,
) -> SliceResult:
    """``f(a) = L((1 - a) theta + a theta')`` between two models of one architecture.

    With ``move_buffers`` the BN running statistics are interpolated the same way, so
    ``f(0) = L(model_a)`` and ``f(1) = L(model_b)`` in eval mode. Extrapolating
    (``a < 0`` or ``a > 1``) can make an interpolated running variance negative; such
    points are NaN rather than silently clamped.
    """
    d = checkpoint_direction(get_params(model_a), get_params(model_b))
    bd = [buffer_direction(model_a, model_b)] if move_buffers else None
    opts = dict(bn_mode=bn_mode, metrics=metrics, progress=progress, buffer_directions=bd)
    meta = {"kind": "interpolate"}
    return _evaluate(out, meta, model_a, loss_fn, data, [d], x, None, **opts, **options)


def plane_through(
    model_a: nn.Module,
    model_b: nn.Module,
    model_c: nn.Module,
    loss_fn: Loss,
    data: Data,
    x: Coords = "-0.5:1.5:51",
    y: Coords = "-0.5:1.5:51",
    *,
    move_buffers: bool = True,
    bn_mode: SliceBNMode = "eval",
    metrics: Mapping[str, Metric | BatchLoss] | None = None,
    progress: Callable[[int, int], None] | None = None,
    out: str | Path | None = None,
    **options: Any,
) -> SliceResult:
    """``f(a, b) = L(theta_a + a (theta_b - theta_a) + b (theta_c - theta_a))``.

    The plane through three models: ``a`` sits at (0, 0), ``b`` at (1, 0), ``c`` at (0, 1).
    """
    pa = get_params(model_a)
    dirs = [checkpoint_direction(pa, get_params(m)) for m in (model_b, model_c)]
    bd = [buffer_direction(model_a, m) for m in (model_b, model_c)] if move_buffers else None
    opts = dict(bn_mode=bn_mode, metrics=metrics, progress=progress, buffer_directions=bd)
    meta = {"kind": "plane_through"}
    return _evaluate(out, meta, model_a, loss_fn, data, dirs, x, y, **opts, **options)


def _evaluate(
    out: str | Path | None, meta: dict[str, Any], model: nn.Module, loss_fn: Loss, data: Data,
    dirs: list, x: Coords, y: Coords | None, **options: Any,
) -> SliceResult:  # fmt: skip
    """The slice in memory, or with ``out`` in its resumable file (the stored one if the
    file is complete already)."""
    if out is None:
        res = evaluate_grid(model, loss_fn, data, dirs, x, y, **options)
        res.meta.update(meta)
        return res
    res = run_grid(out, model, loss_fn, data, dirs, x, y, meta=meta, **options)
    return read_grid(out) if res is None else res
