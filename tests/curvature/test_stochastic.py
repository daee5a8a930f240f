"""Trace and density estimators on matrices with a known spectrum, then on a model's Hessian
against the dense one (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape.curvature import hessian_density, hessian_trace
from landscape.curvature.stochastic import hutch_plus_plus, hutchinson, lanczos, slq
from tests.curvature.helpers import F64, bn_cnn, dense_hessian, image_data

N = 200


def _matrix(spectrum: np.ndarray, seed: int = 0) -> torch.Tensor:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(spectrum),) * 2))
    return torch.from_numpy(q @ np.diag(spectrum) @ q.T)


def _decaying() -> np.ndarray:
    """A Hessian-like spectrum: a few large outliers over a bulk, some negative."""
    rng = np.random.default_rng(5)
    return np.concatenate([[300.0, 120.0, 60.0, 25.0], rng.normal(0.0, 0.5, N - 4)])


def _power_law() -> np.ndarray:
    """PSD with eigenvalues 100 i^-1.5: the decay Hutch++'s 1/m guarantee is about."""
    return 100.0 * np.arange(1, N + 1) ** -1.5


def _mean_error(estimator, a: torch.Tensor, budget: int, seeds=range(20)) -> float:
    exact = float(torch.trace(a))
    return float(np.mean([abs(estimator(lambda v: a @ v, a.shape[0], rtol=0.0,
                                        max_products=budget, seed=s).value - exact)
                          for s in seeds]))  # fmt: skip


def test_hutch_plus_plus_error_falls_like_one_over_the_budget() -> None:
    a = _matrix(_power_law())
    pp = [_mean_error(hutch_plus_plus, a, m) for m in (30, 120)]
    hu = [_mean_error(hutchinson, a, m) for m in (30, 120)]
    assert pp[0] / pp[1] > 3.5  # 4x the budget: 4x less error (1/m) or better
    assert 1.5 < hu[0] / hu[1] < 3.0  # Hutchinson: ~2x (1/sqrt(m))
    assert pp[1] < hu[1] / 10  # and far below Hutchinson at the same budget
    flat = _matrix(_decaying())  # outliers over a flat bulk: deflation still pays
    assert _mean_error(hutch_plus_plus, flat, 120) < _mean_error(hutchinson, flat, 120) / 10


def test_hutch_plus_plus_stops_at_the_tolerance_with_an_honest_error() -> None:
    a = _matrix(_power_law())
    exact = float(torch.trace(a))
    res = hutch_plus_plus(lambda v: a @ v, N, rtol=1e-2, max_products=N, rank=30)
    assert res.converged and res.stderr <= 1e-2 * abs(res.value) and res.products < N
    assert abs(res.value - exact) < 4 * res.stderr + 1e-9
    full = hutch_plus_plus(lambda v: a @ v, N, rtol=1e-3, max_products=2 * N, rank=N)
    np.testing.assert_allclose(full.value, exact, rtol=1e-12)  # rank n: exact, no sampling
    low = hutchinson(lambda v: a @ v, N, rtol=1e-6, max_products=20)
    assert not low.converged and low.products == 20 and "NOT converged" in repr(low)


def test_lanczos_quadrature_is_exact_for_low_degree_polynomials() -> None:
    spectrum = _decaying()[:60]
    a = _matrix(spectrum, seed=1)
    v = torch.randn(60, generator=torch.Generator().manual_seed(0), dtype=F64)
    v = v / v.norm()
    steps = 8
    alpha, beta = lanczos(lambda x: a @ x, v, steps)
    theta, u = np.linalg.eigh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
    tau = u[0] ** 2
    for p in range(2 * steps):  # Gauss quadrature: exact up to degree 2m - 1
        want = float(v @ torch.linalg.matrix_power(a, p) @ v)
        np.testing.assert_allclose((tau * theta**p).sum(), want, rtol=1e-8)


def test_density_integrates_to_one_and_has_the_spectrum_s_moments() -> None:
    spectrum = _decaying()
    a = _matrix(spectrum)
    res = slq(lambda v: a @ v, N, probes=60, steps=40, seed=0)
    np.testing.assert_allclose(np.trapezoid(res.density, res.grid), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.nansum(res.weights, axis=1), 1.0, rtol=1e-10)
    # moments of the broadened density: E[t] = mean, E[t^2] = mean of squares + sigma^2
    m1 = np.trapezoid(res.grid * res.density, res.grid)
    m2 = np.trapezoid(res.grid**2 * res.density, res.grid)
    np.testing.assert_allclose(m1, spectrum.mean(), rtol=0.15)
    np.testing.assert_allclose(m2, (spectrum**2).mean() + res.sigma**2, rtol=0.15)
    # the outliers are nodes: the top one found to 1e-6 by every probe
    np.testing.assert_allclose(np.nanmax(res.ritz_values, axis=1), 300.0, rtol=1e-6)
    assert res.products == 60 * 40


def test_model_trace_and_density_against_the_dense_hessian() -> None:
    model, batches = bn_cnn(), image_data()
    h = dense_hessian(model, batches, True)
    eig = np.linalg.eigvalsh(h.numpy())
    res = hessian_trace(model, F.cross_entropy, batches, rtol=1e-2, max_products=2000, seed=1)
    assert res.converged and res.method == "hutch++" and res.stderr <= 1e-2 * abs(res.value)
    assert abs(res.value - float(torch.trace(h))) < 4 * res.stderr + 1e-9
    n = h.shape[0]
    exact = hessian_trace(model, F.cross_entropy, batches, rank=n, max_products=2 * n)
    np.testing.assert_allclose(exact.value, float(torch.trace(h)), rtol=1e-10)
    dens = hessian_density(model, F.cross_entropy, batches, probes=3, steps=n)
    np.testing.assert_allclose(np.nanmax(dens.ritz_values), eig[-1], rtol=1e-8)
    np.testing.assert_allclose(np.nanmin(dens.ritz_values), eig[0], rtol=1e-6)
    np.testing.assert_allclose(np.trapezoid(dens.density, dens.grid), 1.0, atol=1e-6)


def test_bad_estimator_arguments() -> None:
    model, batches = bn_cnn(), image_data()
    with pytest.raises(ValueError, match="unknown method"):
        hessian_trace(model, F.cross_entropy, batches, method="power")
    with pytest.raises(ValueError, match="2 x rank <= max_products"):
        hessian_trace(model, F.cross_entropy, batches, rank=10, max_products=12)
    with pytest.raises(ValueError, match="probes >= 1"):
        hessian_density(model, F.cross_entropy, batches, probes=0)
