"""The built-in model families, registered in :data:`landscape.models.spec.MODELS`.

Every family is built from blocks ``op -> bn -> act`` (:mod:`landscape.models.blocks`)
whose ``bn`` is ``nn.Identity`` in the plain variant, so the BN and plain networks of a
pair differ *only* by BatchNorm layers and their shared layers carry identical parameter
names (``features.0.conv.weight`` in both).

Parameter names, by family::

    vgg, vgg11, vgg_small   features.<i>.conv.{weight,bias}, features.<i>.bn.*,
                            classifier.<j>.linear.*, classifier.<j>.bn.*, classifier.<last>.*
    mlp                     layers.<i>.linear.*, layers.<i>.bn.*, layers.<depth>.*  (output)
    dln                     layers.<i>.linear.weight (no bias by default), layers.<i>.bn.*
    resnet20                stem.conv.*, stem.bn.*, stage<s>.<b>.{conv1,bn1,conv2,bn2}.*,
                            stage<s>.<b>.shortcut.{conv,bn}.* (projection), fc.*
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from landscape.models.blocks import (
    Activation,
    ConvBlock,
    Init,
    LinearBlock,
    initialize,
    make_activation,
)
from landscape.models.spec import register_model

__all__ = [
    "VGG",
    "VGG_A",
    "BasicBlock",
    "FlatNet",
    "ResNet",
    "dln",
    "mlp",
    "resnet20",
    "vgg",
    "vgg11",
    "vgg_small",
]

VGG_A = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


# ----------------------------------------------------------------------------- VGG


class VGG(nn.Module):
    def __init__(self, features: nn.Sequential, classifier: nn.Sequential):
        super().__init__()
        self.features, self.classifier = features, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))  # (B, C, H, W) -> (B, C*H*W)


def _vgg_cfg(depth: int, width: int, input_hw: tuple[int, int]) -> list[int | str]:
    """``depth`` convs over up to 5 stages (extras go to later stages), channels doubling to 8x.

    ``depth=8, width=64`` on 32x32 inputs gives VGG-A.
    """
    if depth < 1 or width < 1:
        raise ValueError(f"vgg needs depth >= 1 and width >= 1, got depth={depth} width={width}")
    stages = max(1, min(5, depth, min(input_hw).bit_length() - 1))
    cfg: list[int | str] = []
    for s in range(stages):
        n = depth // stages + (s >= stages - depth % stages)
        cfg += [width * 2 ** min(s, 3)] * n + ["M"]
    return cfg


def _positive(family: str, **values: Any) -> None:
    """Raise ValueError unless every value is a positive int (the error names option and fix)."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{family}: option {name} must be a positive integer, got {v!r}")


def _widths(family: str, hidden: Any) -> list[int]:
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise ValueError(
            f"{family}: option hidden must be a list of widths, e.g. [64], got {hidden!r}"
        )
    _positive(family, **{f"hidden[{i}]": h for i, h in enumerate(hidden)})
    return list(hidden)


@register_model("vgg")
def vgg(
    *,
    bn: bool,
    activation: Activation,
    init: Init,
    init_scale: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    cfg: Sequence[int | str] | None = None,
    depth: int | None = None,
    width: int | None = None,
    hidden: Sequence[int] = (512, 512),
) -> nn.Module:
    """VGG: 3x3 conv blocks, 2x2 max-pools at ``"M"``, then hidden linear blocks and an output.

    Give either ``cfg`` (ints = conv channels, ``"M"`` = pool) or ``depth``/``width``
    (defaults 8 and 64: VGG-A on 32x32 inputs). ``hidden`` lists the hidden linear widths.
    """
    if len(input_shape) != 3:
        raise ValueError(f"vgg needs input_shape (C, H, W), got {tuple(input_shape)}")
    hidden = _widths("vgg", hidden)
    if cfg is not None and not any(v != "M" for v in cfg):
        raise ValueError(f"vgg: cfg must hold at least one conv width, got {cfg!r}")
    if cfg is None:
        cfg = _vgg_cfg(
            8 if depth is None else depth, 64 if width is None else width, input_shape[1:]
        )
    elif depth is not None or width is not None:
        raise ValueError("vgg: give either cfg or depth/width, not both")
    c, h, w = input_shape
    features: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            features.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
            if h == 0 or w == 0:
                raise ValueError(f"vgg cfg {list(cfg)} pools too often for input {input_shape}")
        elif isinstance(v, int) and not isinstance(v, bool) and v > 0:
            features.append(ConvBlock(c, v, bn, make_activation(activation)))
            c = v
        else:
            raise ValueError(f"vgg cfg entries must be positive ints or 'M', got {v!r}")
    widths = [c * h * w, *hidden]
    head: list[nn.Module] = [
        LinearBlock(a, b, bn, make_activation(activation)) for a, b in itertools.pairwise(widths)
    ]
    head.append(nn.Linear(widths[-1], num_classes))
    net = VGG(nn.Sequential(*features), nn.Sequential(*head))
    return initialize(net, init, init_scale, activation)


