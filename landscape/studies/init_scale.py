"""Does BN make large initial weights safe? The init-scale sweep (science.md ss. 2, 5).

For every init scale ``a``, activation and seed, the trainer (:func:`landscape.train.
train_pair`) trains a BN network and its plain twin from the same initial weights (every
weight tensor multiplied by ``a``) on the same batches, with the inline Santurkar probes.
Per network (a *cell*) the sweep records

- the norm of every layer's weight gradient at initialisation and over the first
  ``grad_steps`` steps, and the ratio of the largest to the smallest (the exploding measure);
- the training curve, the final training and held-out loss and accuracy;
- the probes (effective beta, gradient predictiveness, loss range) at each probed step and
  their medians;
- the outcome: trained, stalled at chance or diverged (with the step), by the rules of
  :mod:`landscape.comparison.outcomes`.

Everything goes into one sweep file (:mod:`landscape.comparison.sweep_file`), a pair of
cells at a time in one atomic edit: a sweep killed at any moment and run again with the same
configuration computes only the pairs it lacks, and ends with the same file as an
uninterrupted run (each pair is a pure function of the configuration on a given machine and
thread count). Each pair trains in a scratch run directory beside the file
(``.<name>.work``), removed once read (``keep_runs`` keeps them).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch
from torch import nn

from landscape import store
from landscape._device import cpu_description, resolve_device
from landscape._files import remove_stale_temporaries, writer_lock
from landscape.comparison import OutcomeRules, classify, probe_metrics
from landscape.comparison.matched import PROBE_METRICS
from landscape.comparison.sweep_file import (
    KIND,
    create_sweep_file,
    read_sweep,
    settings_differ,
    write_pair,
)
from landscape.data import Dataset, load_dataset
from landscape.models.blocks import Activation
from landscape.models.pairs import BATCHNORMS
from landscape.store import RUN_FILE
from landscape.train import TrainConfig, train_pair

__all__ = [
    "DEFAULT_ACTIVATIONS",
    "DEFAULT_SCALES",
    "DEFAULT_SEEDS",
    "GRAD_STEPS",
    "SweepConfig",
    "default_train",
    "init_scale_sweep",
    "weight_layers",
]

DEFAULT_SCALES = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
DEFAULT_ACTIVATIONS: tuple[Activation, ...] = ("sigmoid", "tanh", "relu")
DEFAULT_SEEDS = (0, 1, 2)
#: Per-layer gradient norms are recorded at steps 0 .. GRAD_STEPS - 1.
GRAD_STEPS = 20
#: The fields of TrainConfig the grid sets per cell (and eval_every: once, at the end).
PER_CELL = ("activation", "init_scale", "seed", "eval_every")


def default_train() -> TrainConfig:
    """The sweep's training defaults: minutes for the whole default grid on a 2-core CPU.

    ``vgg_small`` on the bundled digits, plain SGD at the paper's lr 0.1, batch 128, 200
    steps, the inline probes every 10 steps (the paper's VGG grid, eta in [0.5, 4] x lr).
    """
    return TrainConfig(model="vgg_small", dataset="digits", lr=0.1, batch_size=128, steps=200,
                       probe_every=10)  # fmt: skip


@dataclass
class SweepConfig:
    """The grid and the training of every cell.

    ``train``'s ``activation``, ``init_scale`` and ``seed`` are set per cell and its
    ``eval_every`` to ``steps`` (held-out numbers at the end only); its ``bn`` says which
    variants each cell trains.
    """

    scales: list[float] = field(default_factory=lambda: list(DEFAULT_SCALES))
    activations: list[str] = field(default_factory=lambda: list(DEFAULT_ACTIVATIONS))
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    grad_steps: int = GRAD_STEPS
    train: TrainConfig = field(default_factory=default_train)

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting and its option."""
        checks = (("scales", "--scales", float), ("activations", "--activation", str),
                  ("seeds", "--seeds", int))  # fmt: skip
        for name, option, kind in checks:
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} ({option}) must name at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} ({option}) names a value twice: {values}")
            for v in values:
                ok = isinstance(v, (int, float)) if kind is float else isinstance(v, kind)
                if isinstance(v, bool) or not ok:
                    raise ValueError(f"{name} ({option}) must hold {kind.__name__}s, got {v!r}")
        for a in self.activations:
            if a not in get_args(Activation):
                raise ValueError(f"unknown activation {a!r} (--activation): choose from "
                                 f"{', '.join(get_args(Activation))}")  # fmt: skip
        for s in self.scales:
            if not (math.isfinite(s) and s > 0):
                raise ValueError(f"init scales (--scales) must be finite and > 0, got {s!r}")
        g = self.grad_steps
        if isinstance(g, bool) or not isinstance(g, int) or g < 1:
            raise ValueError(f"grad_steps (--grad-steps) must be an integer >= 1, got {g!r}")
        for a in self.activations:
            self.cell_config(self.scales[0], a, self.seeds[0]).validate()

    def cell_config(self, scale: float, activation: str, seed: int) -> TrainConfig:
        """The training configuration of one cell."""
        return replace(self.train, init_scale=float(scale), activation=activation, seed=seed,
                       eval_every=self.train.steps)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The settings stored in the file (and compared on a rerun): the grid, and the
        training configuration without the fields set per cell."""
        train = {k: v for k, v in self.train.to_dict().items() if k not in PER_CELL}
        return {"scales": [float(s) for s in self.scales], "activations": list(self.activations),
                "seeds": list(self.seeds), "grad_steps": self.grad_steps,
                "train": train}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepConfig:
        """The inverse of :meth:`to_dict`; training fields left out take the sweep's
        defaults (:func:`default_train`), not TrainConfig's."""
        known = {f.name for f in fields(cls)}
        if unknown := set(d) - known:
            raise ValueError(f"unknown sweep settings: {sorted(unknown)}")
        train = TrainConfig.from_dict({**default_train().to_dict(), **d.get("train", {})})
        return cls(**{**d, "train": train})


