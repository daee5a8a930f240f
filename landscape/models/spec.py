"""The model registry and ``ModelSpec``: a JSON-safe description that rebuilds a model.

A model is named by a registry name (:data:`MODELS`, filled by :func:`register_model`; the
built-in families live in :mod:`landscape.models.families`) or by an import path
``package.module:factory``. A factory takes the six spec fields (:data:`SPEC_FIELDS`) and
its family-specific options as keywords; options it does not take are rejected with a
message that lists the ones it does. ``ModelSpec.build(seed)`` is reproducible and leaves
the global RNG untouched. ``bn_noise`` is applied to the factory's model afterwards (every
BatchNorm layer made noisy, :mod:`landscape.models.noisy_bn`), so factories never see it.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args

import torch
from torch import nn

from landscape._imports import import_object
from landscape.models.blocks import Activation, Init, make_activation
from landscape.models.noisy_bn import BNNoise, add_bn_noise, check_bn_noise

__all__ = [
    "MODELS",
    "SPEC_FIELDS",
    "ModelSpec",
    "create_model",
    "register_model",
]

MODELS: dict[str, Callable[..., nn.Module]] = {}
SPEC_FIELDS = ("bn", "activation", "init", "init_scale", "input_shape", "num_classes")


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a factory to :data:`MODELS` under ``name``."""

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in MODELS:
            raise ValueError(f"model '{name}' is already registered: pick another name")
        MODELS[name] = factory
        return factory

    return decorator


def _resolve(name: str) -> Callable[..., nn.Module]:
    """The registered factory for ``name``, or the object at import path ``pkg.mod:factory``."""
    if ":" not in name:
        if name not in MODELS:
            raise ValueError(
                f"unknown model '{name}': choose one of {', '.join(sorted(MODELS))} "
                "or give an import path package.module:factory"
            )
        return MODELS[name]
    obj = import_object(name, "model factory")
    if not callable(obj):
        raise ValueError(f"model factory '{name}' is not callable")
    return obj


def _check_options(name: str, factory: Callable[..., nn.Module], kwargs: dict[str, Any]) -> None:
    """Reject options the factory does not take, instead of a TypeError or silent ignoring.

    By convention a catch-all named ``**spec`` receives only the six spec fields (the
    factory forwards them); any other ``**kwargs`` accepts every option.
    """
    params = inspect.signature(factory).parameters
    named = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    catch_all = [n for n, p in params.items() if p.kind is p.VAR_KEYWORD]
    if catch_all == ["spec"]:
        named |= set(SPEC_FIELDS)
    elif catch_all:
        return
    missing = sorted(set(SPEC_FIELDS) - named)
    if missing:
        raise ValueError(f"model factory '{name}' must accept the keyword arguments {missing}")
    unknown = sorted(set(kwargs) - named)
    if unknown:
        options = sorted(named - set(SPEC_FIELDS))
        raise ValueError(
            f"unknown option(s) {unknown} for model '{name}': it accepts {options or 'none'}"
        )


def _jsonable(obj: Any) -> Any:
    """Tuples become lists, recursively, as JSON would make them."""
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    return obj


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model; JSON-safe via :meth:`to_dict`/:meth:`from_dict`."""

    name: str  # registry name or import path "package.module:factory"
    bn: bool = False  # insert BatchNorm after every conv/hidden linear layer
    activation: Activation = "relu"
    init: Init = "glorot"  # Xavier-uniform, as in Santurkar et al.
    init_scale: float = 1.0  # multiplies every weight tensor (ndim >= 2) after init
    input_shape: tuple[int, ...] = (1, 8, 8)
    num_classes: int = 10
    options: dict[str, Any] = field(default_factory=dict)  # family-specific: depth, width, skip...
    # "santurkar": Algorithm 1's noise after every BN layer (training mode only); needs BN
    bn_noise: BNNoise = "none"

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        check_bn_noise(self.bn_noise)
        self.options = _jsonable(dict(self.options))
        make_activation(self.activation)  # raises ValueError for an unknown name
        if self.init not in get_args(Init):
            raise ValueError(f"unknown init '{self.init}': choose one of {get_args(Init)}")
        if not (math.isfinite(self.init_scale) and self.init_scale > 0):
            raise ValueError(f"init_scale must be a positive number, got {self.init_scale}")
        clash = sorted(set(self.options) & set(SPEC_FIELDS))
        if clash:
            raise ValueError(f"options {clash} are ModelSpec fields: set them as fields instead")
        try:
            json.dumps(self.options)
        except TypeError as e:
            raise ValueError(f"model options must be JSON-serialisable: {e}") from e

    def build(self, seed: int | None = None) -> nn.Module:
        """Construct the model.

        Args:
            seed: If given, the model is built under ``torch.random.fork_rng`` with the CPU
                generator seeded to ``seed``: the result is reproducible and the global torch
                RNG state is left exactly as it was. If None, the global RNG is consumed.
                With ``bn_noise``, ``seed`` also seeds the noise (its own generators), so
                the weights are those of the same spec without noise.

        Raises:
            ValueError: bad options, or ``bn_noise`` for a model without BatchNorm layers.
        """
        factory = _resolve(self.name)
        kwargs = {f: getattr(self, f) for f in SPEC_FIELDS} | self.options
        _check_options(self.name, factory, kwargs)
        try:
            if seed is None:
                model = factory(**kwargs)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.default_generator.manual_seed(seed)
                    model = factory(**kwargs)
        except (TypeError, ZeroDivisionError, OverflowError) as exc:  # options of a bad type
            raise ValueError(
                f"model '{self.name}' cannot be built with options {self.options}: {exc}"
            ) from exc
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"model factory '{self.name}' returned {type(model).__name__}, not an nn.Module"
            )
        if self.bn_noise == "santurkar":
            noise_seed = int(torch.randint(2**62, ())) if seed is None else seed
            if not add_bn_noise(model, noise_seed):
                raise ValueError(
                    f"bn_noise={self.bn_noise!r} adds noise after BatchNorm layers, but model "
                    f"'{self.name}' has none: build it with bn=True"
                )
        elif self.bn_noise != "none":
            raise ValueError(f"unknown bn_noise {self.bn_noise!r}")
        return model

    def to_dict(self) -> dict[str, Any]:
        d = _jsonable(dataclasses.asdict(self))
        if d["bn_noise"] == "none":  # the default is left out: specs from before it read equal
            del d["bn_noise"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelSpec keys {unknown}: expected {sorted(known)}")
        return cls(**d)


def create_model(name: str, **options: Any) -> nn.Module:
    """``ModelSpec(name, **spec_fields, bn_noise=..., options=rest).build()`` in one line."""
    known = {k: options.pop(k) for k in (*SPEC_FIELDS, "bn_noise") if k in options}
    return ModelSpec(name, **known, options=options).build()
