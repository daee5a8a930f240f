"""Internal covariate shift, Santurkar et al. (2018) Definition 2.1 (science.md s. 1.2).

How much the gradient of layer i's weights changes when the layers before it take their
update of the same step. Like the gradient probe it is an evaluation: the model is left
exactly as found (:func:`landscape._params.preserved`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape._params import preserved
from landscape.data import Batch, LossFn
from landscape.probes.core import BNMode, by_name, cosine, loss_and_grad, place, saved, setup

__all__ = ["ICSResult", "ics"]


@dataclass
class ICSResult:
    """Output of :func:`ics`; arrays have shape (L,) = one entry per layer."""

    layers: list[str]  # module names, in the order measured
    l2: np.ndarray  # ||G - G'||_2
    cos: np.ndarray  # cos(G, G')
    grad_norm: np.ndarray  # ||G||_2, to put l2 in scale
    lr: float  # of the SGD update; nan when the update was given
    update: str  # "sgd" (-lr * g) or "given" (the caller's update, e.g. the optimizer's step)
    bn_mode: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ics(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    lr: float | None = None,
    *,
    update: Mapping[str, Tensor] | None = None,
    layers: Sequence[str] | None = None,
    bn_mode: BNMode = "train",
    seed: int = 0,
) -> ICSResult:
    """Internal covariate shift, Santurkar et al. (2018) Definition 2.1.

    For layer i with weight W_i, at theta on batch B::

        G  = grad_{W_i} L_B(theta)
        G' = grad_{W_i} L_B(theta'),  theta'_j = theta_j + u_j  for j earlier,
                                      theta'_j = theta_j        otherwise
        l2 = ||G - G'||_2,   cos = <G, G'> / (||G|| ||G'||)

    where u is the update of step t: ``u_j = -lr * grad_j L_B(theta)`` (plain SGD, the paper's
    optimizer) when ``lr`` is given, or the caller's ``update`` (theta_{t+1} - theta_t as the
    loop's optimizer made it: momentum, Adam, weight decay, schedules). To measure the real
    update in your own loop, keep theta_t (parameters and buffers: the step's forward moves
    the BN running statistics, which ``bn_mode="eval"`` uses) and call after
    ``optimizer.step()`` (as :meth:`landscape.probes.inline.InlineProbes.after_update` does)::

        state = lambda: [*model.named_parameters(), *model.named_buffers()]
        before = {n: t.detach().clone() for n, t in state()}
        ...  # forward, backward, optimizer.step()
        update = {n: p.detach() - before[n] for n, p in model.named_parameters()}
        with preserved(model), torch.no_grad():  # back to theta_t, then theta_{t+1} again
            for n, t in state():
                t.copy_(before[n])
            shift = ics(model, loss_fn, batch, update=update)

    "Earlier" parameters are those owned by modules registered before layer i's module in
    ``model.named_modules()`` order (the forward order of sequential models): weights, biases
    and BatchNorm parameters of the earlier layers; layer i's own bias stays at theta. A layer
    with no earlier parameter has ``G' = G`` exactly at no cost. Cost: one backward for all G,
    then one forward+backward per other layer.

    Args:
        model, loss_fn, batch, bn_mode, seed: as for :func:`gradient_probe`.
        lr: the learning rate of a plain SGD update of the earlier layers; or
        update: the earlier layers' actual update, by parameter name (missing names: no
            update). Give exactly one of the two.
        layers: module names to measure, in this order; default every module with a
            trainable ``weight`` of ndim >= 2 (conv and linear layers), in registration order.

    Returns:
        An :class:`ICSResult`.
    """
    if (lr is None) == (update is None):
        raise ValueError("give ics() either lr (a plain SGD step) or update (the actual step)")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive and finite, got {lr!r}")
    train_mode, batch, names, params = setup(model, batch, bn_mode)
    chosen, owner = _layers(model, params, layers)
    given = None if update is None else by_name(update, names, params, "update")
    with preserved(model) as snap, torch.enable_grad():
        model.train(train_mode)
        theta0 = saved(snap, names, params)
        _, g_list = loss_and_grad(model, loss_fn, batch, params, seed)
        steps, alpha = (g_list, -float(lr)) if given is None else (given, 1.0)  # type: ignore[arg-type]
        moved = [False] * len(params)
        rows = []
        for _, module_index, k in chosen:
            for j, p in enumerate(params):
                earlier = owner[j] < module_index
                if earlier != moved[j]:
                    place([p], [theta0[j]], [steps[j]], alpha if earlier else 0.0)
                    moved[j] = earlier
            G = g_list[k]
            if any(moved):
                _, (G2,) = loss_and_grad(model, loss_fn, batch, [params[k]], seed)
            else:
                G2 = G
            G_norm = G.norm()
            cos = cosine((G * G2).sum(), G2.norm(), G_norm)
            rows.append(torch.stack([(G - G2).norm(), cos, G_norm]))
        table = torch.stack(rows).T.detach().cpu().to(torch.float64).numpy()
    rule = "sgd" if given is None else "given"
    lr_value = float("nan") if lr is None else float(lr)
    return ICSResult([name for name, _, _ in chosen], *table, lr_value, rule, bn_mode)


# --- helpers -----------------------------------------------------------------------------


def _layers(
    model: nn.Module, params: list[nn.Parameter], layers: Sequence[str] | None
) -> tuple[list[tuple[str, int, int]], dict[int, int]]:
    """Layers as (module name, module index, weight's index in ``params``), and for each
    parameter index the index of its owning module; modules counted in named_modules() order."""
    position = {id(p): k for k, p in enumerate(params)}
    owner: dict[int, int] = {}
    found: dict[str, tuple[int, int, int]] = {}  # name -> (module index, weight index, ndim)
    for idx, (mn, m) in enumerate(model.named_modules()):
        for pn, p in m._parameters.items():
            k = position.get(id(p))
            if k is not None:
                owner.setdefault(k, idx)  # a shared parameter belongs to its first module
                if pn == "weight":
                    found[mn] = (idx, k, p.ndim)
    if layers is None:
        chosen = [(mn, idx, k) for mn, (idx, k, ndim) in found.items() if ndim >= 2]
    else:
        unknown = [mn for mn in layers if mn not in found]
        if unknown:
            known = [mn for mn, (_, _, ndim) in found.items() if ndim >= 2]
            raise ValueError(
                f"layers {unknown[:3]} have no trainable weight; layers with one: {known[:6]}"
            )
        chosen = [(mn, found[mn][0], found[mn][1]) for mn in layers]
    if not chosen:
        raise ValueError("no layers to measure: the model has no trainable weight of ndim >= 2")
    return chosen, owner
