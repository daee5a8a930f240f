"""``fused.cross_entropy``: torch's cross-entropy in the transposed layout, equal to the last bit.

The reference is ``F.cross_entropy`` itself, in float64 (and float32, where the claim is the
same operations on the same numbers, so equality is exact there too).
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.slices import evaluate_grid, fused


def logits(n: int, c: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=dtype) * 3, torch.randint(0, c, (n,), generator=g)


def spy(monkeypatch) -> list[tuple[int, ...]]:
    """Record the shapes that take the transposed path (its log_softmax over dim 0)."""
    seen: list[tuple[int, ...]] = []
    real = F.log_softmax

    def log_softmax(x, dim=None, *args, **kwargs):
        if dim == 0:
            seen.append(tuple(x.shape))
        return real(x, dim, *args, **kwargs)

    monkeypatch.setattr(fused.F, "log_softmax", log_softmax)
    return seen


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n,c", [(256, 3), (512, 10), (1000, 15)])
def test_equals_torch_to_the_last_bit_where_it_transposes(monkeypatch, dtype, n, c):
    seen = spy(monkeypatch)
    z, y = logits(n, c, dtype)
    assert torch.equal(fused.cross_entropy(z, y), F.cross_entropy(z, y))
    assert seen == [(c, n)]


@pytest.mark.parametrize("n,c", [(255, 10), (512, 2), (512, 16), (64, 1000)])
def test_other_shapes_go_to_torch_as_they_are(monkeypatch, n, c):
    seen = spy(monkeypatch)
    z, y = logits(n, c)
    assert torch.equal(fused.cross_entropy(z, y), F.cross_entropy(z, y))
    assert seen == []


def test_bfloat16_logits_under_autocast_go_to_torch(monkeypatch):
    seen = spy(monkeypatch)
    z, y = logits(512, 10, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(fused.cross_entropy(z, y), F.cross_entropy(z, y))
    assert seen == []


def test_soft_targets_and_spatial_outputs_go_to_torch(monkeypatch):
    seen = spy(monkeypatch)
    z, _ = logits(300, 10)
    soft = torch.softmax(torch.randn(300, 10, dtype=torch.float64), 1)
    assert torch.equal(fused.cross_entropy(z, soft), F.cross_entropy(z, soft))
    z3, y3 = torch.randn(300, 10, 4, dtype=torch.float64), torch.randint(0, 10, (300, 4))
    assert torch.equal(fused.cross_entropy(z3, y3), F.cross_entropy(z3, y3))
    assert seen == []


def test_options_pass_through_ignored_targets_weights_and_sums():
    z, y = logits(400, 10)
    y[::7] = -100  # torch's default ignore_index
    w = torch.rand(10, dtype=torch.float64) + 0.5
    for options in ({}, {"weight": w}, {"reduction": "sum"}, {"weight": w, "ignore_index": 3}):
        want = F.cross_entropy(z, y.clamp_min(0) if "ignore_index" in options else y, **options)
        got = fused.cross_entropy(z, y.clamp_min(0) if "ignore_index" in options else y, **options)
        torch.testing.assert_close(got, want, rtol=1e-15, atol=0)


def test_options_pass_through_where_torch_computes_it_too():
    z, y = logits(400, 20)  # 20 classes: torch's own layout
    w = torch.rand(20, dtype=torch.float64) + 0.5
    for options in ({"weight": w}, {"reduction": "sum"}, {"label_smoothing": 0.2}):
        assert torch.equal(fused.cross_entropy(z, y, **options), F.cross_entropy(z, y, **options))
    assert not torch.equal(fused.cross_entropy(z, y, weight=w), F.cross_entropy(z, y))


def test_non_finite_logits_give_torch_s_nan_and_infinity():
    z, y = logits(300, 10)
    z[0, y[0]] = math.inf  # inf - inf: NaN
    assert math.isnan(fused.cross_entropy(z, y)) and math.isnan(F.cross_entropy(z, y))
    z, y = logits(300, 10)
    z[0, y[0]] = -math.inf  # the target's probability is 0: infinite loss
    assert fused.cross_entropy(z, y) == F.cross_entropy(z, y) == math.inf


def test_fuse_takes_torch_s_cross_entropy_and_keeps_everything_else():
    assert fused.fuse(F.cross_entropy) is fused.cross_entropy
    assert fused.fuse(nn.CrossEntropyLoss()) is fused.cross_entropy  # torch's defaults
    w = torch.rand(10, dtype=torch.float64)
    loss = fused.fuse(nn.CrossEntropyLoss(weight=w, ignore_index=2, reduction="sum"))
    assert isinstance(loss, partial) and loss.func is fused.cross_entropy
    assert loss.keywords == {"weight": w, "ignore_index": 2, "reduction": "sum"}
    weighted = fused.fuse(nn.CrossEntropyLoss(weight=w))  # the weight alone is an option too
    assert isinstance(weighted, partial) and weighted.keywords["weight"] is w
    smoothed = nn.CrossEntropyLoss(label_smoothing=0.1)
    assert fused.fuse(smoothed) is smoothed

    class Mine(nn.CrossEntropyLoss):  # a subclass may change forward: left alone
        pass

    mine, nll = Mine(), F.nll_loss
    assert fused.fuse(mine) is mine and fused.fuse(nll) is nll


def test_a_grid_evaluates_torch_s_cross_entropy_through_it(monkeypatch):
    seen = spy(monkeypatch)
    torch.manual_seed(0)
    model = nn.Linear(4, 10).double()
    x, y = torch.randn(300, 4, dtype=torch.float64), torch.randint(0, 10, (300,))
    d = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    res = evaluate_grid(model, F.cross_entropy, [(x, y)], [d], [-1.0, 0.5])
    assert seen == [(10, 300), (10, 300)]  # one batch per point, transposed
    for k, c in enumerate((-1.0, 0.5)):
        moved = {n: p.detach() + c * d[n] for n, p in model.named_parameters()}
        want = F.cross_entropy(torch.func.functional_call(model, moved, (x,)), y)
        assert res.values["loss"][k] == pytest.approx(want.item(), rel=1e-14)
