"""What determines a training run: :class:`TrainConfig`, saved as JSON with every output.

Also the pure functions of a configuration the trainer uses: the checkpoint schedule, the
learning rate of a step and the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np
import torch
from torch import nn

from landscape.data import Dataset
from landscape.models import ModelSpec
from landscape.probes import StepSizes
from landscape.store import VARIANTS, Variant

__all__ = [
    "TrainConfig",
    "checkpoint_schedule",
    "fill_defaults",
    "literal_values",
    "lr_at",
    "make_optimizer",
]


def literal_values(cls: type, field: str) -> tuple[Any, ...] | None:
    """The values a ``Literal`` annotation of ``cls.<field>`` allows (``None`` included for
    ``Literal[...] | None``), or None when the annotation is not a Literal."""
    values: list[Any] = []
    pending = [get_type_hints(cls)[field]]
    while pending:
        hint = pending.pop(0)
        if get_origin(hint) is Literal:
            values += [v for v in get_args(hint) if v not in values]
        elif get_origin(hint) in (Union, UnionType):
            pending += list(get_args(hint))
        elif hint is NoneType:
            values.append(None)
        else:
            return None
    return tuple(values)


#: (type, low, high) of every numeric field; a float range is open at a 0 low bound where 0
#: is meaningless (a learning rate), and "[0, 1)" for momentum; None: unbounded.
_NUMBERS: dict[str, tuple[type, float | None, float | None]] = {
    "init_scale": (float, 0.0, None),
    "lr": (float, 0.0, None),
    "momentum": (float, 0.0, 1.0),
    "weight_decay": (float, 0.0, None),
    "lr_gamma": (float, 0.0, None),
    "batch_size": (int, 1, None),
    "steps": (int, 1, None),
    "seed": (int, None, None),
    "eval_every": (int, 1, None),
    "eval_batch_size": (int, 1, None),
    "checkpoint_every": (int, 0, None),
    "checkpoint_log": (int, 0, None),
    "probe_every": (int, 0, None),
    "probe_low": (float, 0.0, None),
    "probe_high": (float, 0.0, None),
    "probe_count": (int, 1, None),
    "ics_every": (int, 0, None),
    "hessian_every": (int, 0, None),
    "hessian_top_k": (int, 1, None),
    "hessian_examples": (int, 1, None),
    "hessian_batch_size": (int, 1, None),
    "hessian_trace_rtol": (float, 0.0, None),
}
#: Float fields whose lower bound is excluded (a zero learning rate or scale means nothing).
_POSITIVE = {"init_scale", "lr", "lr_gamma", "probe_low", "probe_high"}


def _check_number(name: str, value: Any, kind: type, low: float | None, high: float | None):
    """Raise ValueError unless ``value`` is a finite ``kind`` in the field's range."""
    option = f"--{name.replace('_', '-')}"
    if value is None and name in ("probe_low", "probe_high"):
        return
    what = "an integer" if kind is int else "a number"
    ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise ValueError(f"{name} ({option}) must be {what}, got {value!r}")
    if name == "momentum":
        bad, span = not 0 <= value < 1, "in [0, 1)"
    elif name in _POSITIVE:
        bad, span = not value > 0, "> 0"
    else:
        bad = (low is not None and value < low) or (high is not None and value > high)
        span = f"in [{low}, {high}]" if high is not None else f">= {low}"
    if bad:
        label = "learning rate" if name == "lr" else name
        raise ValueError(f"{label} ({option}) must be {span}, got {value!r}")


