"""Parameter-dict algebra and exact model-state preservation.

Parameters and directions are ``dict[str, Tensor]`` keyed by the names of
``model.named_parameters()``; every helper here keeps that keying so that a direction can be
stored, reloaded and applied to a rebuilt model by name.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

Params = dict[str, Tensor]

__all__ = [
    "ModelSnapshot",
    "Params",
    "axpy",
    "clone",
    "dot",
    "flatten",
    "get_params",
    "norm",
    "preserved",
    "rng_preserved",
    "scale",
    "set_params",
    "unflatten",
    "zeros_like",
]


def get_params(model: nn.Module, *, trainable_only: bool = True) -> Params:
    """Detached clones of the model's parameters, keyed by name."""
    return {
        n: p.detach().clone()
        for n, p in model.named_parameters()
        if p.requires_grad or not trainable_only
    }


@torch.no_grad()
def set_params(model: nn.Module, params: Mapping[str, Tensor]) -> None:
    """Copy ``params`` into the model's parameters in place (names must exist)."""
    own = dict(model.named_parameters())
    unknown = set(params) - set(own)
    if unknown:
        raise ValueError(f"parameters not in the model: {sorted(unknown)[:3]}")
    for n, v in params.items():
        own[n].copy_(v)


def clone(p: Mapping[str, Tensor]) -> Params:
    return {n: v.detach().clone() for n, v in p.items()}


def zeros_like(p: Mapping[str, Tensor]) -> Params:
    return {n: torch.zeros_like(v) for n, v in p.items()}


def axpy(alpha: float, x: Mapping[str, Tensor], y: Mapping[str, Tensor]) -> Params:
    """Return ``y + alpha * x`` (a new dict; inputs untouched)."""
    return {n: y[n] + alpha * x[n] for n in y}


def scale(alpha: float, x: Mapping[str, Tensor]) -> Params:
    return {n: alpha * v for n, v in x.items()}


def dot(x: Mapping[str, Tensor], y: Mapping[str, Tensor]) -> Tensor:
    """Euclidean inner product ``sum_n <x_n, y_n>`` as a 0-d tensor (no host sync)."""
    terms = [(x[n] * y[n]).sum() for n in x]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def norm(x: Mapping[str, Tensor]) -> Tensor:
    """Euclidean norm of the concatenation of all tensors, as a 0-d tensor: the norm of the
    per-tensor norms (one foreach call, not two small ops per tensor)."""
    values = list(x.values())
    if not values:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(values)))


def flatten(x: Mapping[str, Tensor]) -> Tensor:
    """Concatenate all tensors (in dict order) into one 1-D tensor."""
    return torch.cat([v.reshape(-1) for v in x.values()])


def unflatten(vec: Tensor, like: Mapping[str, Tensor]) -> Params:
    """Inverse of :func:`flatten`, shaped and keyed like ``like``."""
    out: Params = {}
    i = 0
    for n, v in like.items():
        out[n] = vec[i : i + v.numel()].view_as(v)
        i += v.numel()
    if i != vec.numel():
        raise ValueError(f"vector has {vec.numel()} entries, the parameters {i}")
    return out


@dataclass
class ModelSnapshot:
    """Everything a probe could disturb: tensors, gradients, train/eval flags.

    ``state`` holds clones of every parameter and buffer (BN running statistics and
    ``num_batches_tracked`` included); ``grads`` the ``.grad`` of each parameter (or None);
    ``modes`` the ``training`` flag of every submodule.
    """

    state: dict[str, Tensor]
    grads: dict[str, Tensor | None]
    modes: dict[str, bool]

    @classmethod
    def take(cls, model: nn.Module) -> ModelSnapshot:
        live = _tensors(model)
        state = dict(zip(live, (t.detach().clone() for t in live.values())))
        grads = {
            n: (p.grad.detach().clone() if p.grad is not None else None)
            for n, p in model.named_parameters()
        }
        modes = {n: m.training for n, m in model.named_modules()}
        return cls(state, grads, modes)

    @torch.no_grad()
    def restore(self, model: nn.Module) -> None:
        """Put everything back (the snapshot's gradient tensors become the model's)."""
        live = _tensors(model)
        names = [n for n in self.state if n in live]
        if names:  # foreach refuses empty lists: a model without tensors has nothing to copy
            torch._foreach_copy_([live[n] for n in names], [self.state[n] for n in names])
        for n, p in model.named_parameters():
            p.grad = self.grads.get(n)
        for n, m in model.named_modules():
            m.training = self.modes[n]


def _tensors(model: nn.Module) -> dict[str, Tensor]:
    """Every parameter and buffer by its ``state_dict`` name (non-persistent buffers too),
    detached: the ``state_dict`` walk costs ~10x more for the same tensors."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return {n: t.detach() for n, t in named}


@contextlib.contextmanager
def rng_preserved() -> Iterator[None]:
    """Restore Python's, NumPy's, torch's CPU and CUDA generators on exit.

    The states are kept as the generators give them (``landscape.store.rng`` converts them
    for checkpoints, which costs ~10x more: a probe or slice pays this once per call).
    """
    python, numpy = random.getstate(), np.random.get_state()
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[ModelSnapshot]:
    """Leave ``model`` and the global RNGs exactly as found, whatever happens inside.

    Restores parameters, buffers, ``.grad`` and train/eval flags bit for bit; used by
    every probe and slice so that an evaluation never moves the caller's model.
    """
    snap = ModelSnapshot.take(model)
    with rng_preserved():
        try:
            yield snap
        finally:
            snap.restore(model)
