"""Resuming a run: every check comes first, so that a damaged run is refused as it was.

``train_pair(..., resume=True)`` continues each variant from its last checkpoint. Before
anything is written, :func:`plan` reads, for every variant to train:

- its log (``/train``, ``/eval``, ``/probe``, ``/ics``, ``/hessian``): groups of
  equal-length numeric columns whose steps strictly increase
  (:func:`landscape.store.read_series`);
- its status: a finished or diverged variant is reported from its stored numbers and not
  touched;
- its last checkpoint: readable, of this variant and this run, with weights and an
  optimizer state that fit the model and RNG states that restore; and the log must hold
  one training row per step before it (the log is committed before each checkpoint).

Anything else is a ``ValueError`` naming the file and the fix; nothing has been written.

A configuration stored before a field of ``TrainConfig`` existed is compared with that
field's default (:func:`~landscape.train.config.fill_defaults`): an old run resumes with
the options it was started with.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from landscape import store
from landscape._params import rng_preserved
from landscape.store import RUN_FILE, checkpoint_dir
from landscape.store.checkpoint import REPAIR
from landscape.train.config import TrainConfig, fill_defaults, make_optimizer

__all__ = ["Ended", "Restart", "check_config", "plan", "restore", "truncate"]

ANALYSES = ("train", "eval", "probe", "ics", "hessian")
STATUSES = ("running", "finished", "diverged")
#: What to do about a damaged run log (the run is left as it was).
RUN_FIX = "nothing was changed: train again with --overwrite, or into another --out"
#: What to do about a damaged last checkpoint.
CHECKPOINT_FIX = (
    "nothing was changed: delete that file and --resume goes on from the checkpoint before it"
)


@dataclass(frozen=True)
class Ended:
    """A variant the run had already finished (or seen diverge): its stored numbers."""

    status: Literal["finished", "diverged"]
    steps_done: int
    final_loss: float
    eval_loss: float
    eval_accuracy: float
    message: str = ""


@dataclass
class Restart:
    """Where one variant goes on: from ``start`` (0: from scratch) with ``checkpoint``
    (checked; on the CPU), or not at all (``ended``)."""

    start: int = 0
    checkpoint: store.Checkpoint | None = None
    ended: Ended | None = None


def check_config(out_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume ``out_dir`` unless its log holds ``config`` (as a JSON object; the
    fields a log written before them lacks count as their defaults).

    Raises:
        ValueError: no log, a damaged ``config_json``, or another configuration.
    """
    log = out_dir / RUN_FILE
    if not log.exists():
        raise ValueError(f"nothing to resume in {out_dir}: no {RUN_FILE}; drop --resume")
    with store.open_run(log) as f:
        try:
            stored = store.read_json_object(f, "config_json", log, default={})
        except ValueError as exc:
            raise ValueError(f"{exc}; {RUN_FIX}") from None
        variants = store.read_attr(f, "variants", list(config.variants))
    if not stored:  # none at all is not an old one: every run log holds its configuration
        raise ValueError(
            f"{log}: it holds no training configuration (attribute config_json): the file is "
            f"damaged; {RUN_FIX}"
        )
    new, stored = config.to_dict(), fill_defaults(stored)
    if stored != new:
        diff = sorted(k for k in set(stored) | set(new) if stored.get(k) != new.get(k))
        raise ValueError(
            f"cannot resume {out_dir}: its configuration differs in {diff}; use the same options"
        )
    if variants != list(config.variants):  # the same configuration trains the same variants
        raise ValueError(
            f"{log}: its attribute variants holds {str(variants)[:40]!r}, but its configuration "
            f"trains {list(config.variants)}: the file is damaged; {RUN_FIX}"
        )


