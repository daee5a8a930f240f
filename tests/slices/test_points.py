"""A slice's points written from one flat buffer (``_params.point_setter``) against the
tensor-by-tensor ``_params.set_point``, and the BN folds set from the point itself
(``follow``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import landscape.slices.fold as F
from landscape._params import point_setter, set_point
from landscape.models import create_model
from landscape.slices import evaluate_grid, random_directions
from landscape.slices.engine import _targets as targets
from tests.slices.helpers import CE, batches, bn_net, reference
from tests.slices.test_fold import data, trained_like


def live_tensors(dtype: torch.dtype, channels_last: bool) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shapes = [(4, 3, 3, 3), (4,), (5, 7), (1,), (2, 4, 1, 1)]
    out = [torch.randn(s, generator=g, dtype=dtype) for s in shapes]
    if channels_last:
        out[0] = out[0].contiguous(memory_format=torch.channels_last)
    return [nn.Parameter(t) for t in out]


def some_targets(live, n_dirs: int):
    """Bases, and directions that move some tensors only (tensor 3 by none)."""
    g = torch.Generator().manual_seed(1)

    def rand(t):
        return torch.randn(t.shape, generator=g, dtype=t.dtype)

    moves = [[(k, rand(t)) for k in range(n_dirs) if (i + k) % 2 == 0 or i == 0] for i, t in
             enumerate(live)]  # fmt: skip
    moves[3] = []
    return [(t, rand(t), m) for t, m in zip(live, moves)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("n_dirs", [1, 2])
def test_a_point_from_the_flat_buffer_is_set_point_bit_for_bit(dtype, channels_last, n_dirs):
    a, b = live_tensors(dtype, channels_last), live_tensors(dtype, channels_last)
    ta, tb = some_targets(a, n_dirs), some_targets(b, n_dirs)
    coeff_sets = [[0.3, -1.7], [0.0, 2.5], [0.0, 0.0], [1e-30, 7.0], [1.0, -1.0], [-1.0, 1.0]]
    with point_setter(ta, n_dirs) as at:
        assert len({t.untyped_storage().data_ptr() for t in a}) == 1  # one buffer
        for coeffs in coeff_sets:
            at(coeffs[:n_dirs])
            set_point(tb, coeffs[:n_dirs])
            for x, y in zip(a, b):
                assert torch.equal(x, y) and x.stride() == y.stride()
    for x, y, orig in zip(a, b, live_tensors(dtype, channels_last)):
        assert torch.equal(x, y)  # the last point stays, in each tensor's own storage
        assert x.stride() == orig.stride()
    assert len({t.untyped_storage().data_ptr() for t in a}) == len(a)


def test_tensors_of_two_dtypes_are_set_one_by_one():
    live = [nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2, dtype=torch.float64))]
    ts = [(t, torch.zeros_like(t), [(0, torch.full_like(t, 2.0))]) for t in live]
    with point_setter(ts, 1) as at:
        assert live[0].untyped_storage().data_ptr() != live[1].untyped_storage().data_ptr()
        at([0.5])
    assert all(torch.equal(t, torch.ones_like(t)) for t in live)


def test_targets_list_the_moving_directions_only():
    model = nn.Linear(3, 2)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    dirs = [{"weight": torch.ones(2, 3), "bias": torch.zeros(2)}, {"bias": torch.ones(2)}]
    got = {id(t[0]): [k for k, _ in t[2]] for t in targets(model, base, dirs, {}, None)}
    assert got == {id(model.weight): [0], id(model.bias): [1]}


# --- folds set from the point (Vehicle.follow) ------------------------------------------


def vgg() -> nn.Module:
    torch.manual_seed(0)
    model = create_model("vgg_small", bn=True, input_shape=(1, 8, 8), num_classes=10)
    return trained_like(model.double()).eval()


def bn_names(model: nn.Module, attr: str) -> list[str]:
    return [f"{n}.{attr}" for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]


def directions(model: nn.Module, zero: list[str], seed: int = 0):
    """Two random directions over every parameter, zero on the names in ``zero``."""
    dirs = random_directions(model, 2, seed=seed, ignore="none")
    for d in dirs:
        for n in zero:
            d[n] = torch.zeros_like(d[n])
    return dirs


def spy_follow(monkeypatch) -> list[int]:
    """The number of folds each grid's vehicle sets from the point."""
    seen: list[int] = []
    follow = F.Vehicle.follow

    def spy(self, ts):
        out = follow(self, ts)
        seen.append(len(self._affine))
        return out

    monkeypatch.setattr(F.Vehicle, "follow", spy)
    return seen


@pytest.mark.parametrize(
    "fixed, affine",
    [
        ("gamma", 4),  # the 2-D BNs' gamma fixed: their 4 folds are affine (the 1-D one moves)
        ("none", 0),  # every gamma moves: W gamma is bilinear, every fold refreshed
    ],
)
def test_folds_follow_the_point_where_they_are_affine_in_it(fixed, affine, monkeypatch):
    model, xs, ys = vgg(), np.array([-1.0, 0.5]), np.array([0.0, 2.0])
    zero = bn_names(model, "weight") if fixed == "gamma" else []
    dirs = directions(model, zero)  # biases and betas move: the folded biases too
    seen = spy_follow(monkeypatch)
    res = evaluate_grid(model, CE, data(), dirs, xs, ys)
    assert seen == [affine]
    np.testing.assert_allclose(res.values["loss"], reference(model, data(), dirs, xs, ys)[0],
                               rtol=0, atol=1e-10)  # fmt: skip


