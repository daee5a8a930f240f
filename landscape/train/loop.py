"""Paired training of a BatchNorm network and its plain twin, with checkpoints and HDF5 logs.

A *pair* shares everything but the BN layers: the same seed, the same initial weights for
the layers both have (copied from the BN model into the plain one), and the same batch at
every step (``data.batch_indices`` is a pure function of the seed and the step). Each
variant logs per step to ``run.h5`` under ``/train/<variant>`` and, every ``eval_every``
steps, held-out metrics under ``/eval/<variant>``. A variant whose loss stops being finite
is recorded as ``diverged`` and stopped; the other variant still runs to the end.

With ``hessian_every``, the Hessian of the mean loss over a fixed set of training examples
(top eigenvalues, trace, curvature along the gradient) goes to ``/hessian/<variant>``, taken
at the checkpointed weights of every ``hessian_every``-th step and of the last step
(:class:`~landscape.curvature.InlineHessian`).

Checkpoint ``step_k`` holds the weights after ``k`` updates; a log row with step ``s`` is
the update from ``s`` to ``s + 1``. Resuming from checkpoint ``k`` truncates every series
to rows with step ``< k`` and continues, reaching the same weights bit for bit on the CPU.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from landscape import store
from landscape._device import resolve_device
from landscape._files import writer_lock
from landscape._params import rng_preserved
from landscape.curvature import InlineHessian
from landscape.data import (
    Dataset,
    LossFn,
    accuracy,
    batch_indices,
    eval_batches,
    load_dataset,
    loss_function,
)
from landscape.models import ModelSpec, copy_shared_parameters
from landscape.probes import InlineProbes
from landscape.store import CHECKPOINTS, RUN_FILE, VARIANTS, Variant, checkpoint_dir
from landscape.train import resume as resuming
from landscape.train.config import TrainConfig, checkpoint_schedule, lr_at, make_optimizer

log = logging.getLogger(__name__)

#: Log rows are buffered in memory and committed (a copy of run.h5, renamed over it) in
#: blocks of this many steps, and before each checkpoint.
LOG_FLUSH_EVERY = 100
#: What the columns of ``/train/<variant>`` and ``/eval/<variant>`` hold (``description``).
TRAIN_COLUMNS = {
    "step": "updates applied before this row's batch (0-based)",
    "loss": "mini-batch training loss at that step",
    "accuracy": "mini-batch accuracy (NaN for regression)",
    "grad_norm": "Euclidean norm of the full mini-batch gradient (all parameters)",
    "lr": "learning rate of this step's update",
}
EVAL_COLUMNS = {
    "step": "training step at which the model was evaluated",
    "loss": "mean loss over the test set",
    "accuracy": "accuracy over the test set (NaN for regression)",
}

__all__ = ["PairResult", "VariantResult", "evaluate", "train_pair"]


@dataclass
class VariantResult:
    variant: Variant
    status: Literal["finished", "diverged"]
    steps_done: int
    final_loss: float
    eval_loss: float
    eval_accuracy: float
    message: str = ""
    already_ended: bool = False  # resumed, it had ended before: stored numbers, none trained


@dataclass
class PairResult:
    out_dir: Path
    variants: dict[str, VariantResult]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    batch_size: int,
) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for regression) over ``(x, y)`` in eval mode."""
    was_training = model.training
    model.eval()
    total, correct, n = 0.0, 0.0, 0
    classify = y.dtype == torch.int64
    for xb, yb in eval_batches(x, y, batch_size):
        out = model(xb)
        total += float(loss_fn(out, yb)) * len(xb)
        if classify:
            correct += accuracy(out, yb) * len(xb)
        n += len(xb)
    model.train(was_training)
    return total / n, (correct / n if classify else float("nan"))


#: ``hook(variant, step, model, loss_fn, batch, base)``, called after the step's backward and
#: before its update; ``base`` = (loss, {name: grad}) at theta, the step's own (``.grad`` of
#: the trainable parameters; None where a parameter got no gradient).
StepHook = Callable[..., None]