def plan(
    out_dir: Path,
    config: TrainConfig,
    models: Mapping[str, nn.Module],
    columns: Mapping[str, Collection[str]],
) -> dict[str, Restart]:
    """Check the log and last checkpoint of every variant of ``config``; where each goes on.

    Args:
        out_dir: the run directory.
        config: the run's configuration (already checked against the stored one).
        models: the freshly built model of each variant (left unchanged).
        columns: the columns each analysis's series must have (``train``, ``eval``).

    Raises:
        ValueError: (and CheckpointError) naming the damaged file and the fix.
    """
    return {v: _plan_variant(out_dir, config, v, models[v], columns) for v in config.variants}


def _plan_variant(
    out_dir: Path,
    config: TrainConfig,
    variant: str,
    model: nn.Module,
    columns: Mapping[str, Collection[str]],
) -> Restart:
    path = out_dir / RUN_FILE
    try:
        logs, status, message = _read_log(path, variant, columns)
        ended = _ended(path, variant, config, logs, status, message)
    except ValueError as exc:
        raise ValueError(f"{exc}; {RUN_FIX}") from None
    found = store.list_checkpoints(checkpoint_dir(out_dir, variant))
    start, ckpt_path = found[-1] if found else (0, None)
    if ended is not None and ended.status == "finished" and start < config.steps:
        ended = None  # its final checkpoint was deleted: the run goes on to make it again
    if ckpt_path is None:
        return Restart(ended=ended)
    try:  # also where the run had ended: a damaged checkpoint is named, not passed over
        ckpt = store.load_checkpoint(ckpt_path)
        _check_checkpoint(ckpt, variant, config, model)
    except ValueError as exc:
        why = str(exc).removesuffix(f"; {REPAIR}")
        raise type(exc)(f"{why}; {CHECKPOINT_FIX}") from None
    if ended is not None:
        return Restart(ended=ended)
    before = int(np.count_nonzero(logs["train"].get("step", np.empty(0)) < start))
    if before != start:
        raise ValueError(
            f"{path}: /train/{variant} holds {before} rows before step {start}, where the "
            f"checkpoint {ckpt_path.name} needs one per step: the log does not reach its last "
            f"checkpoint and is damaged; {RUN_FIX}"
        )
    return Restart(start, ckpt)


def _read_log(
    path: Path, variant: str, columns: Mapping[str, Collection[str]]
) -> tuple[dict[str, dict[str, np.ndarray]], str, str]:
    """The variant's series (checked), status and message."""
    logs: dict[str, dict[str, np.ndarray]] = {}
    attrs: dict[str, object] = {}
    with store.open_run(path) as f:
        for analysis in ANALYSES:
            store.group_of(f, analysis, path)  # a dataset there is named, not passed over
            group = store.group_of(f, f"{analysis}/{variant}", path)
            if group is None:
                logs[analysis] = {}
                continue
            needs = columns.get(analysis, ()) if store.series_columns(group) else ()
            logs[analysis] = store.read_series(group, steps="increasing", columns=needs)
            attrs = store.read_attrs(group) if analysis == "train" else attrs
    status, message = attrs.get("status", "running"), attrs.get("message", "")
    if status not in STATUSES:
        raise ValueError(
            f"{path}: /train/{variant} has status {status!r}, not one of {', '.join(STATUSES)}: "
            "the file is damaged"
        )
    return logs, status, str(message)


def _ended(
    path: Path, variant: str, config: TrainConfig, logs: dict, status: str, message: str
) -> Ended | None:
    """The stored result of a variant that needs no more training (None: it does).

    A log that says the variant ended must show it, with one training row per step from 0:
    ending at the step whose loss was not finite (diverged), or at the last step and with a
    final evaluation (finished). Anything else is a damaged file (ValueError).
    """
    if status == "running":
        return None
    train, evals = logs["train"], logs["eval"]
    steps = train.get("step", np.empty(0))  # the loss is read only where there are steps
    every_step = len(steps) > 0 and np.array_equal(steps, np.arange(len(steps)))
    last = f"step {int(steps[-1])}" if len(steps) else "no row"
    if status == "diverged":
        if not (every_step and not np.isfinite(train["loss"][-1])):
            raise ValueError(
                f"{path}: /train/{variant} says diverged, but its log does not end at a "
                f"non-finite loss after one row per step (it ends at {last}): the file is damaged"
            )
        nan = float("nan")
        return Ended("diverged", int(steps[-1]), float(train["loss"][-1]), nan, nan, message)
    eval_steps = evals.get("step", np.empty(0))
    if not (every_step and len(steps) == config.steps and len(eval_steps)
            and eval_steps[-1] == config.steps):  # fmt: skip
        raise ValueError(
            f"{path}: /train/{variant} says finished, but its log ends at {last} of "
            f"{config.steps} (or has no final evaluation): the file is damaged"
        )
    return Ended("finished", config.steps, float(train["loss"][-1]), float(evals["loss"][-1]),
                 float(evals["accuracy"][-1]))  # fmt: skip


