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
from tests.slices.helpers import CE, reference


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
    np.testing.assert_allclose(
        res.values["loss"], reference(model, data(), dirs, xs, ys)[0], atol=1e-6
    )
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


# --- the one-batch check, layers without bias, hooks, the switches, inputs of other forms ---


def check(want: torch.Tensor | tuple, got) -> bool:
    """``Vehicle.agrees`` of a vehicle whose forward returns ``got`` for a model returning
    ``want`` (the model is the identity on ``want``)."""
    inputs = want if isinstance(want, torch.Tensor) else torch.zeros(1)
    model = nn.Identity() if isinstance(want, torch.Tensor) else (lambda x: want)
    return F.Vehicle(lambda x: got, [], []).agrees(model, inputs)


def test_the_check_allows_rounding_of_the_largest_output_and_no_more():
    t = torch.tensor
    assert check(t([100.0, 0.0]), t([100.0, 0.01]))  # 1e-4 of the largest |output|
    assert not check(t([100.0, 0.0]), t([100.0, 1.0]))  # 1e-2 of it: a wrong fold
    assert check(t([[]]), t([[]]))  # nothing to compare
    nan, inf = float("nan"), float("inf")
    assert check(t([nan, 1.0, -inf, inf]), t([nan, 1.0, -inf, inf]))  # same non-finite values
    for odd in (nan, inf, -inf):  # the scale is the largest finite |output|, here 2e-3
        assert not check(t([odd, 1e-3, 2e-3]), t([odd, 1.1e-3, 2e-3]))
    assert not check(t([1.0, 2.0]), t([1.0, 2.0, 3.0]))  # another shape
    assert not check(t([1.0, 2.0]), (t([1.0, 2.0]),))  # not a tensor
    assert not check((t([1.0, 2.0]),), (t([1.0, 2.0]),))  # the model's output is not a tensor


def test_layers_without_bias_fold_and_follow_their_weights():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(64, 5, bias=False), nn.BatchNorm1d(5),
    )  # fmt: skip
    model = trained_like(model.double()).eval()
    x = torch.randn(6, 2, 6, 6, dtype=torch.float64)
    vehicle = F.Vehicle.build(model, channels_last=True)
    assert vehicle is not None and len(vehicle.folds) == 2 and vehicle.convs == []
    for _ in range(2):
        vehicle.refresh()
        with torch.no_grad():
            np.testing.assert_allclose(vehicle(x), model(x), rtol=0, atol=1e-12)
            model[0].weight.mul_(-2.0)  # the model moves: the next refresh follows it
            model[4].weight.add_(0.5)


def test_layers_with_pre_hooks_are_not_folded(caplog):
    model = vgg()
    model.features[0].conv.register_forward_pre_hook(lambda m, i: (i[0] * 2,))
    model.features[1].bn.register_forward_pre_hook(lambda m, i: (i[0] + 1,))
    folded = F.Vehicle.build(copy.deepcopy(model).eval(), channels_last=False)
    assert folded is not None and len(folded.folds) == 3  # 5 BatchNorms, 2 blocks hooked
    dirs = random_directions(model, 2, seed=1)
    with caplog.at_level("WARNING", logger="landscape.slices.fold"):
        got = S.evaluate_grid(model, CE, data(), dirs, "-1:1:2", "0:1:2").values["loss"]
    assert not caplog.records  # the check passed: the fold kept the hooks
    np.testing.assert_allclose(got, reference(model, data(), dirs, [-1.0, 1.0], [0.0, 1.0])[0],
                               rtol=0, atol=1e-10)  # fmt: skip


def test_fold_switch_off_leaves_the_blocked_trunk_only(monkeypatch):
    torch.manual_seed(0)
    model = vgg().float().eval()
    x = data()[0][0].float()
    assert F.Vehicle.build(model, channels_last=True).convs == []  # blocking is asked for
    monkeypatch.setattr(F, "FOLD_BN", False)
    vehicle = F.vehicle(model, x, channels_last=True, running_stats=True, bf16=False)
    assert vehicle is not None and vehicle.folds == [] and len(vehicle.convs) == 4


class Pair(nn.Module):
    """Inputs that are a tuple of tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(3, 4), nn.BatchNorm1d(4)

    def forward(self, xs):
        return self.bn(self.fc(xs[0] * xs[1]))


class Scaled(nn.Module):
    """A 0-d input: a scale of a fixed batch held by the model."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(3, 4), nn.BatchNorm1d(4)
        self.register_buffer("base", torch.randn(5, 3))

    def forward(self, s):
        return self.bn(self.fc(self.base * s))


def test_inputs_that_are_not_a_batch_tensor_are_checked_as_they_are():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    pair = trained_like(Pair().double())
    scaled = trained_like(Scaled().double())
    y = torch.randint(0, 4, (5,), generator=g)
    cases = [
        (pair, [((torch.randn(5, 3, generator=g, dtype=torch.float64),
                  torch.randn(5, 3, generator=g, dtype=torch.float64)), y)]),
        (scaled, [(torch.tensor(1.5, dtype=torch.float64), y)]),
    ]  # fmt: skip
    for model, batches in cases:
        assert F.Vehicle.build(copy.deepcopy(model).eval(), channels_last=False) is not None
        dirs = random_directions(model, 1, seed=0)
        got = S.evaluate_grid(model, CE, batches, dirs, "-1:1:3").values["loss"]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(F, "FOLD_BN", False)
            want = S.evaluate_grid(model, CE, batches, dirs, "-1:1:3").values["loss"]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_the_check_reads_at_most_check_examples():
    """Also for 1-D inputs (token ids): the check's forward sees CHECK_EXAMPLES examples."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 3), nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
    model = trained_like(model.double())
    sizes = []
    model[3].register_forward_hook(lambda m, i, o: sizes.append(len(o)))
    g = torch.Generator().manual_seed(0)
    n = F.CHECK_EXAMPLES + 36
    batch = (torch.randint(0, 10, (n,), generator=g), torch.randint(0, 4, (n,), generator=g))
    S.evaluate_grid(model, CE, [batch], random_directions(model, 1, seed=0), "0:0:1")
    assert sizes == [F.CHECK_EXAMPLES, F.CHECK_EXAMPLES, n]  # model, vehicle, the point


@pytest.mark.parametrize("channels_last", [True, False])
def test_folded_4d_weights_take_the_layout_asked_for(channels_last):
    model = vgg().eval()  # contiguous weights
    x = data()[0][0]
    found = F.vehicle(model, x, channels_last=channels_last, running_stats=True, bf16=False)
    assert found is not None and len(found.folds) == 5
    weights = [f.weight for _, _, f in found.folds if f.weight.ndim == 4]
    assert len(weights) == 4 and weights[0].shape[1] == 1
    # channels_last's own strides (channel stride 1) also for the first convolution's weight,
    # whose one input channel makes both layouts contiguous: torch picks a convolution's
    # layout from those strides, and the whole trunk ran NCHW behind an NCHW-strided one.
    assert all((w.stride(1) == 1) == channels_last for w in weights)
    assert all(w.is_contiguous() != channels_last or w.shape[1] == 1 for w in weights)
