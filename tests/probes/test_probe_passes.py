"""How the gradient probe runs its passes: the points written from one flat buffer, conv
weights held channels_last on the CPU, the moved gradients compared with g in batches. Each
is a speed measure (benchmarks/bench_probe.py); here, that none of them changes a value."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import landscape.probes.gradient as gradient
from landscape.probes import gradient_probe
from landscape.probes.core import place, points
from tests.cases import F64, bn_net, image_batch


def _params(dtype, channels_last: bool) -> list[nn.Parameter]:
    model = bn_net(dtype)
    if channels_last:
        model[0].weight.data = model[0].weight.data.contiguous(memory_format=torch.channels_last)
    return list(model.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_point_from_the_flat_buffer_is_place_bit_for_bit(dtype, channels_last):
    params = _params(dtype, channels_last)
    theta0 = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(3)
    d = [torch.randn(p.shape, generator=gen, dtype=dtype) for p in params]
    storages = [p.data_ptr() for p in params]
    twins = [p.detach().clone() for p in params]
    with points(params, theta0, d) as at:
        assert len({p.untyped_storage().data_ptr() for p in params}) == 1  # one buffer
        for alpha in (-0.37, 0.0, 1e-3, -1e39, 2.5):
            at(alpha)
            place(twins, theta0, d, alpha)
            for p, twin in zip(params, twins):
                assert torch.equal(p, twin) or (alpha == -1e39 and not p.isfinite().all())
                assert p.stride() == twin.stride()  # each slot in its parameter's layout
    assert [p.data_ptr() for p in params] == storages  # each .data is back,
    assert all(torch.equal(p, t) for p, t in zip(params, twins))  # with the last point in it


def test_the_parameters_come_back_after_an_error_inside():
    params = _params(torch.float32, True)
    before = [(p.data_ptr(), p.stride()) for p in params]
    theta0 = [p.detach().clone() for p in params]
    with pytest.raises(RuntimeError, match="inside"), points(params, theta0, theta0) as at:
        at(1.0)
        raise RuntimeError("inside")
    assert [(p.data_ptr(), p.stride()) for p in params] == before


def test_parameters_of_two_dtypes_are_written_one_by_one():
    params = [nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2, dtype=F64))]
    theta0 = [p.detach().clone() for p in params]
    with points(params, theta0, theta0) as at:
        at(2.0)
        storages = {p.untyped_storage().data_ptr() for p in params}
        assert len(storages) == 2  # not one buffer: each parameter keeps its own
        assert all(torch.equal(p, 3 * t) for p, t in zip(params, theta0))


def _reference(model, batch, etas):
    """The probe's defining equations, one deep copy per step size, float64."""
    x, y = batch
    g = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    g_flat = torch.cat([t.reshape(-1) for t in g])
    rows = []
    for eta in etas:
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for p, gp in zip(moved.parameters(), g):
                p.sub_(eta * gp)
        loss = F.cross_entropy(moved(x), y)
        m = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, list(moved.parameters()))])
        cos = (m @ g_flat / (m.norm() * g_flat.norm())).item()
        rows.append((loss.item(), (m - g_flat).norm().item(), cos))
    return np.array(rows).T


def test_a_conv_network_probed_on_the_cpu_agrees_with_the_slow_reference():
    """The passes run with the conv weights channels_last (a hook sees it); the values are the
    equations' in float64 all the same, and the model's own tensors keep their layout."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 3),
    ).to(F64)  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    batch = torch.randn(10, 2, 6, 6, generator=gen, dtype=F64), torch.randint(0, 3, (10,))
    seen = []
    model[3].register_forward_pre_hook(lambda m, _: seen.append(m.weight.is_contiguous()))
    storage = model[3].weight.data_ptr()
    etas = [0.05, 0.2, 0.4]
    r = gradient_probe(model, F.cross_entropy, batch, etas)
    loss, dist, cos = _reference(model, batch, etas)
    np.testing.assert_allclose(r.loss, loss, rtol=1e-12)
    np.testing.assert_allclose(r.grad_distance, dist, rtol=1e-10)
    np.testing.assert_allclose(r.grad_cosine, cos, rtol=1e-12)
    assert seen[:4] == [False] * 4  # channels_last inside
    assert model[3].weight.is_contiguous() and model[3].weight.data_ptr() == storage


@pytest.mark.parametrize("rows, batches", [(1, 7), (3, 3)])
def test_comparing_in_batches_of_any_size_gives_the_same_probe(monkeypatch, rows, batches):
    """k = 7 gradients compared all together, or one at a time, or 3, 3 and 1."""
    model, batch = bn_net(F64), image_batch(F64)
    etas = np.linspace(0.01, 0.5, 7)
    together = gradient_probe(model, F.cross_entropy, batch, etas)
    sizes = []
    compare = gradient._compare
    monkeypatch.setattr(gradient, "_compare", lambda m, g: sizes.append(len(m)) or compare(m, g))
    size = sum(p.numel() for p in model.parameters()) * 8
    monkeypatch.setattr(gradient, "HELD_GRADIENT_BYTES", rows * size + size - 1)
    batched = gradient_probe(model, F.cross_entropy, batch, etas)
    assert sizes == [rows] * (7 // rows) + [7 % rows] * (7 % rows > 0) and len(sizes) == batches
    for field in ("loss", "grad_distance", "ratio", "distance", "grad_cosine"):
        np.testing.assert_allclose(getattr(batched, field), getattr(together, field), rtol=1e-14)


def test_a_model_found_in_eval_mode_is_probed_in_the_mode_asked_for():
    """The probe skips ``model.train(mode)`` only when every flag already says so: a model
    found in eval mode is probed with batch statistics under bn_mode="train", and comes back
    in eval mode."""
    model, batch = bn_net(F64), image_batch(F64)
    model[7].p = 0.0  # no dropout: the two probes draw no noise
    trained = gradient_probe(model.train(), F.cross_entropy, batch, [0.1, 0.3])
    found_eval = gradient_probe(model.eval(), F.cross_entropy, batch, [0.1, 0.3])
    evaluated = gradient_probe(model, F.cross_entropy, batch, [0.1, 0.3], bn_mode="eval")
    np.testing.assert_array_equal(found_eval.loss, trained.loss)
    assert not np.allclose(evaluated.loss, trained.loss)  # the modes differ on this model
    assert not any(m.training for m in model.modules())
