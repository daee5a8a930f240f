"""``landscape check scale-invariance``: BN's scale invariance of a checkpoint or a model.

A target is a checkpoint file (read weights-only, its model rebuilt from its spec) or a model
name (the registry's, or ``package.module:factory``), built as a BN/plain pair from one seed
the way the trainer builds it. The BN network's layers that feed BatchNorm are checked with
:func:`~landscape.probes.scale_invariance.scale_invariance`; the plain twin's same layers are
measured beside them, for contrast (nothing is claimed for them). A plain checkpoint is
measured at the layers its BN twin (its spec with ``bn=True``) normalises.

The batch is the first ``examples`` of a fixed seeded subset of the training split
(:func:`~landscape.data.dataset_batches`), of the checkpoint's data set (with its options
and split seed) or the bundled digits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from torch import nn

from landscape.data import Dataset, dataset_batches, load_dataset, loss_function
from landscape.models import MODELS, Activation, ModelSpec, copy_shared_parameters
from landscape.probes.scale_invariance import (
    DEFAULT_SCALES,
    DEFAULT_TOLERANCE,
    EpsPolicy,
    ScaleInvarianceResult,
    bn_inputs,
    scale_invariance,
)
from landscape.store import TrainingRecord, build_model, load_checkpoint

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "ScaleCheck",
    "ScaleCheckConfig",
    "Twins",
    "check_scale_invariance",
]

#: Which networks of a pair a model name stands for.
Twins = Literal["both", "bn", "plain"]
#: A target that ends so, or names a folder, or exists, is a checkpoint file.
CHECKPOINT_SUFFIXES = (".pt", ".pth")
#: Fields that only say how to build a model named by the registry (not a checkpoint).
_BUILD_FIELDS = ("variant", "seed", "activation", "init_scale", "model_options")


@dataclass
class ScaleCheckConfig:
    """Settings of :func:`check_scale_invariance`."""

    scales: tuple[float, ...] = DEFAULT_SCALES  # the factors a > 0
    tolerance: float = DEFAULT_TOLERANCE  # largest relative deviation that holds
    eps: EpsPolicy = "zero"  # BN's eps: "zero" (the identities as stated) or the layers' own
    examples: int = 256  # one batch of training examples: BN's statistics are the batch's
    dataset: str | None = None  # None: the checkpoint's, else "digits"
    data_options: dict[str, Any] = field(default_factory=dict)  # over the checkpoint's own
    # a model name only: which twins, and how to build them
    variant: Twins = "both"
    seed: int = 0
    activation: Activation = "relu"
    init_scale: float = 1.0
    model_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.examples < 2:
            raise ValueError(
                f"examples (--examples) must be >= 2 (BN in training mode needs a batch), "
                f"got {self.examples}"
            )
        if not (self.tolerance > 0):
            raise ValueError(f"tolerance (--tolerance) must be > 0, got {self.tolerance}")
        if self.variant not in get_args(Twins):
            raise ValueError(f"unknown variant {self.variant!r}: choose one of {get_args(Twins)}")


@dataclass
class ScaleCheck:
    """The results, by network (``bn``, ``plain``, or a checkpoint's variant), and what they
    were measured on."""

    target: str
    results: dict[str, ScaleInvarianceResult]
    config: ScaleCheckConfig
    source: dict[str, Any]  # model spec, data set, examples, checkpoint path

    @property
    def passed(self) -> bool:
        """Some layer feeds BN, and every such layer holds within the tolerance."""
        claimed = [r for r in self.results.values() if r.claimed]
        return bool(claimed) and all(r.passed for r in claimed)


def is_checkpoint_target(target: str) -> bool:
    """A target names a file when it exists, has a checkpoint suffix or a path separator."""
    return Path(target).exists() or target.endswith(CHECKPOINT_SUFFIXES) or "/" in target


def _batch(data: Dataset, config: ScaleCheckConfig) -> Any:
    batches = dataset_batches(data, examples=config.examples, batch_size=config.examples)
    return batches[0]


def _from_checkpoint(path: Path, config: ScaleCheckConfig, trust_factory: bool) -> ScaleCheck:
    changed = [f for f in _BUILD_FIELDS if getattr(config, f) != getattr(ScaleCheckConfig(), f)]
    if changed:
        options = ", ".join(f"{f} (--{f.replace('_', '-').removesuffix('s')})" for f in changed)
        raise ValueError(
            f"{options} only apply to a model name; {path} is a checkpoint, which holds its "
            "own model: leave them out"
        )
    if not path.is_file():
        raise ValueError(
            f"no checkpoint file {path}: give a checkpoint (landscape train writes "
            f"checkpoints/<variant>/step_XXXXXXX.pt) or a model name ({', '.join(MODELS)})"
        )
    ckpt = load_checkpoint(path)  # weights only; CheckpointError (a ValueError) on bad files
    model = build_model(ckpt, trust_factory=trust_factory)
    record = TrainingRecord.of(ckpt)
    name = config.dataset or record.dataset or "digits"
    own = name == record.dataset
    data = load_dataset(
        name,
        data_dir=record.data_dir if own else None,
        seed=record.seed if own else 0,
        **{**(record.data_options if own else {}), **config.data_options},
    )
    batch, loss = _batch(data, config), loss_function(data.task)
    layers = None
    if not any(bn_inputs(model, lambda m: m(batch[0])).values()):
        # a plain network: the layers its BN twin normalises, measured for contrast
        twin = ModelSpec.from_dict({**ckpt.spec, "bn": True, "bn_noise": "none"}).build(seed=0)
        layers = [k for k, v in bn_inputs(twin, lambda m: m(batch[0])).items() if v is not None]
    variant = str(ckpt.extra.get("variant", "model"))
    result = scale_invariance(
        model, loss, batch, scales=config.scales, layers=layers, eps=config.eps,
        tolerance=config.tolerance,
    )  # fmt: skip
    source = {"checkpoint": str(path), "step": ckpt.step, "spec": ckpt.spec, "dataset": name,
              "examples": result.examples}  # fmt: skip
    return ScaleCheck(str(path), {variant: result}, config, source)


def _from_name(name: str, config: ScaleCheckConfig) -> ScaleCheck:
    data = load_dataset(config.dataset or "digits", **config.data_options)
    spec = ModelSpec(
        name,
        bn=True,
        activation=config.activation,
        init_scale=config.init_scale,
        input_shape=tuple(data.input_shape),
        num_classes=data.num_classes,
        options=dict(config.model_options),
    )
    nets: dict[str, nn.Module] = {"bn": spec.build(seed=config.seed)}
    nets["plain"] = dataclasses.replace(spec, bn=False).build(seed=config.seed)
    copy_shared_parameters(nets["bn"], nets["plain"])  # as the trainer starts a pair
    batch, loss = _batch(data, config), loss_function(data.task)
    feeds = bn_inputs(nets["bn"], lambda m: m(batch[0]))
    layers = [k for k, v in feeds.items() if v is not None]
    if not layers:
        raise ValueError(f"model {name!r} built with bn=True has no layer that feeds BatchNorm")
    chosen = ("bn", "plain") if config.variant == "both" else (config.variant,)
    results = {
        v: scale_invariance(
            nets[v], loss, batch, scales=config.scales, layers=layers, eps=config.eps,
            tolerance=config.tolerance,
        )
        for v in chosen
    }  # fmt: skip
    examples = next(iter(results.values())).examples
    source = {"spec": spec.to_dict(), "seed": config.seed, "dataset": config.dataset or "digits",
              "examples": examples}  # fmt: skip
    return ScaleCheck(name, results, config, source)


def check_scale_invariance(
    target: str | Path, config: ScaleCheckConfig | None = None, *, trust_factory: bool = False
) -> ScaleCheck:
    """BN's scale invariance (identities (i)-(iii) of
    :mod:`landscape.probes.scale_invariance`) for a checkpoint file or a model name.

    Args:
        target: A checkpoint file, or a model name (registry or ``package.module:factory``),
            built as a BN/plain pair with ``config.seed``.
        config: The scales, tolerance, eps policy, data and (for a name) how to build.
        trust_factory: Rebuild a checkpoint whose model is named by an import path (runs
            that code).

    Returns:
        A :class:`ScaleCheck`; ``.passed`` is the verdict on the layers that feed BN.

    Raises:
        ValueError: a missing file, an unknown model, bad settings (one line each).
    """
    config = config or ScaleCheckConfig()
    config.validate()
    text = str(target)
    if isinstance(target, Path) or is_checkpoint_target(text):
        return _from_checkpoint(Path(text), config, trust_factory)
    return _from_name(text, config)
