"""Loss along lines and planes in parameter space (Li et al. 2018).

    1D:            f(a)    = L(theta + a d)
    2D:            f(a, b) = L(theta + a d1 + b d2)
    interpolation: f(a)    = L((1 - a) theta + a theta') = L(theta + a (theta' - theta))

``L`` is the mean of ``loss_fn`` over all examples of the evaluation data (every batch
weighted by its size), so one point costs one forward pass over the data. Every point is
set from one stored base, ``theta <- base + a d1 + b d2`` (never by accumulating steps),
and the caller's model is restored bit for bit afterwards (:func:`landscape._params.preserved`).

BatchNorm policy ``bn``: ``"eval"`` uses the running statistics (Li's choice);
``"train"`` uses batch statistics and leaves the running statistics untouched;
``"recalibrate"`` re-estimates the running statistics at every point (cumulative average
over ``recalibrate_batches`` batches of the evaluation data) and then evaluates in eval
mode. Dropout and other train/eval-dependent layers are always in eval mode.

Speed: a point costs one forward pass over the data, so the evaluation vehicle is made
cheaper than the model's own forward where that is exact in real arithmetic. Where BN runs
on running statistics (``"eval"``, ``"recalibrate"``), every BatchNorm that directly follows
a conv/linear layer is folded into it (``landscape._fold.FoldedBN``), and on the CPU the
4-D weights are held in channels_last, oneDNN's native layout, while the grid runs. Both change only
rounding (float32: ~1e-7 relative); ``benchmarks/bench_slices.py`` measures them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from landscape import _fold
from landscape._params import Params, get_params, preserved
from landscape.directions import (
    Ignore,
    Normalization,
    buffer_direction,
    checkpoint_direction,
    random_directions,
)
from landscape.directions import orthogonalize as _orthogonalize

__all__ = [
    "BNPolicy",
    "Coords",
    "Data",
    "DataSummary",
    "LossFn",
    "Metric",
    "Precision",
    "SliceResult",
    "as_coords",
    "describe_data",
    "evaluate_grid",
    "interpolate",
    "parse_range",
    "plane_through",
    "random_line",
    "random_plane",
]

BNPolicy = Literal["eval", "train", "recalibrate"]
Precision = Literal["native", "bf16"]
Batch = tuple[Tensor, Tensor]
Data = Iterable[Batch] | Callable[[], Iterable[Batch]]
Metric = Callable[[Tensor, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> batch mean
Coords = str | Sequence[float] | np.ndarray  # "start:stop:num" or the points themselves

log = logging.getLogger(__name__)

#: A guard against typos: 100,000 points per axis is 10^10 evaluations for a plane.
MAX_POINTS_PER_AXIS = 100_000
DEFAULT_RECALIBRATE_BATCHES = 10  # enough for stable running statistics on CIFAR-sized batches
_RANGE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")
_RANGE_HELP = "expected 'start:stop:num' with start <= stop and an integer num >= 1, e.g. '-1:1:51'"


# Fast-path switches (module-level so the benchmark can time each lever side by side).
@dataclass
class SliceResult:
    """Values of a 1D or 2D slice.

    Attributes:
        x: Coordinates along ``d1``, shape (nx,).
        y: Coordinates along ``d2``, shape (ny,), or None for a 1D slice.
        values: Metric name -> array of shape (ny, nx) (``values[j, i]`` is the point
            ``(x[i], y[j])``: x runs along columns) or (nx,); NaN where not computed.
        meta: JSON-safe description (kind, seed, normalization, ignore, bn, ...).
        directions: The directions ``[d1]`` or ``[d1, d2]`` keyed by parameter name.
        computed: Boolean mask of the evaluated points, shaped like the values.
        buffer_directions: Directions of the floating buffers, if they were moved.
    """

    x: np.ndarray
    y: np.ndarray | None
    values: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    directions: list[Params] = field(default_factory=list)
    computed: np.ndarray | None = None
    buffer_directions: list[Params] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.y), len(self.x))


@dataclass(frozen=True)
class DataSummary:
    """What one pass over the evaluation data sees, found without a forward pass."""

    examples: int
    batches: int
    classification: bool  # every target is a 1-D tensor of integer class labels


def parse_range(spec: str) -> np.ndarray:
    """Parse ``"start:stop:num"`` into ``num`` evenly spaced points, endpoints included.

    Example:
        >>> parse_range("-1:1:5")
        array([-1. , -0.5,  0. ,  0.5,  1. ])
        >>> parse_range("0:0:1")
        array([0.])
    """
    m = _RANGE.match(spec) if isinstance(spec, str) else None
    if m is None:
        raise ValueError(f"bad range {spec!r}: {_RANGE_HELP}")
    try:
        start, stop, num = float(m[1]), float(m[2]), int(m[3])
    except ValueError:
        raise ValueError(f"bad range {spec!r}: {_RANGE_HELP}") from None
    if not (math.isfinite(start) and math.isfinite(stop)) or num < 1 or start > stop:
        raise ValueError(f"bad range {spec!r}: {_RANGE_HELP}")
    if start == stop and num != 1:
        raise ValueError(f"bad range {spec!r}: start == stop needs num == 1")
    if num > MAX_POINTS_PER_AXIS:
        raise ValueError(f"bad range {spec!r}: at most {MAX_POINTS_PER_AXIS} points per axis")
    if not math.isfinite(stop - start):
        raise ValueError(f"bad range {spec!r}: stop - start overflows; use a smaller range")
    return np.linspace(start, stop, num)


def as_coords(v: Coords, name: str = "x") -> np.ndarray:
    """A range string (see :func:`parse_range`) or numbers -> finite float64 array (n,)."""
    arr = parse_range(v) if isinstance(v, str) else np.asarray(v, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} coordinates must be finite and non-empty")
    return arr


def _batches(data: Data) -> Iterable[Batch]:
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        return [data]  # a single (inputs, targets) batch
    if callable(data):
        return data()
    if iter(data) is data:
        raise ValueError(
            "data is a one-shot iterator; pass a list of batches, a DataLoader or a "
            "callable returning a fresh iterator"
        )
    return data


def _is_labels(t: Tensor) -> bool:
    return t.ndim == 1 and not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def describe_data(data: Data) -> DataSummary:
    """Count examples and batches and check whether targets are class labels."""
    examples = batches = 0
    labels = True
    for _, targets in _batches(data):
        examples += int(targets.shape[0])
        batches += 1
        labels = labels and _is_labels(targets)
    if batches == 0 or examples == 0:
        raise ValueError("the evaluation data is empty")
    return DataSummary(examples, batches, labels)


def _device(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _precision_ctx(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "native":
        return contextlib.nullcontext()
    elif precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    else:
        raise ValueError(f"unknown precision {precision!r}; use 'native' or 'bf16'")


def _to(t: Any, device: torch.device) -> Any:
    return t.to(device, non_blocking=True) if isinstance(t, Tensor) else t


Target = tuple[Tensor, Tensor, list[tuple[int, Tensor]]]  # (live tensor, base, [(k, d_k)])


def _targets(model, base, directions, buf_base, buf_dirs) -> list[Target]:
    """Every tensor set per point, with its base and the directions that move it."""
    own, bufs = dict(model.named_parameters()), dict(model.named_buffers())
    out = [
        (own[n], b, [(k, d[n]) for k, d in enumerate(directions) if n in d])
        for n, b in base.items()
    ]
    for n, b in buf_base.items():
        out.append((bufs[n], b, [(k, d[n]) for k, d in enumerate(buf_dirs or ()) if n in d]))
    return out


@torch.no_grad()
def _set_point(targets: Sequence[Target], coeffs: Sequence[float]) -> None:
    """``theta <- base + sum_k c_k d_k`` (and buffers alike), each from the stored base."""
    for live, b, moves in targets:
        live.copy_(b)
        for k, d in moves:
            if coeffs[k] != 0.0:
                live.add_(d, alpha=coeffs[k])


@torch.no_grad()
def _recalibrate(model, norms, data, n_batches, precision) -> None:
    """Reset running statistics and re-estimate them as a cumulative average."""
    device = _device(model)
    model.eval()
    for m in norms:
        if m.track_running_stats:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the batches seen
            m.train()
    with _precision_ctx(precision, device):
        for i, (inputs, _) in enumerate(_batches(data)):
            if i >= n_batches:
                break
            model(_to(inputs, device))


def _evaluate(forward, device, loss_fn, data, metrics, accuracy, precision) -> list[float]:
    """[loss, (accuracy), *metrics] averaged over examples: one pass over the data."""
    acc_dtype = torch.float32 if device.type == "mps" else torch.float64
    sums, n_total = None, 0
    with torch.inference_mode(), _precision_ctx(precision, device):
        for inputs, targets in _batches(data):
            inputs, targets = _to(inputs, device), _to(targets, device)
            out = forward(inputs)
            n = int(targets.shape[0])
            means = [loss_fn(out, targets), *(fn(out, targets) for fn in metrics.values())]
            if any(t.ndim != 0 for t in means):
                raise ValueError("loss_fn and metrics must return the batch mean (a scalar)")
            sums_b = [t.to(acc_dtype) * n for t in means]  # batch sums: weight by batch size
            if accuracy:
                if out.ndim != 2:
                    raise ValueError("accuracy needs (N, C) logits; pass accuracy=False")
                correct = (out.argmax(dim=1) == targets).sum().to(acc_dtype)
                # argmax of non-finite logits is no prediction: accuracy undefined (NaN)
                nan = torch.tensor(math.nan, dtype=acc_dtype, device=correct.device)
                sums_b.insert(1, torch.where(torch.isfinite(out).all(), correct, nan))
            batch = torch.stack(sums_b)
            sums = batch if sums is None else sums + batch
            n_total += n
    return (sums / n_total).tolist()


def evaluate_grid(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    directions: Sequence[Mapping[str, Tensor]],
    xs: Coords,
    ys: Coords | None = None,
    *,
    origin: Mapping[str, Tensor] | None = None,
    buffer_directions: Sequence[Mapping[str, Tensor]] | None = None,
    bn: BNPolicy = "eval",
    recalibrate_batches: int = DEFAULT_RECALIBRATE_BATCHES,
    metrics: Mapping[str, Metric] | None = None,
    accuracy: bool | None = None,
    precision: Precision = "native",
    points: Iterable[int] | None = None,
    on_point: Callable[[int, dict[str, float]], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SliceResult:
    """Evaluate ``f(a, b) = L(theta + a d1 + b d2)`` (or ``f(a) = L(theta + a d1)``) on a grid.

    Args:
        model: The network; used as the evaluation vehicle and restored exactly afterwards.
        loss_fn: ``loss_fn(outputs, targets)`` -> batch mean (e.g. ``nn.CrossEntropyLoss()``).
        data: Re-iterable ``(inputs, targets)`` batches (list, DataLoader, a single
            ``(x, y)`` tuple, or a callable returning a fresh iterable).
        directions: ``[d1]`` or ``[d1, d2]``, keyed by parameter name (a subset is fine).
        xs: Coordinates along ``d1`` (array or ``"start:stop:num"``).
        ys: Coordinates along ``d2``, or None for a 1D slice.
        origin: ``theta``; defaults to the model's current parameters.
        buffer_directions: Directions for floating buffers (BN running statistics), one
            per direction; buffers are moved like parameters, from the model's buffers.
        bn: BatchNorm policy, ``"eval"``, ``"train"`` or ``"recalibrate"``.
        recalibrate_batches: Batches used per point by ``bn="recalibrate"``.
        metrics: Extra per-batch metrics ``fn(outputs, targets)`` -> batch mean.
        accuracy: Report accuracy; None means "when the targets are class labels".
        precision: ``"native"`` (the model's dtype) or ``"bf16"`` (autocast).
        points: Flat indices to evaluate (``k = j * nx + i``); default all. An empty
            iterable validates the arguments and returns the metadata only.
        on_point: Called as ``on_point(k, {metric: value})`` after each point.
        progress: Called as ``progress(done, total)`` after each point.

    Returns:
        A :class:`SliceResult`; cells not evaluated are NaN.
    """
    xs = as_coords(xs, "x")
    ys = None if ys is None else as_coords(ys, "y")
    shape = (len(xs),) if ys is None else (len(ys), len(xs))
    if len(directions) != len(shape):
        raise ValueError(f"a {len(shape)}D slice needs {len(shape)} directions")
    if buffer_directions is not None and len(buffer_directions) != len(directions):
        raise ValueError("give one buffer direction per direction")
    if bn not in ("eval", "train", "recalibrate"):
        raise ValueError(f"unknown bn policy {bn!r}; use 'eval', 'train' or 'recalibrate'")
    if bn == "recalibrate" and recalibrate_batches < 1:
        raise ValueError("recalibrate_batches must be >= 1")
    device = _device(model)
    _precision_ctx(precision, device)  # validates precision before any work
    metrics = dict(metrics or {})
    if {"loss", "accuracy"} & set(metrics):
        raise ValueError("extra metrics may not be named 'loss' or 'accuracy'")
    summary = describe_data(data)
    if accuracy and not summary.classification:
        raise ValueError("accuracy needs 1-D integer class labels as targets")
    use_acc = summary.classification if accuracy is None else bool(accuracy)
    names = ["loss", *(["accuracy"] if use_acc else []), *metrics]

    own = dict(model.named_parameters())
    base = {n: p.detach().clone() for n, p in (origin or own).items()}
    for n in base:
        if n not in own or own[n].shape != base[n].shape:
            raise ValueError(f"origin entry {n!r} does not match a model parameter")
    for d in directions:
        for n, t in d.items():
            if n not in base or t.shape != base[n].shape:
                raise ValueError(f"direction entry {n!r} does not match a model parameter")
    bufs = dict(model.named_buffers())
    for d in buffer_directions or ():
        for n, t in d.items():
            if n not in bufs or not bufs[n].is_floating_point() or t.shape != bufs[n].shape:
                raise ValueError(f"buffer direction {n!r} does not match a floating buffer")

    total = int(np.prod(shape))
    todo = list(range(total)) if points is None else [int(k) for k in points]
    if any(not 0 <= k < total for k in todo):
        raise ValueError(f"point indices must lie in [0, {total})")
    values = {n: np.full(shape, np.nan) for n in names}
    computed = np.zeros(shape, dtype=bool)
    meta: dict[str, Any] = {
        "kind": "grid",
        "bn": bn,
        "recalibrate_batches": recalibrate_batches if bn == "recalibrate" else None,
        "precision": precision,
        "metrics": names,
        "eval_examples": summary.examples,
        "eval_batches": summary.batches,
        "dtype": str(next(iter(base.values())).dtype) if base else None,
        "moves_buffers": buffer_directions is not None,
    }
    bdirs = None if buffer_directions is None else [dict(d) for d in buffer_directions]
    result = SliceResult(xs, ys, values, meta, [dict(d) for d in directions], computed, bdirs)
    if not todo:
        return result

    norms = [m for m in model.modules() if isinstance(m, _NormBase)]
    flags = [(m, m.momentum, m.track_running_stats) for m in norms]
    cl = _fold.CHANNELS_LAST and device.type == "cpu"
    with preserved(model), _fold.channels_last(model, cl):
        buf_base = {n: b.detach().clone() for n, b in bufs.items()}
        targets = _targets(model, base, directions, buf_base, buffer_directions)
        try:
            if bn == "train":  # batch statistics without writing the running statistics
                for m in norms:
                    m.track_running_stats = False
            forward = model.eval()
            folded = _fold.FoldedBN.build(model, cl) if _fold.FOLD_BN and bn != "train" else None
            if folded is not None:
                inputs = _to(next(iter(_batches(data)))[0], device)
                if isinstance(inputs, Tensor) and inputs.ndim > 0:
                    inputs = inputs[: _fold.CHECK_EXAMPLES]
                if folded.agrees(model, inputs):
                    forward = folded
                else:
                    log.warning("BatchNorm folding disagrees with the model; evaluating unfolded")
            for done, k in enumerate(todo, 1):
                cell = (k,) if ys is None else divmod(k, len(xs))  # (j, i) for 2D
                coeffs = [float(xs[cell[-1]])] + ([] if ys is None else [float(ys[cell[0]])])
                _set_point(targets, coeffs)
                if bn == "recalibrate":
                    _recalibrate(model, norms, data, recalibrate_batches, precision)
                model.eval()  # dropout off; BN in train mode only under bn="train"
                for m in norms if bn == "train" else ():
                    m.train()
                if forward is folded:
                    folded.refold()
                vals = _evaluate(forward, device, loss_fn, data, metrics, use_acc, precision)
                point = dict(zip(names, vals))
                for n, v in point.items():
                    values[n][cell] = v
                computed[cell] = True
                if on_point is not None:
                    on_point(k, point)
                if progress is not None:
                    progress(done, len(todo))
        finally:
            for m, momentum, track in flags:
                m.momentum, m.track_running_stats = momentum, track
    return result


def random_line(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    x: Coords = "-1:1:51",
    *,
    seed: int = 0,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
    bn: BNPolicy = "eval",
    metrics: Mapping[str, Metric] | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> SliceResult:
    """``f(a) = L(theta + a d)`` along a random (filter-normalized) direction.

    ``options`` go to :func:`evaluate_grid` (precision, recalibrate_batches, accuracy, ...).
    """
    dirs = random_directions(model, 1, seed=seed, normalization=normalization, ignore=ignore)
    opts = dict(bn=bn, metrics=metrics, progress=progress, **options)
    res = evaluate_grid(model, loss_fn, data, dirs, x, **opts)
    res.meta.update(kind="random_line", seed=seed, normalization=normalization, ignore=ignore)
    return res


def random_plane(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    x: Coords = "-1:1:51",
    y: Coords = "-1:1:51",
    *,
    seed: int = 0,
    orthogonalize: bool = False,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
    bn: BNPolicy = "eval",
    metrics: Mapping[str, Metric] | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> SliceResult:
    """``f(a, b) = L(theta + a d1 + b d2)`` on a random (filter-normalized) plane.

    ``d1`` equals the direction of :func:`random_line` with the same seed; with
    ``orthogonalize``, ``d2`` is made orthogonal to ``d1`` (Gram-Schmidt, norm kept).
    """
    d1, d2 = random_directions(model, 2, seed=seed, normalization=normalization, ignore=ignore)
    if orthogonalize:
        d2 = _orthogonalize(d2, d1)
    opts = dict(bn=bn, metrics=metrics, progress=progress, **options)
    res = evaluate_grid(model, loss_fn, data, [d1, d2], x, y, **opts)
    res.meta.update(kind="random_plane", seed=seed, normalization=normalization, ignore=ignore)
    res.meta["orthogonalize"] = orthogonalize
    return res


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: LossFn,
    data: Data,
    x: Coords = "-0.5:1.5:401",
    *,
    move_buffers: bool = True,
    bn: BNPolicy = "eval",
    metrics: Mapping[str, Metric] | None = None,
    progress: Callable[[int, int], None] | None = None,
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
    opts = dict(bn=bn, metrics=metrics, progress=progress, **options)
    res = evaluate_grid(model_a, loss_fn, data, [d], x, buffer_directions=bd, **opts)
    res.meta["kind"] = "interpolate"
    return res


def plane_through(
    model_a: nn.Module,
    model_b: nn.Module,
    model_c: nn.Module,
    loss_fn: LossFn,
    data: Data,
    x: Coords = "-0.5:1.5:51",
    y: Coords = "-0.5:1.5:51",
    *,
    move_buffers: bool = True,
    bn: BNPolicy = "eval",
    metrics: Mapping[str, Metric] | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> SliceResult:
    """``f(a, b) = L(theta_a + a (theta_b - theta_a) + b (theta_c - theta_a))``.

    The plane through three models: ``a`` sits at (0, 0), ``b`` at (1, 0), ``c`` at (0, 1).
    """
    pa = get_params(model_a)
    dirs = [checkpoint_direction(pa, get_params(m)) for m in (model_b, model_c)]
    bd = [buffer_direction(model_a, m) for m in (model_b, model_c)] if move_buffers else None
    opts = dict(bn=bn, metrics=metrics, progress=progress, **options)
    res = evaluate_grid(model_a, loss_fn, data, dirs, x, y, buffer_directions=bd, **opts)
    res.meta["kind"] = "plane_through"
    return res