@register_model("vgg11")
def vgg11(*, hidden: Sequence[int] = (512, 512), **spec: Any) -> nn.Module:
    """VGG-A (the paper's VGG): ``vgg`` with cfg ``VGG_A``, for 3x32x32 inputs."""
    return vgg(cfg=VGG_A, hidden=hidden, **spec)


@register_model("vgg_small")
def vgg_small(*, width: int = 16, hidden: Sequence[int] = (64,), **spec: Any) -> nn.Module:
    """A CPU-sized VGG for 8x8 inputs: cfg ``[w, w, M, 2w, 2w, M]`` and one hidden layer."""
    _positive("vgg_small", width=width)
    return vgg(cfg=[width, width, "M", 2 * width, 2 * width, "M"], hidden=hidden, **spec)


# ----------------------------------------------------------------------------- MLP and DLN


class FlatNet(nn.Module):
    """Flattens the input, then applies ``layers``."""

    def __init__(self, layers: nn.Sequential):
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))  # (B, *input_shape) -> (B, prod(input_shape))


@register_model("mlp")
def mlp(
    *,
    bn: bool,
    activation: Activation,
    init: Init,
    init_scale: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    depth: int = 3,
    width: int = 128,
) -> nn.Module:
    """``depth`` hidden blocks ``linear -> [BN1d] -> act`` of ``width`` units, then an output."""
    _positive("mlp", depth=depth, width=width)
    widths = [math.prod(input_shape)] + [width] * depth
    layers: list[nn.Module] = [
        LinearBlock(a, b, bn, make_activation(activation)) for a, b in itertools.pairwise(widths)
    ]
    layers.append(nn.Linear(widths[-1], num_classes))
    return initialize(FlatNet(nn.Sequential(*layers)), init, init_scale, activation)


@register_model("dln")
def dln(
    *,
    bn: bool,
    activation: Activation,
    init: Init,
    init_scale: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    depth: int = 25,
    bias: bool = False,
) -> nn.Module:
    """Deep linear network: ``depth`` square linear layers, BN1d after all but the last.

    It has no activation: ``activation`` must stay at its default and is ignored. The width
    is ``prod(input_shape)`` and must equal ``num_classes`` (the output dimension).
    """
    _positive("dln", depth=depth)
    d = math.prod(input_shape)
    if num_classes != d:
        raise ValueError(
            f"dln is square: num_classes ({num_classes}) must equal prod(input_shape) ({d})"
        )
    if activation != "relu":
        raise ValueError(
            f"dln has no activation: leave activation at its default, not {activation!r}"
        )
    layers = [
        LinearBlock(d, d, bn and i < depth - 1, nn.Identity(), bias=bias) for i in range(depth)
    ]
    return initialize(FlatNet(nn.Sequential(*layers)), init, init_scale, "linear")


# ----------------------------------------------------------------------------- ResNet-20


class BasicBlock(nn.Module):
    """``act(bn2(conv2(act(bn1(conv1 x)))) + shortcut(x))``; no shortcut at all if not ``skip``."""

    def __init__(
        self, cin: int, cout: int, stride: int, bn: bool, activation: Activation, skip: bool
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.act2 = make_activation(activation)
        self.shortcut: nn.Module | None = None
        if skip and (stride != 1 or cin != cout):  # projection, as in Li et al.'s ResNet-20
            self.shortcut = ConvBlock(cin, cout, bn, nn.Identity(), kernel=1, stride=stride)
        elif skip:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act2(out)


class ResNet(nn.Module):
    def __init__(self, stem: nn.Module, stages: list[nn.Sequential], fc: nn.Linear):
        super().__init__()
        self.stem = stem
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))  # (B, C, 1, 1) -> (B, C)


@register_model("resnet20")
def resnet20(
    *,
    bn: bool,
    activation: Activation,
    init: Init,
    init_scale: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int = 1,
    skip: bool = True,
) -> nn.Module:
    """CIFAR ResNet-20: stem, 3 stages x 3 basic blocks of 16/32/64 x ``width`` channels.

    ``skip=False`` removes every skip connection, projection shortcuts included (Li et al.'s
    "ResNet-20-noshort"). Global average pooling lets it take 32x32 or 8x8 inputs.
    """
    if len(input_shape) != 3:
        raise ValueError(f"resnet20 needs input_shape (C, H, W), got {tuple(input_shape)}")
    _positive("resnet20", width=width)
    if not isinstance(skip, bool):
        raise ValueError(f"resnet20: option skip must be true or false, got {skip!r}")
    chans = [16 * width, 32 * width, 64 * width]
    stem = ConvBlock(input_shape[0], chans[0], bn, make_activation(activation))
    stages, cin = [], chans[0]
    for s, cout in enumerate(chans):
        first = BasicBlock(cin, cout, 1 if s == 0 else 2, bn, activation, skip)
        rest = [BasicBlock(cout, cout, 1, bn, activation, skip) for _ in range(2)]
        stages.append(nn.Sequential(first, *rest))
        cin = cout
    net = ResNet(stem, stages, nn.Linear(chans[-1], num_classes))
    return initialize(net, init, init_scale, activation)