def _batches(
    data: Dataset, config: TrainConfig, start: int, device: torch.device
) -> Iterator[tuple[int, Tensor, Tensor]]:
    # The training set is small and kept resident on the device; batches are index gathers.
    x, y = data.x_train.to(device), data.y_train.to(device)
    for step in range(start, config.steps):
        idx = batch_indices(len(x), config.batch_size, step, config.seed).to(device)
        yield step, x[idx], y[idx]


def _train_variant(
    variant: Variant,
    model: nn.Module,
    spec: ModelSpec,
    data: Dataset,
    config: TrainConfig,
    out_dir: Path,
    device: torch.device,
    restart: resuming.Restart | None,
    hooks: list[StepHook],
    progress: Callable[[str, int, int], None] | None,
) -> VariantResult:
    """Train one variant; its rows are committed to ``run.h5`` every LOG_FLUSH_EVERY steps,
    before each checkpoint and at the end (copy-on-write: a failed write keeps the last)."""
    run_file = out_dir / RUN_FILE
    run_log = store.SeriesLog(run_file)
    train_rows, eval_rows = f"train/{variant}", f"eval/{variant}"
    ckpt_dir = checkpoint_dir(out_dir, variant)
    loss_fn = loss_function(data.task)
    optimizer = make_optimizer(config, model)
    schedule = set(checkpoint_schedule(config))
    resume, start = restart is not None, 0
    if restart is not None and (ended := restart.ended) is not None:  # left as it ended
        return VariantResult(variant, ended.status, ended.steps_done, ended.final_loss,
                             ended.eval_loss, ended.eval_accuracy, ended.message, True)  # fmt: skip
    if restart is not None:  # checked by resuming.plan before anything was written
        start = restart.start
        resuming.restore(restart, model, optimizer)
        log.info("%s: resumed from step %d", variant, start)
        # rows past the checkpoint (all of them without one) are written again
        resuming.truncate(run_file, variant, start)
    run_log.describe(train_rows, TRAIN_COLUMNS)
    run_log.describe(eval_rows, EVAL_COLUMNS)
    run_log.set_attrs(train_rows, status="running", message="")
    run_log.commit()

    inline = (
        InlineProbes(config, run_log, variant, lambda step: lr_at(config, step))
        if config.probe_every or config.ics_every
        else None
    )
    if inline is not None:
        hooks = [*hooks, inline]  # the gradient probe, a step hook (see InlineProbes)
    hessian = (
        InlineHessian(config, run_log, variant, data, device) if config.hessian_every else None
    )
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)

    def checkpoint(step: int) -> None:
        run_log.commit()  # the log reaches the checkpoint's step before the checkpoint exists
        store.save_checkpoint(
            store.checkpoint_path(ckpt_dir, step),
            model=model,
            optimizer=optimizer,
            step=step,
            spec=spec.to_dict(),
            config=config.to_dict(),
            extra={"variant": variant},
        )

    def eval_row(step: int) -> tuple[float, float]:
        loss, acc = evaluate(model, loss_fn, x_test, y_test, config.eval_batch_size)
        run_log.add(eval_rows, step=step, loss=loss, accuracy=acc)
        return loss, acc

    model.train()
    last_loss = float("nan")
    for step, xb, yb in _batches(data, config, start, device):
        if step in schedule and not (resume and step == start and step > 0):
            checkpoint(step)
        if step % config.eval_every == 0:
            eval_row(step)
        lr = lr_at(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if inline is not None:  # at theta_t as checkpointed, before the forward moves BN stats
            inline.before_forward(step, model, loss_fn, (xb, yb))
        if hessian is not None:  # the same theta_t: the Hessian of checkpoint step_t
            hessian.before_forward(step, model)
        optimizer.zero_grad(set_to_none=True)
        out = model(xb)
        loss = loss_fn(out, yb)
        loss.backward()
        if hooks:  # before the update, with this step's own loss and gradient
            grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
            for hook in hooks:
                hook(variant, step, model, loss_fn, (xb, yb), (loss.detach(), grads))
        grads_now = [p.grad for p in model.parameters() if p.grad is not None]
        logged = [
            loss.detach(),
            torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads_now))),
        ]
        if data.task == "classification":  # as data.accuracy, kept on the device
            logged.append((out.detach().argmax(dim=1) == yb).double().mean())
        # one device -> host sync per step; float32 -> float64 is exact
        last_loss, grad_norm, *rest = torch.stack([t.double() for t in logged]).tolist()
        acc = rest[0] if rest else float("nan")
        run_log.add(train_rows, step=step, loss=last_loss, accuracy=acc, grad_norm=grad_norm, lr=lr)
        if not math.isfinite(last_loss):
            msg = f"{variant} diverged at step {step}: loss is {last_loss}; lower the learning rate"
            run_log.set_attrs(train_rows, status="diverged", message=msg)
            run_log.commit()
            log.warning(msg)
            return VariantResult(
                variant, "diverged", step, last_loss, float("nan"), float("nan"), msg
            )
        optimizer.step()
        if inline is not None:  # ICS with the update just made (Definition 2.1)
            inline.after_update(step, model, loss_fn, (xb, yb))
        if run_log.pending(train_rows) >= LOG_FLUSH_EVERY:
            run_log.commit()
        if progress is not None:
            progress(variant, step + 1, config.steps)
    eval_loss, eval_acc = eval_row(config.steps)
    if hessian is not None:  # the final weights, as the last checkpoint holds them
        hessian.at_end(model)
    if config.steps in schedule and not (resume and start == config.steps):
        checkpoint(config.steps)
    run_log.set_attrs(train_rows, status="finished", message="")
    run_log.commit()
    return VariantResult(variant, "finished", config.steps, last_loss, eval_loss, eval_acc)


