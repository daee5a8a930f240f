"""The distribution of a layer's inputs (Santurkar et al. 2018, Fig. 1c; science.md s. 1).

Santurkar et al. show that BatchNorm networks train much faster although the distributions
of their layers' inputs change over training about as much as a plain network's: "we sampled
activations of a given layer and visualized their distribution over training steps". The
quantiles of those values, at a few training steps, are that picture.

Like the other probes it is an evaluation: one forward pass, the model left exactly as
found (:func:`landscape._params.preserved`: BN running statistics included).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape._params import preserved
from landscape.data.evaluation import BatchLoss, Loss
from landscape.probes.core import BNMode, first_line, seed_device, setup
from landscape.probes.covariate_shift import Layers, _layers

__all__ = ["ACTIVATION_QUANTILES", "ActivationResult", "activation_quantiles"]

#: TensorBoard's distribution bands (the style of the paper's Fig. 1c): the minimum and
#: maximum, and the quantiles of a normal law at mean -+ 0.5, 1 and 1.5 standard deviations.
ACTIVATION_QUANTILES = (0.0, 0.0668, 0.1587, 0.3085, 0.5, 0.6915, 0.8413, 0.9332, 1.0)


@dataclass
class ActivationResult:
    """Output of :func:`activation_quantiles`: per layer, its inputs over the batch."""

    layers: list[str]  # module names, in the order measured
    quantiles: np.ndarray  # (Q,) levels in [0, 1]
    values: np.ndarray  # (L, Q) the quantiles of every input value of each layer
    mean: np.ndarray  # (L,)
    std: np.ndarray  # (L,) population standard deviation
    bn_mode: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def activation_quantiles(
    model: nn.Module,
    loss_fn: Loss,
    batch: Any,
    *,
    layers: Layers = None,
    quantiles: Sequence[float] = ACTIVATION_QUANTILES,
    bn_mode: BNMode = "train",
    seed: int = 0,
) -> ActivationResult:
    """Quantiles, mean and std of the inputs of chosen layers over one batch.

    A layer's input is the first tensor passed to the module (for a conv or linear layer of a
    ``op -> bn -> act`` network: the previous block's output, after its BatchNorm and
    activation). Every value counts: examples, channels and positions together. Quantiles
    interpolate linearly between order statistics (``numpy.quantile``'s default). A module
    called several times in one forward is measured on its first call.

    Args:
        model, loss_fn, batch, bn_mode, seed: as for :func:`~landscape.probes.gradient_probe`
            (one forward pass of ``loss_fn`` on ``batch``; no gradient is taken).
        layers: as for :func:`~landscape.probes.ics`: module names, a predicate, or None for
            every module that owns a trainable weight of ndim >= 2, in registration order.
        quantiles: levels in [0, 1] (default :data:`ACTIVATION_QUANTILES`).

    Returns:
        An :class:`ActivationResult` (computed in the inputs' dtype, returned as float64).

    Raises:
        ValueError: bad quantiles, layers, batch, loss or bn_mode; a layer the forward pass
            never called.

    Example:
        >>> import torch.nn.functional as F
        >>> net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(1, 1))
        >>> x = torch.arange(5.0).reshape(5, 1)
        >>> r = activation_quantiles(net, F.mse_loss, (x, x), quantiles=[0, 0.5, 0.875])
        >>> r.layers, r.values.tolist(), r.mean.tolist()
        (['1'], [[0.0, 2.0, 3.5]], [2.0])
    """
    q = np.asarray(quantiles, dtype=np.float64).reshape(-1)
    if q.size == 0 or not np.all((q >= 0) & (q <= 1)):
        raise ValueError(f"quantiles must be levels in [0, 1], got {list(quantiles)!r}")
    train_mode, batch, _, params = setup(model, batch, bn_mode, loss_fn)
    chosen = [name for name, _, _ in _layers(model, params, layers)[0]]
    modules = dict(model.named_modules())
    stats: dict[str, Tensor] = {}

    def recorder(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            if name not in stats and args and isinstance(args[0], Tensor):
                stats[name] = _summary(args[0].detach(), q)

        return hook

    handles = [modules[name].register_forward_pre_hook(recorder(name)) for name in chosen]
    try:
        with preserved(model), torch.no_grad():
            model.train(train_mode)
            seed_device(params[0].device, seed)
            _forward(model, loss_fn, batch)
    finally:
        for h in handles:
            h.remove()
    if missing := [name for name in chosen if name not in stats]:
        raise ValueError(f"the forward pass never called layers {missing[:3]} with a tensor")
    table = torch.stack([stats[name] for name in chosen]).cpu().to(torch.float64).numpy()
    return ActivationResult(chosen, q, table[:, 2:], table[:, 0], table[:, 1], bn_mode)


def _summary(x: Tensor, q: np.ndarray) -> Tensor:
    """(2 + Q,): mean, std and the quantiles ``q`` of every value of ``x``.

    By sorting, not ``torch.quantile``: that refuses inputs of more than 2**24 values (a
    VGG layer's inputs over a batch of 128 come close).
    """
    v = x.reshape(-1).sort().values
    pos = torch.as_tensor(q, dtype=torch.float64, device=v.device) * (v.numel() - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    frac = (pos - lo).to(v.dtype)
    values = v[lo] + frac * (v[hi] - v[lo])
    moments = torch.stack([v.mean(), v.std(correction=0)])
    return torch.cat([moments, values])


def _forward(model: nn.Module, loss_fn: Loss, batch: Any) -> None:
    if isinstance(loss_fn, BatchLoss):
        try:
            loss_fn(model, batch)
        except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as err:
            raise ValueError(f"the batch_loss fn fails on the batch: {first_line(err)}") from err
        return
    inputs, _ = batch
    try:
        model(inputs)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise ValueError(f"batch does not fit the model: {first_line(err)}") from err
