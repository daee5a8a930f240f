"""Building blocks of the model families: activations, ``op -> bn -> act`` blocks, init.

A block's ``bn`` is ``nn.Identity`` in the plain variant, so the BN and plain networks of a
pair differ *only* by BatchNorm layers and their shared layers carry identical parameter
names. Layers followed by BN keep their bias for the same reason; BN makes it redundant,
never wrong.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

__all__ = [
    "WEIGHTED",
    "Activation",
    "ConvBlock",
    "Init",
    "LinearBlock",
    "initialize",
    "make_activation",
]

Activation = Literal["relu", "sigmoid", "tanh"]
Init = Literal["glorot", "kaiming", "default"]

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def make_activation(name: Activation) -> nn.Module:
    """The activation module for ``name`` (never in-place, so hooks see clean inputs)."""
    if name == "relu":
        return nn.ReLU()
    elif name == "sigmoid":
        return nn.Sigmoid()
    elif name == "tanh":
        return nn.Tanh()
    else:
        raise ValueError(f"unknown activation '{name}': choose one of {get_args(Activation)}")


class ConvBlock(nn.Module):
    """``act(bn(conv(x)))``; ``bn`` is ``nn.Identity`` in the plain variant."""

    def __init__(
        self, cin: int, cout: int, bn: bool, act: nn.Module, kernel: int = 3, stride: int = 1
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """``act(bn(linear(x)))``; ``bn`` is ``nn.Identity`` in the plain variant."""

    def __init__(self, fin: int, fout: int, bn: bool, act: nn.Module, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(fin, fout, bias=bias)
        self.bn = nn.BatchNorm1d(fout) if bn else nn.Identity()
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.linear(x)))


@torch.no_grad()
def initialize(
    model: nn.Module, init: Init, init_scale: float = 1.0, nonlinearity: str = "relu"
) -> nn.Module:
    """Initialise every Linear/Conv layer, then multiply every weight tensor by ``init_scale``.

    ``glorot``: Xavier-uniform weights, zero biases (the paper's choice). ``kaiming``:
    Kaiming-normal (fan-in, gain of ``nonlinearity``) weights, zero biases. ``default``: keep
    torch's own initialisation. ``init_scale`` then multiplies every parameter with
    ``ndim >= 2``; BN affine parameters (1-D) and biases are left alone.

    Returns:
        The same ``model``, for chaining in factories.
    """
    for m in model.modules():
        if not isinstance(m, WEIGHTED):
            continue
        if init == "glorot":
            nn.init.xavier_uniform_(m.weight)
        elif init == "kaiming":
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity)
        elif init == "default":
            continue
        else:
            raise ValueError(f"unknown init '{init}': choose one of {get_args(Init)}")
        if m.bias is not None:
            m.bias.zero_()
    for p in model.parameters():
        if p.ndim >= 2:
            p.mul_(init_scale)
    return model
