"""Tests for landscape.probes.covariate_shift: Definition 2.1 against deep-copy references."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.probes import ICSResult, ics
from tests.cases import (
    F64,
    RTOL,
    assert_same_state,
    full_state,
    prepared_bn_net,
    regression_batch,
    sq_loss,
    three_layer,
)


def test_ics_leaves_model_untouched():
    model, batch = prepared_bn_net()
    before = full_state(model)
    result = ics(model, nn.functional.cross_entropy, batch, lr=0.1)
    assert_same_state(before, full_state(model))
    assert result.layers == ["0", "4", "8"]


def ics_reference(model: nn.Sequential, loss_fn, batch, lr: float, update=None) -> ICSResult:
    """Definition 2.1 the obvious way: deep copies, earlier = lower Sequential index; the
    earlier layers move by -lr * g, or by ``update`` when given."""
    x, y = batch
    base = copy.deepcopy(model).train()
    named = list(base.named_parameters())
    grads = torch.autograd.grad(loss_fn(base(x), y), [p for _, p in named])
    g = {n: gr for (n, _), gr in zip(named, grads)}
    names, l2, cos, grad_norm = [], [], [], []
    for i, layer in enumerate(model):
        if not isinstance(layer, nn.Linear):
            continue
        moved = copy.deepcopy(model).train()
        with torch.no_grad():
            for n, p in moved.named_parameters():
                if int(n.split(".")[0]) < i:
                    p += -lr * g[n] if update is None else update[n]
        (g2,) = torch.autograd.grad(loss_fn(moved(x), y), [moved[i].weight])
        g1 = g[f"{i}.weight"]
        names.append(str(i))
        l2.append((g1 - g2).norm().item())
        cos.append(((g1 * g2).sum() / (g1.norm() * g2.norm())).item())
        grad_norm.append(g1.norm().item())
    return ICSResult(names, np.array(l2), np.array(cos), np.array(grad_norm), lr, "sgd", "train")


def test_ics_zero_for_one_layer():
    x, y = regression_batch()
    torch.manual_seed(0)
    result = ics(nn.Linear(4, 3).to(F64), sq_loss, (x, y), lr=0.5)
    assert result.layers == [""]
    assert result.l2[0] < 1e-12 and result.cos[0] == pytest.approx(1.0, abs=1e-12)


def test_ics_matches_slow_reference():
    model, batch = three_layer(), regression_batch()
    fast = ics(model, sq_loss, batch, lr=0.1)
    slow = ics_reference(model, sq_loss, batch, lr=0.1)
    assert fast.layers == slow.layers == ["0", "3", "6"]
    np.testing.assert_allclose(fast.l2, slow.l2, rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(fast.cos, slow.cos, rtol=RTOL)
    np.testing.assert_allclose(fast.grad_norm, slow.grad_norm, rtol=RTOL)
    assert fast.l2[0] == 0.0 and np.all(fast.l2[1:] > 1e-6)
    assert np.all(np.abs(fast.cos) <= 1.0)
    assert set(fast.to_dict()) == {"layers", "l2", "cos", "grad_norm", "lr", "update", "bn_mode"}
    assert fast.update == "sgd" and fast.lr == 0.1


def test_ics_with_a_given_update_matches_slow_reference():
    """Any optimizer's step: earlier layers at theta + u, checked against deep copies."""
    model, batch = three_layer(), regression_batch()
    gen = torch.Generator().manual_seed(5)
    update = {
        n: 0.05 * torch.randn(p.shape, generator=gen, dtype=F64)
        for n, p in model.named_parameters()
    }
    fast = ics(model, sq_loss, batch, update=update)
    slow = ics_reference(model, sq_loss, batch, lr=float("nan"), update=update)
    np.testing.assert_allclose(fast.l2, slow.l2, rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(fast.cos, slow.cos, rtol=RTOL)
    np.testing.assert_allclose(fast.grad_norm, slow.grad_norm, rtol=RTOL)
    assert fast.update == "given" and math.isnan(fast.lr) and fast.l2[0] == 0.0
    # the SGD update given explicitly is the lr form
    x, y = batch
    grads = torch.autograd.grad(sq_loss(model.train()(x), y), list(model.parameters()))
    sgd = {n: -0.1 * gr for (n, _), gr in zip(model.named_parameters(), grads)}
    np.testing.assert_allclose(
        ics(model, sq_loss, batch, update=sgd).l2, ics(model, sq_loss, batch, lr=0.1).l2, rtol=1e-12
    )
    # a parameter missing from the update does not move: layer 3's G' sees only layer 0's bias
    only_bias = {"0.bias": update["0.bias"]}
    partial = {n: (u if n == "0.bias" else torch.zeros_like(u)) for n, u in update.items()}
    np.testing.assert_allclose(
        ics(model, sq_loss, batch, update=only_bias).l2,
        ics_reference(model, sq_loss, batch, lr=float("nan"), update=partial).l2,
        rtol=RTOL,
        atol=1e-14,
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "either lr"),
        ({"lr": 0.1, "update": {}}, "either lr"),
        ({"update": {"nope": torch.zeros(1)}}, "not trainable parameters.*nope"),
        ({"update": {"0.weight": torch.zeros(2, 2)}}, r"update\['0.weight'\] has shape"),
    ],
)
def test_ics_update_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ics(three_layer(), sq_loss, regression_batch(), **kwargs)