def test_moving_running_statistics_keep_a_fold_affine_only_through_the_mean(monkeypatch):
    model, xs, ys = vgg(), np.array([-1.0, 0.5]), np.array([0.0, 2.0])
    means, variances = bn_names(model, "running_mean"), bn_names(model, "running_var")
    dirs = directions(model, bn_names(model, "weight"))
    g = torch.Generator().manual_seed(3)
    bufs = dict(model.named_buffers())
    bdirs = [{means[0]: torch.randn(bufs[means[0]].shape, generator=g, dtype=torch.float64)},
             {variances[1]: torch.rand(bufs[variances[1]].shape, generator=g,
                                       dtype=torch.float64)}]  # fmt: skip
    seen = spy_follow(monkeypatch)
    res = evaluate_grid(model, CE, data(), dirs, xs, ys, buffer_directions=bdirs)
    assert seen == [3]  # the 1-D BN's gamma moves, and the second 2-D BN's variance
    want = reference(model, data(), dirs, xs, ys, buffer_directions=bdirs)[0]
    np.testing.assert_allclose(res.values["loss"], want, rtol=0, atol=1e-10)


def test_a_fold_set_from_the_point_is_not_recomputed_from_the_model():
    model = vgg()
    vehicle = F.Vehicle.build(model, channels_last=True)
    assert vehicle is not None
    layer, _, folded = vehicle.folds[0]
    assert folded.weight.is_contiguous(memory_format=torch.channels_last)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    dirs = directions(model, bn_names(model, "weight"))
    vehicle.refresh()
    followed = vehicle.follow(targets(model, base, dirs, {}, None))
    assert followed
    for live, start, moves in followed:  # bases and directions laid out as the folded copy
        assert all(t.stride() == live.stride() for t in (start, *(d for _, d in moves)))
    before = folded.weight.clone()
    with torch.no_grad():
        layer.weight.mul_(3.0)  # not through the point: an affine fold does not see it
    vehicle.refresh()
    assert torch.equal(folded.weight, before)


def test_the_grid_sets_its_points_through_one_buffer():
    model, seen = bn_net(), []
    dirs = random_directions(model, 1, seed=0)  # the weights move, biases and BN do not
    moved = [p for n, p in model.named_parameters() if dirs[0][n].any()]
    assert len(moved) > 1

    def on_point(k, values):
        seen.append(len({p.untyped_storage().data_ptr() for p in moved}))

    evaluate_grid(model, CE, batches(), dirs, "-1:1:3", on_point=on_point)
    assert seen and all(n == 1 for n in seen)


def plain_bn_net() -> nn.Module:
    """A convolution without bias feeding a BN without gamma and beta (``affine=False``),
    as in ResNets' stems: the folds' ``None`` branches."""
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4, affine=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(144, 10),
    )  # fmt: skip
    return trained_like(model.double()).eval()


@pytest.mark.parametrize("variance_moves", [False, True])
def test_folds_without_a_bias_or_affine_bn_equal_the_slow_reference(variance_moves, monkeypatch):
    """Set from the point (nothing moves the scale: ``follow``), or recomputed per point
    (a direction moves the running variance: ``refresh``), against fresh copies moved by
    hand."""
    model, xs, ys = plain_bn_net(), np.array([-1.0, 0.5]), np.array([0.0, 2.0])
    dirs = random_directions(model, 2, seed=0, ignore="none")
    bdirs = None
    if variance_moves:
        g = torch.Generator().manual_seed(3)
        var = model[1].running_var
        bdirs = [{"1.running_var": torch.rand(var.shape, generator=g, dtype=var.dtype)}, {}]
    seen = spy_follow(monkeypatch)
    res = evaluate_grid(model, CE, data(), dirs, xs, ys, buffer_directions=bdirs)
    assert seen == [0 if variance_moves else 1]
    want = reference(model, data(), dirs, xs, ys, buffer_directions=bdirs)[0]
    np.testing.assert_allclose(res.values["loss"], want, rtol=0, atol=1e-10)


def test_follow_folds_the_points_bases_not_the_models_current_tensors():
    """The folded layer at the point c = 0 is the fold of the targets' bases, whatever the
    model's own tensors hold when ``follow`` is called (W0 s and (b0 - mu0) s + beta0, by
    hand in float64)."""
    model = vgg()
    vehicle = F.Vehicle.build(model, channels_last=False)
    assert vehicle is not None
    layer, bn, folded = vehicle.folds[0]
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    dirs = directions(model, bn_names(model, "weight"))
    ts = targets(model, base, dirs, {}, None)
    with torch.no_grad():  # the live tensors away from the bases
        for t in (layer.weight, layer.bias, bn.bias):
            t.mul_(3.0).add_(1.0)
    vehicle.follow(ts)
    names = {id(p): n for n, p in model.named_parameters()}
    w0, b0 = base[names[id(layer.weight)]], base[names[id(layer.bias)]]
    beta0, gamma0 = base[names[id(bn.bias)]], base[names[id(bn.weight)]]
    s = gamma0 / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(folded.weight, w0 * s.view(-1, 1, 1, 1), rtol=1e-13, atol=0)
    want_bias = (b0 - bn.running_mean) * s + beta0
    torch.testing.assert_close(folded.bias, want_bias, rtol=1e-13, atol=1e-15)