@dataclass
class TrainConfig:
    """Everything that determines a training run; saved as JSON with every output.

    The defaults are the bundled CPU demo: a small VGG on the 8x8 digits, plain SGD at the
    paper's fixed learning rate 0.1, batch 128.
    """

    # model
    model: str = "vgg_small"  # registry name or "package.module:factory"
    model_options: dict[str, Any] = field(default_factory=dict)  # family options: depth, width..
    activation: Literal["relu", "sigmoid", "tanh"] = "relu"
    init: Literal["glorot", "kaiming", "default"] = "glorot"  # the paper uses Glorot
    init_scale: float = 1.0  # multiplies every weight tensor after init (science.md s. 2)
    bn: Literal["both", "bn", "plain"] = "both"  # which variants to train
    # the bn variant's BN layers: plain BN, or BN + Santurkar et al.'s noise (Algorithm 1,
    # training mode only; models.noisy_bn): the same initial weights and batches either way
    bn_noise: Literal["none", "santurkar"] = "none"
    dtype: Literal["float32", "float64"] = "float32"
    # data
    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    data_options: dict[str, Any] = field(default_factory=dict)
    # optimisation
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    lr: float = 0.1  # fixed, as in the paper, unless lr_milestones is given
    momentum: float = 0.9  # used by optimizer="momentum"
    weight_decay: float = 0.0
    lr_milestones: list[int] = field(default_factory=list)  # step schedule: lr *= lr_gamma at each
    lr_gamma: float = 0.1
    batch_size: int = 128
    steps: int = 1000
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # evaluation and checkpoints
    eval_every: int = 50
    eval_batch_size: int = 1024
    checkpoint_steps: list[int] = field(default_factory=list)  # explicit steps, or
    checkpoint_every: int = 0  # every k steps, or
    checkpoint_log: int = 0  # this many log-spaced steps; 0 and the last step always kept
    # inline Santurkar probes (science.md s. 1) on the step's training batch: the gradient
    # probe before the update, eta relative to the step's lr; ICS with the optimizer's update
    probe_every: int = 0  # 0: never
    # step sizes eta = lr x [probe_low, probe_high]; None: the paper's grid for the model,
    # [0.5, 4] linear for VGG-like networks, [0.01, 30] log for the deep linear network
    probe_low: float | None = None
    probe_high: float | None = None
    probe_count: int = 8
    probe_spacing: Literal["linear", "log"] | None = None
    probe_direction: Literal["gradient", "random"] = "gradient"
    probe_bn_mode: Literal["train", "eval"] = "train"
    ics_every: int = 0  # internal covariate shift (Definition 2.1); 0: never
    # the inline Hessian (landscape.curvature.InlineHessian): top eigenvalues, trace and the
    # curvature along the gradient of the mean loss over the first hessian_examples training
    # examples (a fixed set, in batches of hessian_batch_size), at theta_t before step t
    hessian_every: int = 0  # 0: never; else every N steps and at the last step
    hessian_top_k: int = 1  # eigenvalues, algebraically largest first
    hessian_examples: int = 512  # clipped to the training set
    hessian_batch_size: int = 256
    hessian_bn_mode: Literal["train", "eval"] = "train"  # batch or running statistics
    hessian_trace_rtol: float = 0.05  # Hutch++ to this relative std. error; 0: its whole budget

    def validate(self) -> None:
        """Raise ValueError naming the first bad field, its option and its valid range.

        Every number is checked (a NaN passes ``x > 0`` checks silently, and an lr_gamma of
        -1 turns descent into ascent), before anything is written.
        """
        for name, (kind, low, high) in _NUMBERS.items():
            _check_number(name, getattr(self, name), kind, low, high)
        for name in ("lr_milestones", "checkpoint_steps"):
            for value in getattr(self, name):
                _check_number(name, value, int, 0, self.steps)
        for f in fields(self):  # the choices are spelled once, in the Literal annotations
            allowed = literal_values(type(self), f.name)
            if allowed is not None and getattr(self, f.name) not in allowed:
                shown = ", ".join(str(v) for v in allowed)
                raise ValueError(f"{f.name} must be one of {shown}, got {getattr(self, f.name)!r}")
        if self.bn_noise != "none" and self.bn == "plain":
            raise ValueError(
                f"bn_noise {self.bn_noise!r} (--bn-noise) goes after BN layers, but --bn plain "
                "trains none: train --bn bn or --bn both"
            )
        noisy_probes = bool(self.probe_every or self.ics_every) and self.probe_bn_mode == "train"
        noisy_hessian = bool(self.hessian_every) and self.hessian_bn_mode == "train"
        if self.bn_noise != "none" and (noisy_probes or noisy_hessian):
            raise ValueError(
                "with --bn-noise every training-mode pass draws new noise, so the inline probes "
                "and Hessian would measure a different function at every evaluation: pass "
                "--probe-bn-mode eval / --hessian-bn-mode eval (plain BN), or train without noise"
            )
        if self.probe_every or self.ics_every or self.probe_low or self.probe_high:
            self.step_sizes()  # validates the grid: low <= high

    def step_sizes(self) -> StepSizes:
        """The probe's step-size grid, eta = lr x multipliers (the paper's per model family)."""
        return StepSizes.for_model(
            self.model,
            self.lr,
            self.probe_count,
            low=self.probe_low,
            high=self.probe_high,
            spacing=self.probe_spacing,
        )

    @property
    def variants(self) -> tuple[Variant, ...]:
        return VARIANTS if self.bn == "both" else (self.bn,)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The configuration of a stored ``to_dict()``; a field it lacks (written before the
        field existed) takes its default."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        return cls(**d)

    def spec(self, dataset: Dataset, bn: bool) -> ModelSpec:
        return ModelSpec(
            name=self.model,
            bn=bn,
            activation=self.activation,
            init=self.init,
            init_scale=self.init_scale,
            input_shape=tuple(dataset.input_shape),
            num_classes=dataset.num_classes,
            options=dict(self.model_options),
            bn_noise=self.bn_noise if bn else "none",
        )


def fill_defaults(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored ``TrainConfig.to_dict()`` with the fields it lacks filled by their defaults.

    A run or checkpoint written before a field existed trained as that field's default
    says (a new field never changes what an old run did), so it compares equal to
    ``to_dict()`` of the same options today. Keys that are not fields are kept as stored.
    """
    return {**TrainConfig().to_dict(), **stored}


def checkpoint_schedule(config: TrainConfig) -> list[int]:
    """Steps (number of updates done) at which checkpoints are written; 0 and the end always."""
    steps = {0, config.steps, *config.checkpoint_steps}
    if config.checkpoint_every:
        steps.update(range(0, config.steps + 1, config.checkpoint_every))
    if config.checkpoint_log:
        grid = np.logspace(0, math.log10(max(config.steps, 1)), config.checkpoint_log)
        steps.update(round(s) for s in grid)
    return sorted(s for s in steps if 0 <= s <= config.steps)


def lr_at(config: TrainConfig, step: int) -> float:
    """Fixed learning rate, multiplied by ``lr_gamma`` at each milestone already passed."""
    passed = sum(1 for m in config.lr_milestones if step >= m)
    return config.lr * config.lr_gamma**passed


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "momentum":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}: choose sgd, momentum or adam")