def test_ics_layer_subset_and_unknown_layer():
    model, batch = three_layer(), regression_batch()
    full = ics(model, sq_loss, batch, lr=0.1)
    sub = ics(model, sq_loss, batch, lr=0.1, layers=["6", "3"])
    assert sub.layers == ["6", "3"]
    np.testing.assert_allclose(sub.l2, full.l2[[2, 1]], rtol=1e-12)
    with pytest.raises(ValueError, match="no trainable weight"):
        ics(model, sq_loss, batch, lr=0.1, layers=["2"])
    with pytest.raises(ValueError, match="lr must be positive"):
        ics(model, sq_loss, batch, lr=0.0)


def ics_reference_by_module(model: nn.Module, loss_fn, batch, lr: float, names) -> np.ndarray:
    """Definition 2.1 with deep copies for any model: a layer's weights are the parameters
    of ndim >= 2 its module owns; "earlier" = owned by a module registered before it."""
    x, y = batch
    order = {mn: i for i, (mn, _) in enumerate(model.named_modules())}
    owner = {}
    for mn, m in model.named_modules():
        for pn, _ in m.named_parameters(recurse=False):
            owner[f"{mn}.{pn}" if mn else pn] = mn
    base = copy.deepcopy(model).train()
    named = dict(base.named_parameters())
    g = dict(zip(named, torch.autograd.grad(loss_fn(base(x), y), list(named.values()))))
    rows = []
    for layer in names:
        mine = [n for n, p in named.items() if owner[n] == layer and p.ndim >= 2]
        moved = copy.deepcopy(model).train()
        with torch.no_grad():
            for n, p in moved.named_parameters():
                if order[owner[n]] < order[layer]:
                    p -= lr * g[n]
        moved_params = dict(moved.named_parameters())
        g2 = torch.autograd.grad(loss_fn(moved(x), y), [moved_params[n] for n in mine])
        G = torch.cat([g[n].reshape(-1) for n in mine])
        G2 = torch.cat([t.reshape(-1) for t in g2])
        rows.append([(G - G2).norm().item(), (G @ G2 / (G.norm() * G2.norm())).item()])
    return np.array(rows)


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 5, num_layers=2, batch_first=True)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                              batch_first=True)  # fmt: skip
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.enc(x).mean(dim=1))


@pytest.mark.parametrize(
    ("make", "shape", "layers"),
    [
        (Recurrent, (6, 7, 3), ["lstm", "head"]),
        (
            Attention,
            (6, 5, 8),
            ["enc.self_attn", "enc.self_attn.out_proj", "enc.linear1", "enc.linear2", "head"],
        ),
    ],
)
def test_ics_sees_recurrent_and_attention_layers(make, shape, layers):
    """Before: only modules with a 2-D ``weight`` counted; an LSTM and attention's
    in_proj_weight were invisible and ``layers=["lstm"]`` was refused."""
    torch.manual_seed(0)
    model = make().to(F64)
    x = torch.randn(*shape, dtype=F64)
    y = torch.randint(0, 4, (shape[0],))
    batch, ce = (x, y), nn.functional.cross_entropy
    fast = ics(model, ce, batch, lr=0.3)
    assert fast.layers == layers
    slow = ics_reference_by_module(model, ce, batch, 0.3, layers)
    np.testing.assert_allclose(fast.l2, slow[:, 0], rtol=RTOL, atol=1e-13)
    np.testing.assert_allclose(fast.cos, slow[:, 1], rtol=RTOL)
    assert np.all(fast.l2[1:] > 1e-8)  # every layer after the first sees a shift
    named = ics(model, ce, batch, lr=0.3, layers=[layers[0]])
    assert named.layers == [layers[0]] and named.l2[0] == fast.l2[0]
    picked = ics(model, ce, batch, lr=0.3, layers=lambda name, m: isinstance(m, nn.Linear))
    assert picked.layers == [n for n in layers if n not in ("lstm", "enc.self_attn")]
    np.testing.assert_allclose(picked.l2, fast.l2[[layers.index(n) for n in picked.layers]],
                               rtol=1e-12)  # fmt: skip