def _check_checkpoint(
    ckpt: store.Checkpoint, variant: str, config: TrainConfig, model: nn.Module
) -> None:
    """Refuse a last checkpoint the run cannot go on from (CheckpointError, naming it)."""

    def damaged(what: str) -> store.CheckpointError:
        return store.CheckpointError(f"cannot resume from {ckpt.path}: {what}")

    if ckpt.step > config.steps:
        raise damaged(f"it holds step {ckpt.step}, past the run's {config.steps} steps")
    if ckpt.extra.get("variant", variant) != variant:
        raise damaged(f"it holds the {ckpt.extra['variant']} variant, not {variant}")
    new, old = config.to_dict(), fill_defaults(ckpt.config)
    if diff := sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)):
        raise damaged(f"its training configuration differs from the run's in {diff}")
    scratch = copy.deepcopy(model).to(dtype=getattr(torch, config.dtype))
    try:
        own = scratch.state_dict()
        wrong = [k for k, t in ckpt.model_state.items() if k in own and t.dtype != own[k].dtype]
        if wrong:
            raise TypeError(f"{wrong[0]} is {ckpt.model_state[wrong[0]].dtype}")
        scratch.load_state_dict(ckpt.model_state)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise damaged(f"its weights do not fit the model ({_first_line(exc)})") from None
    if ckpt.optimizer_state is None:
        raise damaged("it holds no optimizer state")
    optimizer = make_optimizer(config, scratch)
    try:
        optimizer.load_state_dict(ckpt.optimizer_state)
        for group in optimizer.param_groups:
            for p in group["params"]:
                for key, t in optimizer.state.get(p, {}).items():
                    if isinstance(t, torch.Tensor) and t.ndim and t.shape != p.shape:
                        raise ValueError(f"{key} of shape {tuple(t.shape)} for {tuple(p.shape)}")
    except (RuntimeError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise damaged(f"its optimizer state does not fit the model ({_first_line(exc)})") from None
    try:
        with rng_preserved():
            store.restore_rng(ckpt.rng)
    except (RuntimeError, TypeError, ValueError, KeyError, IndexError) as exc:
        raise damaged(f"its RNG states do not restore ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def restore(restart: Restart, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Load the checked checkpoint of ``restart`` (if any): weights, optimizer, RNG states."""
    ckpt = restart.checkpoint
    if ckpt is None:
        return
    model.load_state_dict(ckpt.model_state)
    optimizer.load_state_dict(ckpt.optimizer_state)
    store.restore_rng(ckpt.rng)
    restart.checkpoint = None  # the tensors are in the model now


def truncate(path: Path, variant: str, before_step: int) -> None:
    """Drop every logged row of ``variant`` whose step is ``>= before_step`` and mark the
    variant running, in one edit (a kill in between cannot leave it "finished" but cut)."""
    with store.edit(path) as f:
        for analysis in ANALYSES:
            group = store.group_of(f, f"{analysis}/{variant}", path)
            if group is not None and "step" in group:
                store.truncate_series(group, "step", before_step - 1)
        store.write_attrs(f.require_group(f"train/{variant}"), {"status": "running", "message": ""})