@torch.no_grad()
def weight_layers(model: nn.Module, x: torch.Tensor) -> tuple[list[str], list[bool]]:
    """The weight tensors (parameters with ``ndim >= 2``, in parameter order) and, for
    each, whether its module's output goes next into a BatchNorm layer (by the order the
    modules run in on ``x``, in eval mode)."""
    names = [n for n, p in model.named_parameters() if p.ndim >= 2]
    modules = dict(model.named_modules())
    order: list[str] = []
    leaves = [(n, m) for n, m in modules.items() if n and not any(True for _ in m.children())]
    handles = [m.register_forward_hook(lambda *_, n=n: order.append(n)) for n, m in leaves]
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    feeds = []
    for name in names:
        owner = name.rpartition(".")[0]
        i = order.index(owner) if owner in order else None
        after = order[i + 1] if i is not None and i + 1 < len(order) else None
        feeds.append(after is not None and isinstance(modules[after], BATCHNORMS))
    return names, feeds


class _Gradients:
    """A trainer hook: the norm of each layer's weight gradient over the first steps."""

    def __init__(self, layers: Sequence[str], steps: int):
        self.layers, self.steps = list(layers), steps
        self.norms: dict[str, np.ndarray] = {}

    def __call__(self, variant, step, model, loss_fn, batch, base) -> None:
        if step >= self.steps:
            return
        grads = base[1]
        norms = self.norms.setdefault(variant, np.full((self.steps, len(self.layers)), np.nan))
        nan = torch.tensor(math.nan, dtype=torch.float64)
        values = [
            nan if grads.get(n) is None else torch.linalg.vector_norm(grads[n].double())
            for n in self.layers
        ]
        norms[step] = torch.stack(values).cpu().numpy()