def layer_gradient_norms(model: nn.Module, loss_fn, batch, owned: dict[str, list[str]]):
    """||G|| of each layer at theta, G the gradient of the parameters ``owned[layer]``."""
    x, y = batch
    base = copy.deepcopy(model).train()
    named = dict(base.named_parameters())
    out = []
    for names in owned.values():
        grads = torch.autograd.grad(loss_fn(base(x), y), [named[n] for n in names])
        out.append(torch.cat([g.reshape(-1) for g in grads]).norm().item())
    return np.array(out)


def test_a_layer_with_several_matrices_is_measured_on_its_matrices_only():
    """An LSTM's G holds its weight_ih/weight_hh matrices, not its biases; attention's its
    in_proj_weight, not in_proj_bias."""
    torch.manual_seed(0)
    for model, shape, owned in [
        (Recurrent().to(F64), (6, 7, 3),
         {"lstm": [f"lstm.weight_{k}_l{i}" for i in (0, 1) for k in ("ih", "hh")]}),
        (Attention().to(F64), (6, 5, 8), {"enc.self_attn": ["enc.self_attn.in_proj_weight"]}),
    ]:  # fmt: skip
        x = torch.randn(*shape, dtype=F64)
        batch = (x, torch.randint(0, 4, (shape[0],)))
        layer = next(iter(owned))
        fast = ics(model, nn.functional.cross_entropy, batch, lr=0.3, layers=[layer])
        slow = layer_gradient_norms(model, nn.functional.cross_entropy, batch, owned)
        np.testing.assert_allclose(fast.grad_norm, slow, rtol=RTOL)


def test_a_batchnorm_layer_by_name_is_measured_on_its_weight():
    """BN owns no matrix: chosen by name it is measured on ``weight`` (not its bias), after
    the linear layer before it takes its SGD step."""
    model, batch = three_layer(), regression_batch()
    fast = ics(model, sq_loss, batch, lr=0.1, layers=["1"])
    x, y = batch
    base = copy.deepcopy(model).train()
    g = torch.autograd.grad(sq_loss(base(x), y), list(base.parameters()))
    g = dict(zip(dict(base.named_parameters()), g))
    moved = copy.deepcopy(model).train()
    with torch.no_grad():
        moved[0].weight -= 0.1 * g["0.weight"]
        moved[0].bias -= 0.1 * g["0.bias"]
    (g2,) = torch.autograd.grad(sq_loss(moved(x), y), [moved[1].weight])
    g1 = g["1.weight"]
    assert fast.layers == ["1"]
    np.testing.assert_allclose(fast.grad_norm, [g1.norm().item()], rtol=RTOL)
    np.testing.assert_allclose(fast.l2, [(g1 - g2).norm().item()], rtol=RTOL)


def test_a_predicate_sees_each_layer_s_name():
    model, batch = three_layer(), regression_batch()
    by_name = ics(model, sq_loss, batch, lr=0.1, layers=lambda name, m: name in ("3", "6"))
    assert by_name.layers == ["3", "6"]
    np.testing.assert_array_equal(by_name.l2, ics(model, sq_loss, batch, lr=0.1).l2[1:])


def test_the_default_seed_is_zero_and_results_are_float64():
    """Dropout draws from the seed (0 unless given); a float32 model's rows come back as
    float64 arrays."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 3)).to(F64)
    batch = regression_batch()
    default = ics(model, sq_loss, batch, lr=0.5)
    np.testing.assert_array_equal(default.l2, ics(model, sq_loss, batch, lr=0.5, seed=0).l2)
    assert not np.array_equal(default.l2, ics(model, sq_loss, batch, lr=0.5, seed=1).l2)
    single = ics(three_layer(torch.float32), sq_loss, regression_batch(dtype=torch.float32), lr=0.1)
    assert single.l2.dtype == single.cos.dtype == single.grad_norm.dtype == np.float64
