"""Helpers shared by the slice tests: a small BN network in float64, batches, state checks."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

CE = nn.CrossEntropyLoss()


def bn_net(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4)
    ).to(dtype)


def batches(dtype: torch.dtype = torch.float64, sizes=(5, 7, 4)):
    """Batches of unequal size, so that example-weighting matters."""
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(n, 1, 6, 6, generator=g, dtype=dtype), torch.randint(0, 4, (n,), generator=g))
        for n in sizes
    ]


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in model.state_dict().items()}


def assert_same_state(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert all(torch.equal(after[n], t) for n, t in before.items())


def reference(model, data, directions, xs, ys=None, buffer_directions=None):
    """Obviously correct: a fresh copy per point, its parameters (and buffers, with
    ``buffer_directions``) moved by hand, one big batch, eval mode. ``(loss, accuracy)``,
    shaped ``(len(xs),)`` or ``(len(ys), len(xs))``."""
    x_all = torch.cat([x for x, _ in data])
    y_all = torch.cat([y for _, y in data])
    shape = (len(xs),) if ys is None else (len(ys), len(xs))
    loss, acc = np.full(shape, np.nan), np.full(shape, np.nan)
    for cell in np.ndindex(*shape):
        coeffs = [xs[cell[-1]]] + ([] if ys is None else [ys[cell[0]]])
        m = copy.deepcopy(model).eval()
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.copy_(p + sum(c * d[n] for c, d in zip(coeffs, directions)))
            for n, b in m.named_buffers():
                moves = [c * d[n] for c, d in zip(coeffs, buffer_directions or ()) if n in d]
                if moves:
                    b.add_(sum(moves))
            out = m(x_all)
        loss[cell] = float(CE(out, y_all))
        acc[cell] = float((out.argmax(1) == y_all).double().mean())
    return loss, acc
