"""hessian_trace and hessian_density pass every argument on: parameter subsets, BN modes,
seeds (of the random vectors and of dropout), Hutchinson, sigma, points; their defaults and
refusals. Checked against dense float64 Hessians of small models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape.curvature import HessianOperator, hessian_density, hessian_trace
from tests.curvature.helpers import (
    F64,
    bn_cnn,
    dense_hessian,
    dropout_mlp,
    image_data,
    mlp,
    vector_data,
)


def dense_of(op: HessianOperator) -> torch.Tensor:
    eye = torch.eye(op.size, dtype=F64)
    return torch.stack([op.flat_matvec(eye[i]) for i in range(op.size)], dim=1)


def test_trace_of_a_subset_and_of_eval_mode_is_that_hessian_s() -> None:
    """Exact (rank = size): the trace of the block of the chosen parameters, and of the
    Hessian with the running statistics; both ways of taking products agree."""
    model, batches = mlp(), vector_data()
    full = dense_hessian(model, batches, train=True)
    start = sum(p.numel() for p in model.parameters()) - 7 * 3 - 3
    n = full.shape[0] - start
    for product in ("graph", "func"):
        sub = hessian_trace(model, F.cross_entropy, batches, params=["2.weight", "2.bias"],
                            rank=n, max_products=2 * n, product=product)  # fmt: skip
        np.testing.assert_allclose(sub.value, float(torch.trace(full[start:, start:])), rtol=1e-10)
    cnn, images = bn_cnn(), image_data()
    h_eval = dense_hessian(cnn, images, train=False)
    size = h_eval.shape[0]
    ev = hessian_trace(cnn, F.cross_entropy, images, bn_mode="eval", rank=size,
                       max_products=2 * size)  # fmt: skip
    np.testing.assert_allclose(ev.value, float(torch.trace(h_eval)), rtol=1e-10)


def test_trace_with_dropout_is_of_the_hessian_its_seed_draws() -> None:
    model, batches = dropout_mlp(), vector_data()
    size = sum(p.numel() for p in model.parameters())
    for seed in (0, 1):
        with HessianOperator(model, F.cross_entropy, batches, seed=seed) as op:
            exact = float(torch.trace(dense_of(op)))
        res = hessian_trace(model, F.cross_entropy, batches, rank=size, max_products=2 * size,
                            seed=seed)  # fmt: skip
        np.testing.assert_allclose(res.value, exact, rtol=1e-10)
        dens = hessian_density(model, F.cross_entropy, batches, probes=1, steps=size, seed=seed)
        with HessianOperator(model, F.cross_entropy, batches, seed=seed) as op:
            eig = np.linalg.eigvalsh(dense_of(op).numpy())
        np.testing.assert_allclose(np.nanmax(dens.ritz_values), eig[-1], rtol=1e-8)


def test_hutchinson_through_hessian_trace_and_the_seeds() -> None:
    """method="hutchinson": Rademacher samples of the model's Hessian, max_products of them
    with rtol 0 (1000 by default), seeded by ``seed``; Hutch++ too."""
    model, batches = mlp(), vector_data()
    exact = float(torch.trace(dense_hessian(model, batches, train=True)))
    res = hessian_trace(model, F.cross_entropy, batches, method="hutchinson", rtol=0.0)
    assert res.method == "hutchinson" and res.products == res.samples == 1000
    assert not res.converged and abs(res.value - exact) < 4 * res.stderr
    one = hessian_trace(model, F.cross_entropy, batches, method="hutchinson", max_products=1)
    assert one.products == 1 and not one.converged
    for method, budget in (("hutchinson", 20), ("hutch++", 60)):
        a, b = (hessian_trace(model, F.cross_entropy, batches, method=method, rtol=0.0,
                              max_products=budget, seed=s).value for s in (0, 1))  # fmt: skip
        default = hessian_trace(model, F.cross_entropy, batches, method=method, rtol=0.0,
                                max_products=budget)  # fmt: skip
        assert default.value == a != b


def test_trace_defaults_and_refusals() -> None:
    """rtol 1e-2 by default (a looser one stops sooner); rtol 0 and max_products >= 1 are
    allowed, a negative rtol or no budget refused."""
    model, batches = bn_cnn(), image_data()
    default = hessian_trace(model, F.cross_entropy, batches, rank=10)
    same = hessian_trace(model, F.cross_entropy, batches, rank=10, rtol=1e-2, max_products=1000)
    assert (default.value, default.products) == (same.value, same.products)
    loose = hessian_trace(model, F.cross_entropy, batches, rank=10, rtol=0.5)
    assert loose.products < default.products
    for bad in ({"rtol": -0.1}, {"max_products": 0}):
        with pytest.raises(ValueError, match="need rtol >= 0 and max_products >= 1"):
            hessian_trace(model, F.cross_entropy, batches, **bad)


def test_density_arguments_reach_the_quadrature() -> None:
    """params, bn_mode, sigma, points, seed: each changes the density as it says; the
    defaults are 4 probes of 80 steps, 1001 points, seed 0."""
    model, batches = bn_cnn(), image_data()
    size = sum(p.numel() for p in model.parameters())
    default = hessian_density(model, F.cross_entropy, batches)
    assert default.ritz_values.shape == (4, 80) and default.grid.shape == (1001,) and size > 80
    seeded = hessian_density(model, F.cross_entropy, batches, seed=0)
    np.testing.assert_array_equal(default.ritz_values, seeded.ritz_values)
    other = hessian_density(model, F.cross_entropy, batches, probes=1, steps=5, seed=1)
    first = hessian_density(model, F.cross_entropy, batches, probes=1, steps=5, seed=0)
    assert not np.array_equal(other.ritz_values, first.ritz_values)
    mine = hessian_density(model, F.cross_entropy, batches, probes=1, steps=5, sigma=0.5,
                           points=51)  # fmt: skip
    assert mine.sigma == 0.5 and mine.grid.shape == (51,)
    h_eval = dense_hessian(model, batches, train=False)
    ev = hessian_density(model, F.cross_entropy, batches, probes=1, steps=size, bn_mode="eval")
    np.testing.assert_allclose(np.nanmax(ev.ritz_values), np.linalg.eigvalsh(h_eval)[-1],
                               rtol=1e-8)  # fmt: skip
    assert ev.bn_mode == "eval"
    sub = hessian_density(model, F.cross_entropy, batches, probes=1, steps=3, params=["4.bias"])
    block = dense_hessian(model, batches, train=True)[-3:, -3:]
    np.testing.assert_allclose(np.nanmax(sub.ritz_values), np.linalg.eigvalsh(block)[-1],
                               rtol=1e-8)  # fmt: skip
    assert sub.names == ["4.bias"]
