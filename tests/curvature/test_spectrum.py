"""hessian_eigenvalues and curvature_along against the dense Hessian (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import landscape as L
from landscape.curvature import HessianOperator, curvature_along, hessian_eigenvalues
from tests.curvature.helpers import (
    CASES,
    F64,
    bn_cnn,
    dense_hessian,
    image_data,
    mlp,
    vector_data,
)


@pytest.mark.parametrize(("name", "make", "data", "bn_mode"), CASES, ids=[c[0] for c in CASES])
def test_both_ends_equal_the_dense_spectrum(name, make, data, bn_mode) -> None:
    model, batches = make(), data()
    exact = np.linalg.eigvalsh(dense_hessian(model, batches, bn_mode == "train").numpy())[::-1]
    k = 3
    res = hessian_eigenvalues(model, F.cross_entropy, batches, k=k, which="both_ends",
                              bn_mode=bn_mode, tol=1e-10, eigenvectors=True)  # fmt: skip
    want = np.concatenate([exact[:k], exact[-k:]])
    np.testing.assert_allclose(res.values, want, rtol=1e-6, atol=1e-9 * abs(exact).max())
    top = hessian_eigenvalues(model, F.cross_entropy, batches, k=2, bn_mode=bn_mode, tol=1e-10)
    np.testing.assert_allclose(top.values, exact[:2], rtol=1e-6)
    low = hessian_eigenvalues(model, F.cross_entropy, batches, k=2, which="smallest",
                              bn_mode=bn_mode, tol=1e-10)  # fmt: skip
    np.testing.assert_allclose(low.values, exact[-2:], rtol=1e-6, atol=1e-9 * abs(exact).max())
    # unit eigenvectors keyed by parameter name, ||H v - lambda v|| small against ||H v||
    assert len(res.vectors) == 2 * k and set(res.vectors[0]) == set(res.names)
    with HessianOperator(model, F.cross_entropy, batches, bn_mode=bn_mode) as op:
        for lam, vec, r in zip(res.values, res.vectors, res.residuals):
            v = [vec[n] for n in op.names]
            hv = torch.cat([t.reshape(-1) for t in op.matvec(v)])
            flat = torch.cat([t.reshape(-1) for t in v])
            assert abs(float(flat.norm()) - 1) < 1e-10
            gap = float((hv - lam * flat).norm())
            assert gap <= 1e-6 * float(hv.norm()) + 1e-12
            assert abs(gap - r) <= 1e-9 * max(1.0, float(hv.norm()))
    assert res.products >= 2 * k and res.residuals.shape == (2 * k,)


def test_largest_is_the_top_not_the_largest_magnitude() -> None:
    """A spectrum whose negative end is larger in magnitude (power iteration's trap)."""
    model, batches = mlp(), vector_data()
    exact = np.linalg.eigvalsh(dense_hessian(model, batches, True).numpy())
    assert abs(exact[0]) < exact[-1]  # here the top is larger; flip the loss' sign to test
    neg = L.batch_loss(lambda m, b: -F.cross_entropy(m(b[0]), b[1]))
    res = hessian_eigenvalues(model, neg, batches, k=1, tol=1e-10)
    np.testing.assert_allclose(res.values, [-exact[0]], rtol=1e-6)  # not -exact[-1]


def test_curvature_along_eigenvectors_gradient_and_dicts() -> None:
    model, batches = bn_cnn(), image_data()
    h = dense_hessian(model, batches, True)
    top = hessian_eigenvalues(model, F.cross_entropy, batches, k=1, eigenvectors=True, tol=1e-10)
    along = curvature_along(model, F.cross_entropy, batches, top.vectors[0])
    np.testing.assert_allclose(along, top.values[0], rtol=1e-8)
    with HessianOperator(model, F.cross_entropy, batches) as op:
        g = torch.cat([t.reshape(-1) for t in op.gradient()])
    want = float(g @ h @ g / (g @ g))
    np.testing.assert_allclose(curvature_along(model, F.cross_entropy, batches), want, rtol=1e-10)
    one = {"4.bias": torch.tensor([1.0, 0.0, 0.0], dtype=F64)}  # missing names are zero
    idx = sum(p.numel() for p in model.parameters()) - 3
    np.testing.assert_allclose(curvature_along(model, F.cross_entropy, batches, one),
                               float(h[idx, idx]), rtol=1e-10)  # fmt: skip
    zero = {"4.bias": torch.zeros(3, dtype=F64)}
    assert np.isnan(curvature_along(model, F.cross_entropy, batches, zero))


def test_bad_requests_are_named() -> None:
    model, batches = mlp(), vector_data()
    size = sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="fewer than its size"):
        hessian_eigenvalues(model, F.cross_entropy, batches, k=size)
    with pytest.raises(ValueError, match="unknown which"):
        hessian_eigenvalues(model, F.cross_entropy, batches, which="LM")
    with pytest.raises(ValueError, match=r"did not converge .* within \d+ products"):
        hessian_eigenvalues(model, F.cross_entropy, batches, k=5, tol=1e-14, max_products=8)
    with pytest.raises(ValueError, match="not among the chosen parameters"):
        curvature_along(model, F.cross_entropy, batches, {"nope": torch.ones(1)})
