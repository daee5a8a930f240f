"""The slice fast path (BatchNorm folding, channels_last) against the plain evaluation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import landscape.slices as S
import landscape.slices.fold as F
from landscape.models import create_model
from landscape.slices import random_directions
from tests.slices.helpers import CE


def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-zero biases and BN state, so that a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            for name, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
                if name in ("bias", "running_mean"):
                    t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) * 0.6 - 0.3)
                elif isinstance(m, nn.modules.batchnorm._BatchNorm) and t.is_floating_point():
                    t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
    return model


def vgg(bn: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("vgg_small", bn=bn, input_shape=(1, 8, 8), num_classes=10)
    return trained_like(model.double())


def data(n=(7, 5)):
    g = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(k, 1, 8, 8, generator=g, dtype=torch.float64),
            torch.randint(0, 10, (k,), generator=g),
        )
        for k in n
    ]


def slow(model, batches, dirs, xs, ys):
    """A fresh copy per point, parameters moved by hand, one big batch, eval mode."""
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    out = np.empty((len(ys), len(xs)))
    for j, b in enumerate(ys):
        for i, a in enumerate(xs):
            m = copy.deepcopy(model).eval()
            with torch.no_grad():
                for n, p in m.named_parameters():
                    p.add_(a * dirs[0][n] + b * dirs[1][n])
                out[j, i] = float(CE(m(x), y))
    return out


@pytest.fixture
def plain_path(monkeypatch):
    monkeypatch.setattr(F, "FOLD_BN", False)
    monkeypatch.setattr(F, "CHANNELS_LAST", False)


def test_vgg_small_folds_every_bn_and_matches_reference():
    model = vgg()
    folded = F.Vehicle.build(copy.deepcopy(model).eval(), channels_last=True)
    assert folded is not None and len(folded.folds) == 5  # 4 conv + 1 linear
    model.train()
    layout = {n: (p.data_ptr(), p.stride()) for n, p in model.named_parameters()}
    before = {n: t.clone() for n, t in model.state_dict().items()}
    dirs = random_directions(model, 2, seed=3, ignore="none")  # BN parameters move too
    xs, ys = np.linspace(-1, 1, 3), np.array([-0.5, 1.0])
    res = S.evaluate_grid(model, CE, data(), dirs, xs, ys)
    np.testing.assert_allclose(res.values["loss"], slow(model, data(), dirs, xs, ys), atol=1e-6)
    assert all((p.data_ptr(), p.stride()) == layout[n] for n, p in model.named_parameters())
    assert all(torch.equal(t, before[n]) for n, t in model.state_dict().items())
    assert model.training


@pytest.mark.parametrize("bn", ["eval", "recalibrate", "train"])
@pytest.mark.parametrize("with_bn", [True, False])
def test_fast_path_equals_plain_path(bn, with_bn, monkeypatch):
    model, batches = vgg(with_bn), data()
    dirs = random_directions(model, 2, seed=0)
    args = (model, CE, batches, dirs, "-1:1:3", "-1:1:2")
    fast = S.evaluate_grid(*args, bn_mode=bn, recalibrate_batches=1).values
    monkeypatch.setattr(F, "FOLD_BN", False)
    monkeypatch.setattr(F, "CHANNELS_LAST", False)
    plain = S.evaluate_grid(*args, bn_mode=bn, recalibrate_batches=1).values
    for name in plain:
        np.testing.assert_allclose(fast[name], plain[name], rtol=0, atol=1e-12)


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3)
        self.fc = nn.Linear(108, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.conv(x))
        h = h.relu() if h.sum() > 0 else h
        return self.fc(h.flatten(1))


def test_untraceable_and_hooked_models_fall_back(plain_path):
    branchy = trained_like(Branchy().double())
    assert F.Vehicle.build(branchy, channels_last=False) is None
    hooked = vgg()
    hooked.features[0].bn.register_forward_hook(lambda m, i, o: o * 2)  # must not be lost
    folded = F.Vehicle.build(copy.deepcopy(hooked).eval(), channels_last=False)
    assert folded is not None and len(folded.folds) == 4  # the hooked block stays unfolded
    for model in (branchy, hooked):
        dirs = random_directions(model, 2, seed=1)
        want = S.evaluate_grid(model, CE, data(), dirs, "-1:1:2", "0:1:2").values["loss"]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(F, "FOLD_BN", True)
            mp.setattr(F, "CHANNELS_LAST", True)
            got = S.evaluate_grid(model, CE, data(), dirs, "-1:1:2", "0:1:2").values["loss"]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
