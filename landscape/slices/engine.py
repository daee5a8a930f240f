"""The slice engine: ``f(a, b) = L(theta + a d1 + b d2)`` on a grid of points (Li et al. 2018).

``L`` is the mean of ``loss_fn`` over all examples of the evaluation data (every batch
weighted by its size), so one point costs one forward pass over the data. Every point is
set from one stored base, ``theta <- base + a d1 + b d2`` (never by accumulating steps),
and the caller's model is restored bit for bit afterwards (:func:`landscape._params.preserved`).

BatchNorm mode ``bn_mode``: ``"eval"`` uses the running statistics (Li's choice);
``"train"`` uses batch statistics and leaves the running statistics untouched;
``"recalibrate"`` re-estimates the running statistics at every point (cumulative average
over ``recalibrate_batches`` batches of the evaluation data) and then evaluates in eval
mode. Dropout and other train/eval-dependent layers are always in eval mode.

Speed: a point costs one forward pass over the data, so the evaluation vehicle is made
cheaper than the model's own forward where that is exact in real arithmetic
(:func:`landscape.slices.fold.vehicle`, checked against the model on one batch before the
grid). Where BN runs on running statistics (``"eval"``, ``"recalibrate"``), every BatchNorm
that directly follows a conv/linear layer is folded into it; on the CPU the 4-D weights are
held in channels_last and, in float32, the conv trunk runs in oneDNN's blocked layout
reading the live weights (:mod:`landscape.slices.blocked`; in bf16 under
``precision="bf16"``), the vehicle's graph traced where only standard layers without hooks
run (:mod:`landscape.slices.traced`), and ``F.cross_entropy`` of few-class logits in a faster
layout (:mod:`landscape.slices.fused`, the same bits). All change only rounding (float32:
~1e-7 relative); ``benchmarks/bench_report.py`` measures them against a forward frozen for
inference. The switches are ``fold.FOLD_BN``, ``fold.CHANNELS_LAST``, ``fold.BLOCKED`` and
``traced.TRACE``. On a GPU the
points are read back one point late (``DEFERRED_READBACK``), so the host never waits on an
empty queue.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase

from landscape._device import device_of
from landscape._params import Target, channels_last, point_setter, preserved, set_point
from landscape.data.evaluation import (
    BatchLoss,
    Data,
    Loss,
    Metric,
    as_batches,
    describe_data,
    move,
)
from landscape.slices import fold, fused, traced
from landscape.slices.coords import MAX_POINTS, Coords, as_coords
from landscape.slices.result import SliceResult

__all__ = [
    "DEFAULT_RECALIBRATE_BATCHES",
    "SliceBNMode",
    "Precision",
    "SliceResult",
    "evaluate_grid",
]

#: BatchNorm during a slice: the probes' "train" (batch statistics, running statistics
#: untouched) and "eval" (running statistics), and "recalibrate" (re-estimated per point).
SliceBNMode = Literal["eval", "train", "recalibrate"]
Precision = Literal["native", "bf16"]

log = logging.getLogger(__name__)

DEFAULT_RECALIBRATE_BATCHES = 10  # enough for stable running statistics on CIFAR-sized batches
DEFERRED_READBACK = ("cuda",)  # devices whose points are read back one point late


def _precision_ctx(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "native":
        return contextlib.nullcontext()
    elif precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    else:
        raise ValueError(f"unknown precision {precision!r}; use 'native' or 'bf16'")


def _targets(model, base, directions, buf_base, buf_dirs) -> list[Target]:
    """Every tensor set per point, its base and the directions that move it (not zero ones)."""

    def moves(n: str, ds: Sequence[Mapping[str, Tensor]]) -> list[tuple[int, Tensor]]:
        return [(k, d[n]) for k, d in enumerate(ds) if n in d and bool(d[n].any())]

    own, bufs = dict(model.named_parameters()), dict(model.named_buffers())
    out = [(own[n], b, moves(n, directions)) for n, b in base.items()]
    return out + [(bufs[n], b, moves(n, buf_dirs or ())) for n, b in buf_base.items()]


@torch.no_grad()
def _recalibrate(model, norms, data, n_batches, precision, loss_fn) -> None:
    """Reset running statistics and re-estimate them as a cumulative average."""
    device = device_of(model)
    model.eval()
    for m in norms:
        if m.track_running_stats:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average over the batches seen
            m.train()
    with _precision_ctx(precision, device):
        for i, batch in enumerate(as_batches(data)):
            if i >= n_batches:
                break
            if isinstance(loss_fn, BatchLoss):
                loss_fn(model, move(batch, device))  # its forward passes update the statistics
            else:
                model(move(batch[0], device))


def _evaluate(forward, device, loss_fn, data, metrics, accuracy, precision) -> Tensor:
    """[loss, (accuracy), *metrics] averaged over examples, on the device: one pass over the data.

    Plain batches: one forward per batch, ``loss_fn(outputs, targets)`` and the metrics on
    it. :class:`BatchLoss` batches: ``fn(forward, batch)`` for the loss and each metric.
    Each batch mean is weighted by the batch's number of examples.
    """
    acc_dtype = torch.float32 if device.type == "mps" else torch.float64
    rows, counts, correct, finite = [], [], [], []  # per batch; reduced once per point
    with torch.inference_mode(), _precision_ctx(precision, device):
        for batch in as_batches(data):
            if isinstance(loss_fn, BatchLoss):
                batch = move(batch, device)
                n = loss_fn.count(batch)
                means = [loss_fn(forward, batch), *(fn(forward, batch) for fn in metrics.values())]
                if isinstance(accuracy, BatchLoss):
                    means.insert(1, accuracy(forward, batch))
            else:
                inputs, targets = move(batch[0], device), move(batch[1], device)
                out = forward(inputs)
                n = int(targets.shape[0])
                means = [loss_fn(out, targets)]
                for fn in metrics.values():
                    plain = not isinstance(fn, BatchLoss)
                    means.append(fn(out, targets) if plain else fn(forward, (inputs, targets)))
                if isinstance(accuracy, BatchLoss):
                    means.insert(1, accuracy(forward, (inputs, targets)))
            means = [torch.as_tensor(t, device=device) for t in means]
            if any(t.ndim != 0 for t in means):
                raise ValueError("loss_fn and metrics must return the batch mean (a scalar)")
            rows.append(torch.stack(means) if len(means) > 1 else means[0].reshape(1))
            counts.append(n)
            if accuracy is True:
                if out.ndim != 2:
                    raise ValueError("accuracy needs (N, C) logits; pass accuracy=False")
                correct.append((out.argmax(dim=1) == targets).sum())
                # all finite: |out|'s max is below infinity (NaN propagates through amax)
                empty = out.new_ones((), dtype=torch.bool)  # on the outputs' device
                finite.append(out.abs().amax() < math.inf if out.numel() else empty)
    weights = torch.tensor(counts, dtype=acc_dtype, device=device)
    sums = (torch.stack(rows).to(acc_dtype) * weights[:, None]).sum(0)  # batch means, weighted
    if accuracy is True:  # argmax of non-finite logits is no prediction: accuracy undefined
        hits = torch.stack(correct).sum().to(acc_dtype)
        hits = torch.where(torch.stack(finite).all(), hits, math.nan)
        sums = torch.cat([sums[:1], hits.reshape(1), sums[1:]])
    return sums / sum(counts)


def evaluate_grid(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    directions: Sequence[Mapping[str, Tensor]],
    x: Coords,
    y: Coords | None = None,
    *,
    origin: Mapping[str, Tensor] | None = None,
    buffer_directions: Sequence[Mapping[str, Tensor]] | None = None,
    bn_mode: SliceBNMode = "eval",
    recalibrate_batches: int = DEFAULT_RECALIBRATE_BATCHES,
    metrics: Mapping[str, Metric | BatchLoss] | None = None,
    accuracy: bool | BatchLoss | None = None,
    precision: Precision = "native",
    points: Iterable[int] | None = None,
    on_point: Callable[[int, dict[str, float]], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SliceResult:
    """Evaluate ``f(a, b) = L(theta + a d1 + b d2)`` (or ``f(a) = L(theta + a d1)``) on a grid.

    Args:
        model: The network; used as the evaluation vehicle and restored exactly afterwards.
        loss_fn: ``loss_fn(outputs, targets)`` -> batch mean (e.g. ``nn.CrossEntropyLoss()``);
            or, for batches of another form (dicts, tuple inputs), :func:`~landscape.batch_loss`
            ``(fn)`` with ``fn(model, batch)`` -> the batch mean (the BN fold, which needs plain
            inputs, is then not used).
        data: Re-iterable ``(inputs, targets)`` batches, or batches of ``loss_fn``'s form
            (list, DataLoader, a single ``(x, y)`` tuple or dict, or a callable returning a
            fresh iterable), or a dataset name:
            its fixed default subset (:func:`landscape.data.dataset_batches`) on
            the model's device and dtype. ``meta["data"]`` records a subset's source.
            One pass describes it, then one per point (two under ``"recalibrate"``).
        directions: ``[d1]`` or ``[d1, d2]``, keyed by parameter name (a subset is fine).
        x: Coordinates along ``d1`` (array or ``"start:stop:num"``).
        y: Coordinates along ``d2``, or None for a 1D slice.
        origin: ``theta``; defaults to the model's current parameters.
        buffer_directions: Directions for floating buffers (BN running statistics), one
            per direction; buffers are moved like parameters, from the model's buffers.
        bn_mode: BatchNorm mode, ``"eval"``, ``"train"`` or ``"recalibrate"``.
        recalibrate_batches: Batches used per point by ``bn_mode="recalibrate"``.
        metrics: Extra per-batch metrics ``fn(outputs, targets)`` -> batch mean, or
            :func:`~landscape.batch_loss` ``(fn)`` (required with a batch_loss ``loss_fn``).
        accuracy: Report accuracy; None means "when the targets are class labels"; a
            :func:`~landscape.batch_loss` ``(fn)`` gives the batch's fraction correct itself.
        precision: ``"native"`` (the model's dtype) or ``"bf16"`` (autocast).
        points: Flat indices to evaluate (``k = j * nx + i``); default all. An empty
            iterable validates the arguments and returns the metadata only.
        on_point: Called as ``on_point(k, {metric: value})`` after each point.
        progress: Called as ``progress(done, total)`` after each point.

    Returns:
        A :class:`SliceResult`; cells not evaluated are NaN.
    """
    xs = as_coords(x, "x")
    ys = None if y is None else as_coords(y, "y")
    shape = (len(xs),) if ys is None else (len(ys), len(xs))
    if len(directions) != len(shape):
        raise ValueError(f"a {len(shape)}D slice needs {len(shape)} directions")
    total = math.prod(shape)
    if total > MAX_POINTS:
        size = "×".join(map(str, shape[::-1]))
        raise ValueError(f"a {size} grid has {total} points, at most {MAX_POINTS} are "
                         "allowed: use fewer points per axis")  # fmt: skip
    if buffer_directions is not None and len(buffer_directions) != len(directions):
        raise ValueError("give one buffer direction per direction")
    if bn_mode not in ("eval", "train", "recalibrate"):
        raise ValueError(f"unknown bn_mode {bn_mode!r}; use 'eval', 'train' or 'recalibrate'")
    if bn_mode == "recalibrate" and recalibrate_batches < 1:
        raise ValueError("recalibrate_batches must be >= 1")
    device = device_of(model)
    _precision_ctx(precision, device)  # validates precision before any work
    metrics = dict(metrics or {})
    if {"loss", "accuracy"} & set(metrics):
        raise ValueError("extra metrics may not be named 'loss' or 'accuracy'")
    data = as_batches(data, model) if isinstance(data, str) else data  # loaded once
    summary = describe_data(data, loss_fn)
    if isinstance(loss_fn, BatchLoss):
        if plain := [n for n, fn in metrics.items() if not isinstance(fn, BatchLoss)]:
            raise ValueError(f"with batch_loss, metrics take the same form: pass "
                             f"batch_loss(fn) for {plain[0]!r}")  # fmt: skip
        if accuracy is True:
            raise ValueError("with batch_loss, pass accuracy=batch_loss(fn) (the batch's "
                             "fraction correct) instead of accuracy=True")  # fmt: skip
    elif accuracy is True and not summary.classification:
        raise ValueError("accuracy needs 1-D integer class labels as targets")
    if isinstance(accuracy, BatchLoss):
        use_acc: bool | BatchLoss = accuracy
    else:
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

    todo = list(range(total)) if points is None else [int(k) for k in points]
    if any(not 0 <= k < total for k in todo):
        raise ValueError(f"point indices must lie in [0, {total})")
    values = {n: np.full(shape, np.nan) for n in names}
    computed = np.zeros(shape, dtype=bool)
    recalibrated = min(recalibrate_batches, summary.batches) if bn_mode == "recalibrate" else None
    meta: dict[str, Any] = {
        "kind": "grid",
        "bn_mode": bn_mode,
        "recalibrate_batches": recalibrated,
        "precision": precision,
        "metrics": names,
        "eval_examples": summary.examples,
        "eval_batches": summary.batches,
        "dtype": str(next(iter(base.values())).dtype) if base else None,
        "moves_buffers": buffer_directions is not None,
    }
    if summary.source is not None:
        meta["data"] = summary.source
    bdirs = None if buffer_directions is None else [dict(d) for d in buffer_directions]
    result = SliceResult(xs, ys, values, meta, [dict(d) for d in directions], computed, bdirs)
    if not todo:
        return result

    norms = [m for m in model.modules() if isinstance(m, _NormBase)]
    flags = [(m, m.momentum, m.track_running_stats) for m in norms]
    cl = fold.CHANNELS_LAST and device.type == "cpu"
    with preserved(model), channels_last(model, cl):
        buf_base = {n: b.detach().clone() for n, b in bufs.items()}
        every = _targets(model, base, directions, buf_base, buffer_directions)
        try:
            if bn_mode == "train":  # batch statistics without writing the running statistics
                for m in norms:
                    m.track_running_stats = False
            forward = model.eval()  # dropout off; BN in train mode only under bn_mode="train"
            for m in norms if bn_mode == "train" else ():
                m.train()
            moved = every if bn_mode == "recalibrate" else [t for t in every if t[2]]
            set_point(every, [0.0] * len(directions))  # unmoved: set once (not recalibrated)
            vehicle = None  # checked on the first batch's plain inputs (no pass of its own)
            if not isinstance(loss_fn, BatchLoss):
                vehicle = fold.vehicle(
                    model, move(summary.first[0], device), channels_last=cl,
                    running_stats=bn_mode != "train" or not norms, bf16=precision == "bf16",
                    calls=len(todo) * summary.batches,
                )  # fmt: skip
                forward = vehicle or forward
            if vehicle is not None and bn_mode == "eval":  # folds affine in the point
                moved = moved + vehicle.follow(moved)

            def finish(k: int, cell: tuple, sums: Tensor, done: int) -> None:
                point = dict(zip(names, sums.tolist()))  # the host sync
                for n, v in point.items():
                    values[n][cell] = v
                computed[cell] = True
                if on_point is not None:
                    on_point(k, point)
                if progress is not None:
                    progress(done, len(todo))

            # On a GPU a point's values are read one point late, so that the queue never
            # drains: the host sync waits for point k while point k + 1 is already queued.
            defer, pending = device.type in DEFERRED_READBACK, None
            point_loss = fused.fuse(loss_fn)  # the same loss, in a faster layout where there is one
            scorer = None  # a traced vehicle's batch: forward, loss and accuracy in one call
            if vehicle is not None and vehicle.run is not vehicle.graph and not metrics:
                if point_loss is fused.cross_entropy and use_acc is True and precision != "bf16":
                    first = move(summary.first, device)
                    scorer = traced.scorer(vehicle.graph, first[0], first[1])
            with point_setter(moved, len(directions)) as at:  # the moved tensors in one buffer
                for done, k in enumerate(todo, 1):
                    cell = (k,) if ys is None else divmod(k, len(xs))  # (j, i) for 2D
                    coeffs = [float(xs[cell[-1]])] + ([] if ys is None else [float(ys[cell[0]])])
                    at(coeffs)
                    if bn_mode == "recalibrate":
                        _recalibrate(model, norms, data, recalibrate_batches, precision, loss_fn)
                        for m in norms:
                            m.eval()  # modes are set once, before the loop: put BN back
                    if vehicle is not None:
                        vehicle.refresh()
                    sums = None if scorer is None else traced.score(scorer, device, data)
                    if sums is None:
                        sums = _evaluate(
                            forward, device, point_loss, data, metrics, use_acc, precision
                        )
                    if pending is not None:  # read back while this point's kernels run
                        finish(*pending)
                    pending = (k, cell, sums, done)
                    if not defer:
                        finish(*pending)
                        pending = None
            if pending is not None:
                finish(*pending)
        finally:
            for m, momentum, track in flags:
                m.momentum, m.track_running_stats = momentum, track
    return result