def _padded(values: np.ndarray, at: np.ndarray, size: int) -> np.ndarray:
    out = np.full(size, np.nan)
    out[at] = values
    return out


def _cells(run_file: Path, variant: str, grads: _Gradients, coords: dict, data: Dataset,
           rules: OutcomeRules) -> dict[str, Any]:  # fmt: skip
    """One variant's cell values from its run log and the gradient hook."""
    train_steps, probe_steps = coords["train_step"], coords["probe_step"]
    with store.open_run(run_file) as f:
        train = store.read_series(f[f"train/{variant}"], steps="increasing")
        evals = store.read_series(f[f"eval/{variant}"], steps="increasing")
        group = store.group_of(f, f"probe/{variant}", run_file)
        probes = store.read_series(group, steps="increasing") if group is not None else None
    classes = data.num_classes if data.task == "classification" else None
    verdict = classify(train["step"], train["loss"], train["accuracy"], num_classes=classes,
                       rules=rules)  # fmt: skip
    steps = len(train_steps)
    finished = evals["step"].size and evals["step"][-1] == steps
    norms = grads.norms[variant]  # the hook runs at step 0 of every variant, diverged or not
    with np.errstate(invalid="ignore", divide="ignore"):  # a dead layer's 0: ratio inf or NaN
        ratio = norms.max(axis=1) / norms.min(axis=1)
    cells: dict[str, Any] = {
        "outcome": verdict.outcome,
        "diverged_step": math.nan if verdict.diverged_step is None else verdict.diverged_step,
        "final_loss": verdict.final_loss,
        "final_accuracy": verdict.final_accuracy,
        "eval_loss": float(evals["loss"][-1]) if finished else math.nan,
        "eval_accuracy": float(evals["accuracy"][-1]) if finished else math.nan,
        "grad_norm": norms,
        "grad_ratio": ratio,
        "train_loss": _padded(train["loss"], train["step"], steps),
        "train_accuracy": _padded(train["accuracy"], train["step"], steps),
    }
    at = np.searchsorted(probe_steps, probes["step"]) if probes is not None else np.empty(0, int)
    metrics = probe_metrics(probes) if probes is not None else {}
    for m in PROBE_METRICS:
        series = _padded(metrics[m], at, len(probe_steps)) if m in metrics else \
            np.full(len(probe_steps), np.nan)  # fmt: skip
        cells[f"probe_{m}"] = series
        finite = series[np.isfinite(series)]
        cells[f"median_{m}"] = float(np.median(finite)) if finite.size else math.nan
    base = probes["base_loss"] if probes is not None else np.empty(0)
    cells["probe_base_loss"] = _padded(base, at, len(probe_steps))
    return cells


def _work_dir(out: Path) -> Path:
    return out.with_name(f".{out.name}.work")


def _prepare(out: Path, coords: dict, settings: dict, rules: dict, overwrite: bool,
             device: str) -> np.ndarray | None:  # fmt: skip
    """The computed mask of the sweep file already at ``out`` (None: made anew)."""
    if store.check_output(out, KIND) and not overwrite:  # never another kind
        stored = read_sweep(out)  # checked: a damaged file is refused, not added to
        diff = settings_differ(stored.settings, settings)
        diff += ["outcome_rules"] if settings_differ(stored.rules, rules) else []
        for name in ("layer", "feeds_bn"):
            if list(stored.coords[name]) != list(coords[name]):
                diff.append(name)
        if diff:
            raise ValueError(f"{out} was computed with other settings ({', '.join(diff)}): "
                             "pass the same options, or --overwrite to replace it")  # fmt: skip
        return stored.computed
    create_sweep_file(out, coords, settings, rules, device=device,
                      attrs={"cpu": cpu_description()})  # fmt: skip
    return None


