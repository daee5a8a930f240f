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
    dropout_mlp,
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


def test_defaults_and_what_the_result_records() -> None:
    """One eigenvalue, no vectors, tol 1e-6 and seed 0 by default; bn_mode and which as
    asked; the same call twice gives the same numbers (a seeded start vector)."""
    model, batches = bn_cnn(), image_data()
    default = hessian_eigenvalues(model, F.cross_entropy, batches)
    same = hessian_eigenvalues(model, F.cross_entropy, batches, k=1, tol=1e-6, seed=0)
    assert default.values.shape == (1,) and default.vectors is None
    assert np.array_equal(default.values, same.values) and default.products == same.products
    again = hessian_eigenvalues(model, F.cross_entropy, batches)
    assert np.array_equal(again.values, default.values) and again.products == default.products
    exact = hessian_eigenvalues(model, F.cross_entropy, batches, tol=0.0)
    assert exact.products > default.products  # tol 0: to machine precision, more products
    low = hessian_eigenvalues(model, F.cross_entropy, batches, which="smallest", bn_mode="eval")
    assert (low.which, low.bn_mode) == ("smallest", "eval")
    for bad in ({"k": 0}, {"tol": -1.0}):
        with pytest.raises(ValueError, match="need k >= 1 and tol >= 0"):
            hessian_eigenvalues(model, F.cross_entropy, batches, **bad)


def test_ncv_default_and_bounds() -> None:
    """ncv defaults to max(2 wanted + 2, 4) Lanczos vectors; it must exceed the eigenvalues
    wanted and may be as large as the Hessian."""
    model, batches = mlp(), vector_data()
    size = sum(p.numel() for p in model.parameters())
    for k in (1, 3):
        default = hessian_eigenvalues(model, F.cross_entropy, batches, k=k, tol=1e-10)
        given = hessian_eigenvalues(model, F.cross_entropy, batches, k=k, tol=1e-10,
                                    ncv=max(2 * k + 2, 4))  # fmt: skip
        wider = hessian_eigenvalues(model, F.cross_entropy, batches, k=k, tol=1e-10,
                                    ncv=max(2 * k + 2, 4) + 1)  # fmt: skip
        assert default.products == given.products  # the same Lanczos path, bit for bit:
        assert np.array_equal(default.residuals, given.residuals)
        assert not np.array_equal(wider.residuals, default.residuals)  # another path
    full = hessian_eigenvalues(model, F.cross_entropy, batches, k=2, ncv=size)
    exact = np.linalg.eigvalsh(dense_hessian(model, batches, True).numpy())[::-1]
    np.testing.assert_allclose(full.values, exact[:2], rtol=1e-8)
    with pytest.raises(ValueError, match="ncv must exceed the eigenvalues wanted"):
        hessian_eigenvalues(model, F.cross_entropy, batches, k=2, ncv=2)


def test_the_budget_is_the_products_used() -> None:
    model, batches = mlp(), vector_data()
    with pytest.raises(ValueError, match=r"within 8 products"):
        hessian_eigenvalues(model, F.cross_entropy, batches, k=5, tol=1e-14, max_products=8)


def test_subsets_eval_mode_and_dropout_seeds_reach_the_hessian() -> None:
    """params, bn_mode and seed (dropout masks) of hessian_eigenvalues and curvature_along
    are those of the dense Hessian they name."""
    model, batches = mlp(), vector_data()
    block = dense_hessian(model, batches, True)[-24:, -24:]  # "2.weight", "2.bias"
    sub = hessian_eigenvalues(model, F.cross_entropy, batches, tol=1e-10,
                              params=["2.weight", "2.bias"])  # fmt: skip
    np.testing.assert_allclose(sub.values, np.linalg.eigvalsh(block.numpy())[-1:], rtol=1e-8)
    with HessianOperator(model, F.cross_entropy, batches) as op:
        g = torch.cat([t.reshape(-1) for t in op.gradient()])[-24:]  # the block's gradient
    along = curvature_along(model, F.cross_entropy, batches, params=["2.weight", "2.bias"])
    np.testing.assert_allclose(along, float(g @ block @ g / (g @ g)), rtol=1e-10)
    with pytest.raises(ValueError, match="not among the chosen parameters"):
        curvature_along(model, F.cross_entropy, batches, {"0.bias": torch.ones(7, dtype=F64)},
                        params=["2.weight", "2.bias"])  # fmt: skip
    cnn, images = bn_cnn(), image_data()
    h_eval = dense_hessian(cnn, images, False)
    top = hessian_eigenvalues(cnn, F.cross_entropy, images, bn_mode="eval", tol=1e-10)
    np.testing.assert_allclose(top.values, np.linalg.eigvalsh(h_eval.numpy())[-1:], rtol=1e-8)
    one = {"4.bias": torch.tensor([1.0, 0.0, 0.0], dtype=F64)}
    idx = sum(p.numel() for p in cnn.parameters()) - 3
    np.testing.assert_allclose(
        curvature_along(cnn, F.cross_entropy, images, one, bn_mode="eval"),
        float(h_eval[idx, idx]),
        rtol=1e-10,
    )
    drop = dropout_mlp()
    for seed in (0, 1):
        with HessianOperator(drop, F.cross_entropy, batches, seed=seed) as op:
            eye = torch.eye(op.size, dtype=F64)
            h = torch.stack([op.flat_matvec(eye[i]) for i in range(op.size)], dim=1)
            g = torch.cat([t.reshape(-1) for t in op.gradient()])
        res = hessian_eigenvalues(drop, F.cross_entropy, batches, tol=1e-10, seed=seed)
        np.testing.assert_allclose(res.values, np.linalg.eigvalsh(h.numpy())[-1:], rtol=1e-8)
        kappa = curvature_along(drop, F.cross_entropy, batches, seed=seed)
        np.testing.assert_allclose(kappa, float(g @ h @ g / (g @ g)), rtol=1e-10)
    defaults = (hessian_eigenvalues(drop, F.cross_entropy, batches, tol=1e-10),
                curvature_along(drop, F.cross_entropy, batches))  # fmt: skip
    assert defaults[0].values[0] == hessian_eigenvalues(drop, F.cross_entropy, batches,
                                                        tol=1e-10, seed=0).values[0]  # fmt: skip
    assert defaults[1] == curvature_along(drop, F.cross_entropy, batches, seed=0)


def test_a_float32_model_gets_float32_vectors_and_float64_reductions() -> None:
    """Eigenvectors come in the parameters' dtype (slice directions); curvature_along of a
    float64 direction on a float32 model is that of the direction rounded to float32, with
    its sums taken in float64."""
    model = mlp().float()
    batches = [(x.float(), y) for x, y in vector_data()]
    res = hessian_eigenvalues(model, F.cross_entropy, batches, k=1, tol=1e-4, eigenvectors=True)
    assert all(t.dtype == torch.float32 for t in res.vectors[0].values())
    d64 = {n: torch.randn(p.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
           for n, p in model.named_parameters()}  # fmt: skip
    rounded = {n: t.float() for n, t in d64.items()}
    along = curvature_along(model, F.cross_entropy, batches, d64)
    assert along == curvature_along(model, F.cross_entropy, batches, rounded)
    with HessianOperator(model, F.cross_entropy, batches) as op:
        hv = torch.cat([t.reshape(-1).double() for t in op.matvec([rounded[n] for n in op.names])])
    flat = torch.cat([rounded[n].reshape(-1).double() for n in op.names])
    assert along == pytest.approx(float(flat @ hv) / float(flat @ flat), rel=1e-12)