def _prepare_out_dir(out_dir: Path, config: TrainConfig, overwrite: bool, resume: bool) -> None:
    """Check ``out_dir`` for this run; under ``overwrite`` remove the old run's outputs (and
    only those: :func:`landscape.store.remove_run_outputs`)."""
    if store.kind_of(out_dir) not in ("nothing", "directory"):
        raise ValueError(f"{out_dir} is a file, not a run directory: choose another --out")
    has_log = store.check_output(out_dir / RUN_FILE, "run log")  # refuses any other run.h5
    if resume:
        resuming.check_config(out_dir, config)
        return
    if has_log or any(p.is_file() for p in (out_dir / CHECKPOINTS).rglob("*")):
        if not overwrite:
            raise ValueError(
                f"{out_dir} already holds a run: "
                "pass --overwrite to replace it or --resume to continue it"
            )
        if not has_log:
            raise ValueError(
                f"{out_dir / CHECKPOINTS} exists but {out_dir} holds no {RUN_FILE}: it is not a "
                "run of landscape train and is never replaced; choose another --out"
            )
        # Everything derived from the old run goes with it; other files are left alone.
        kept = store.remove_run_outputs(out_dir)
        if kept:
            log.warning("%s: kept %d files that landscape did not write: %s", out_dir, len(kept),
                        ", ".join(map(str, kept[:5])))  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)