def init_scale_sweep(
    config: SweepConfig | None = None,
    out: str | Path = "runs/init_scale/sweep.h5",
    *,
    overwrite: bool = False,
    keep_runs: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    dataset: Dataset | None = None,
) -> Path:
    """Train every cell of the sweep that ``out`` lacks, and write it there.

    Args:
        config: the grid and the training (default :class:`SweepConfig`).
        out: the sweep file; one holding the same settings is continued.
        overwrite: replace a sweep file of other settings instead of refusing it.
        keep_runs: a directory to keep each pair's run directory in
            (``<activation>_scale<a>_seed<k>``, replaced when the pair is trained again);
            None: scratch directories, removed.
        progress: ``progress(done, total)`` over the pairs still to train.
        dataset: the data (default ``config.train.dataset``, loaded per seed: the seed
            sets the train/test split).

    Returns:
        ``out``.

    Raises:
        ValueError: bad settings, a sweep file of other settings at ``out`` (unless
            ``overwrite``), or ``out`` holding anything but a sweep file (never replaced).
    """
    cfg = config or SweepConfig()
    cfg.validate()
    out, train = Path(out), cfg.train
    device = resolve_device(train.device)
    cache: dict[int, Dataset] = {}

    def data_of(seed: int) -> Dataset:
        if dataset is not None:
            return dataset
        if seed not in cache:
            cache[seed] = load_dataset(train.dataset, data_dir=train.data_dir,
                                       download=train.download, seed=seed,
                                       **train.data_options)  # fmt: skip
        return cache[seed]

    first = data_of(cfg.seeds[0])
    probe = cfg.cell_config(cfg.scales[0], cfg.activations[0], cfg.seeds[0])
    bn_model = probe.spec(first, bn=True).build(seed=probe.seed)
    dtype = next(bn_model.parameters()).dtype  # as built (the cells train in train.dtype)
    layers, feeds = weight_layers(bn_model, first.x_train[:2].to(dtype))
    every = train.probe_every
    coords = {
        "scale": cfg.scales, "activation": cfg.activations, "variant": list(train.variants),
        "seed": cfg.seeds, "layer": layers, "feeds_bn": [int(f) for f in feeds],
        "grad_step": list(range(min(cfg.grad_steps, train.steps))),
        "probe_step": list(range(0, train.steps, every)) if every else [],
        "train_step": list(range(train.steps)),
    }  # fmt: skip
    rules = OutcomeRules()
    work = _work_dir(out)
    with writer_lock(out):
        remove_stale_temporaries(out)
        if work.is_dir() and not work.is_symlink():  # a killed sweep's scratch runs
            shutil.rmtree(work)
        done = _prepare(out, coords, cfg.to_dict(), rules.to_dict(), overwrite, str(device))
        grid = [(i, j, k) for j in range(len(cfg.activations)) for i in range(len(cfg.scales))
                for k in range(len(cfg.seeds))]  # fmt: skip
        todo = [c for c in grid if done is None or not done[c[0], c[1], :, c[2]].all()]
        try:
            for count, (i, j, k) in enumerate(todo, 1):
                scale, act, seed = cfg.scales[i], cfg.activations[j], cfg.seeds[k]
                name = f"{act}_scale{scale:g}_seed{seed}"
                run_dir = Path(keep_runs) / name if keep_runs is not None else work / name
                data = data_of(seed)
                grads = _Gradients(layers, len(coords["grad_step"]))
                t0 = time.perf_counter()
                train_pair(cfg.cell_config(scale, act, seed), run_dir, overwrite=True,
                           hooks=[grads], dataset=data)  # fmt: skip
                wall = time.perf_counter() - t0
                cells = {v: _cells(run_dir / RUN_FILE, variant, grads, coords, data, rules)
                         for v, variant in enumerate(coords["variant"])}  # fmt: skip
                write_pair(out, (i, j, k), cells,
                           {"wall_s": wall, "threads": torch.get_num_threads()})  # fmt: skip
                if keep_runs is None:
                    shutil.rmtree(run_dir)
                if progress is not None:
                    progress(count, len(todo))
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(work)
    return out
