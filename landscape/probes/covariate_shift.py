"""Internal covariate shift, Santurkar et al. (2018) Definition 2.1 (science.md s. 1.2).

How much the gradient of layer i's weights changes when the layers before it take their
update of the same step. Like the gradient probe it is an evaluation: the model is left
exactly as found (:func:`landscape._params.preserved`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape._params import preserved
from landscape.data.evaluation import Loss
from landscape.probes.core import BNMode, by_name, cosine, loss_and_grad, place, saved, setup

__all__ = ["ICSResult", "Layers", "ics"]


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
    loss_fn: Loss,
    batch: Any,
    lr: float | None = None,
    *,
    update: Mapping[str, Tensor] | None = None,
    layers: Layers = None,
    bn_mode: BNMode = "train",
    seed: int = 0,
) -> ICSResult:
    """Internal covariate shift, Santurkar et al. (2018) Definition 2.1.

    For layer i with weights W_i, at theta on batch B::

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

        from landscape._params import preserved  # exact restore of params, buffers, flags, RNGs

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
        layers: module names to measure, in this order, or a predicate ``(name, module) ->
            bool``; default every module that owns a trainable parameter of ndim >= 2 (conv
            and linear layers, recurrent layers, attention), in registration order. G is the
            gradient of all the layer's weights together (an LSTM's input and recurrent
            matrices; its biases, like every layer's, stay at theta).

    Returns:
        An :class:`ICSResult`.
    """
    if (lr is None) == (update is None):
        raise ValueError("give ics() either lr (a plain SGD step) or update (the actual step)")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive and finite, got {lr!r}")
    train_mode, batch, names, params = setup(model, batch, bn_mode, loss_fn)
    chosen, owner = _layers(model, params, layers)
    given = None if update is None else by_name(update, names, params, "update")
    with preserved(model) as snap, torch.enable_grad():
        model.train(train_mode)
        theta0 = saved(snap, names, params)
        _, g_list = loss_and_grad(model, loss_fn, batch, params, seed)
        steps, alpha = (g_list, -float(lr)) if given is None else (given, 1.0)  # type: ignore[arg-type]
        moved = [False] * len(params)
        rows = []
        for _, module_index, ks in chosen:
            for j, p in enumerate(params):
                earlier = owner[j] < module_index
                if earlier != moved[j]:
                    place([p], [theta0[j]], [steps[j]], alpha if earlier else 0.0)
                    moved[j] = earlier
            G = torch.cat([g_list[k].reshape(-1) for k in ks])
            if any(moved):
                _, g2 = loss_and_grad(model, loss_fn, batch, [params[k] for k in ks], seed)
                G2 = torch.cat([g.reshape(-1) for g in g2])
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

#: Which layers :func:`ics` measures: module names, a predicate ``(name, module) -> bool``,
#: or None (every module owning a trainable parameter of ndim >= 2).
Layers = Sequence[str] | Callable[[str, nn.Module], bool] | None


def _layers(
    model: nn.Module, params: list[nn.Parameter], layers: Layers
) -> tuple[list[tuple[str, int, list[int]]], dict[int, int]]:
    """Layers as (module name, module index, indices in ``params`` of its weights), and for
    each parameter index the index of its owning module (named_modules() order).

    A module's weights are the trainable parameters it owns itself (not its children's) of
    ndim >= 2: a conv's or linear layer's ``weight``, an LSTM's ``weight_ih_l0`` and
    ``weight_hh_l0``..., attention's ``in_proj_weight``. A module chosen by name or predicate
    that owns none (a BatchNorm) is measured on its ``weight``, else on all it owns.
    """
    position = {id(p): k for k, p in enumerate(params)}
    owner: dict[int, int] = {}
    found: dict[str, tuple[int, list[int], nn.Module]] = {}  # name -> (index, weights, module)
    for idx, (mn, m) in enumerate(model.named_modules()):
        own = [(pn, position[id(p)]) for pn, p in m._parameters.items() if id(p) in position]
        own = [(pn, k) for pn, k in own if owner.setdefault(k, idx) == idx]  # shared: first owner
        if own:
            matrices = [k for _, k in own if params[k].ndim >= 2]
            found[mn] = (idx, matrices or [k for pn, k in own if pn == "weight"] or
                         [k for _, k in own], m)  # fmt: skip
    if layers is None:
        chosen = [mn for mn, (_, ks, _) in found.items() if params[ks[0]].ndim >= 2]
    elif callable(layers):
        chosen = [mn for mn, (_, _, m) in found.items() if layers(mn, m)]
    else:
        chosen = list(layers)
        if unknown := [mn for mn in chosen if mn not in found]:
            raise ValueError(
                f"layers {unknown[:3]} own no trainable weight; layers that do: {list(found)[:6]}"
            )
    if not chosen:
        raise ValueError("no layers to measure: no module owns a trainable weight of ndim >= 2")
    return [(mn, found[mn][0], found[mn][1]) for mn in chosen], owner