def train_pair(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    hooks: list[StepHook] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    dataset: Dataset | None = None,
) -> PairResult:
    """Train the variants of ``config.bn`` as a fair pair and write one run directory.

    Args:
        config: the run's configuration (validated here).
        out_dir: the run directory (``run.h5``, ``checkpoints/<variant>/``, ``figures/``).
        overwrite: replace a run already in ``out_dir``.
        resume: continue each variant from its last checkpoint.
        hooks: called as ``hook(variant, step, model, loss_fn, batch, base)`` after each
            step's backward pass and before its update, with ``base`` = the step's own
            ``(loss, {name: grad})`` (the inline probes use this, see :class:`InlineProbes`).
        progress: called as ``progress(variant, done, total)`` after each step.
        dataset: an already-loaded dataset (otherwise ``config.dataset`` is loaded).
    """
    config.validate()
    out = Path(out_dir)
    device = resolve_device(config.device)
    data = dataset or load_dataset(
        config.dataset,
        data_dir=config.data_dir,
        download=config.download,
        seed=config.seed,
        **config.data_options,
    )
    dtype = getattr(torch, config.dtype)
    specs = {v: config.spec(data, bn=(v == "bn")) for v in VARIANTS}
    # Build both variants (even if only one trains) so that the shared layers start equal.
    models = {v: specs[v].build(seed=config.seed) for v in VARIANTS}
    copied = set(copy_shared_parameters(models["bn"], models["plain"]))
    if unpaired := [n for n, _ in models["plain"].named_parameters() if n not in copied]:
        log.warning("the plain variant's %s have no counterpart of the same name and shape in "
                    "the BN variant: they start from other draws, so the pair is not fair there; "
                    "name the shared layers alike in both variants", unpaired[:5])  # fmt: skip
    for v in config.variants:  # torch's own checks of the options, before anything is written
        make_optimizer(config, models[v])
        if config.hessian_every:
            InlineHessian.check(config, data, models[v])
    with writer_lock(out / RUN_FILE):  # one writer per run directory
        store.remove_run_temporaries(out)  # of a run killed while it wrote its log or a checkpoint
        _prepare_out_dir(out, config, overwrite, resume)
        columns = {"train": TRAIN_COLUMNS, "eval": EVAL_COLUMNS}
        restarts = resuming.plan(out, config, models, columns) if resume else None
        if not resume:
            with store.edit(out / RUN_FILE, fresh=True) as f:
                store.write_provenance(f, store.provenance(config.to_dict(), device=str(device)))
                meta = json.dumps(data.meta, sort_keys=True, default=str)  # JSON text: any meta
                store.write_attrs(f, {store.KIND_ATTR: "run log", "variants": list(config.variants),
                                      "dataset_meta": meta})  # fmt: skip
        results = _train_variants(config, models, specs, _to_dtype(data, dtype), out, device,
                                  restarts, hooks or [], progress)  # fmt: skip
    return PairResult(out, results)


def _train_variants(
    config: TrainConfig, models: dict, specs: dict, data: Dataset, out: Path,
    device: torch.device, restarts: dict[str, resuming.Restart] | None, hooks: list[StepHook],
    progress: Callable[[str, int, int], None] | None,
) -> dict[str, VariantResult]:  # fmt: skip
    """Each variant of the run in turn; a new run that fails before its first checkpoint
    leaves no run.h5 (it would make the fixed command "already hold a run")."""
    dtype = getattr(torch, config.dtype)
    results = {}
    try:
        for v in config.variants:
            model = models[v].to(device=device, dtype=dtype)
            # Random layers (dropout) draw from torch's global generator: seeded per variant,
            # so a run repeats and both variants see the same stream; the caller's state
            # comes back.
            with rng_preserved():
                torch.manual_seed(config.seed)
                restart = None if restarts is None else restarts[v]
                results[v] = _train_variant(
                    v, model, specs[v], data, config, out, device, restart, hooks, progress
                )
    except BaseException:
        new = restarts is None
        if new and not any(store.list_checkpoints(checkpoint_dir(out, v)) for v in VARIANTS):
            (out / RUN_FILE).unlink(missing_ok=True)
            store.remove_empty_run_folders(out)
        raise
    return results


def _to_dtype(data: Dataset, dtype: torch.dtype) -> Dataset:
    if data.x_train.dtype == dtype:
        return data
    conv = (lambda t: t.to(dtype)) if data.task == "regression" else (lambda t: t)
    return replace(data, x_train=data.x_train.to(dtype), x_test=data.x_test.to(dtype),
                   y_train=conv(data.y_train), y_test=conv(data.y_test))  # fmt: skip
