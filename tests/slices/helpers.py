"""Helpers shared by the slice tests: a small BN network in float64, batches, state checks."""

from __future__ import annotations

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
