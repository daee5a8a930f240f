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


def _recording(a: torch.Tensor):
    """``v -> A v`` that keeps every ``z^T A z`` it was asked for (Hutchinson's samples)."""
    seen: list[float] = []

    def matvec(v: torch.Tensor) -> torch.Tensor:
        out = a @ v
        seen.append(float(v @ out))
        return out

    return matvec, seen


def test_hutchinson_is_the_mean_of_its_samples_with_their_standard_error() -> None:
    """value = mean of z^T A z, stderr = sample std (ddof 1) / sqrt(s), stopping at the first
    s >= min_samples with stderr <= rtol |value|: one product fewer does not converge."""
    a = _matrix(_decaying()[:40] + 30.0)  # trace ~1.2e3: rtol / |value| would be tiny
    matvec, seen = _recording(a)
    res = hutchinson(matvec, 40, rtol=0.05, max_products=500, seed=3)
    s = np.array(seen)
    assert res.converged and res.method == "hutchinson" and res.samples == res.products == len(s)
    np.testing.assert_allclose(res.value, s.mean(), rtol=1e-15)
    np.testing.assert_allclose(res.stderr, s.std(ddof=1) / np.sqrt(len(s)), rtol=1e-12)
    assert res.stderr <= 0.05 * abs(res.value) and len(s) > 10
    short = hutchinson(lambda v: a @ v, 40, rtol=0.05, max_products=len(s) - 1, seed=3)
    assert not short.converged and short.products == len(s) - 1
    assert short.stderr > 0.05 * abs(short.value)


def test_an_exact_estimate_stops_at_min_samples() -> None:
    """z^T I z = n for every Rademacher z: stderr 0 <= rtol |n| (rtol 0 included) after
    exactly min_samples (10 by default); two samples give a finite stderr. Hutch++ with a
    loose rtol stops after its 2 rank products and min_samples samples."""
    eye = torch.eye(30, dtype=F64)
    for rtol in (0.0, 0.5):
        res = hutchinson(lambda v: eye @ v, 30, rtol=rtol, max_products=100)
        assert (res.value, res.stderr, res.products, res.converged) == (30.0, 0.0, 10, True)
    pp = hutch_plus_plus(lambda v: eye @ v, 30, rtol=0.5, max_products=100, rank=5)
    assert pp.converged and pp.products == 2 * 5 + 10 and pp.samples == 10
    np.testing.assert_allclose(pp.value, 30.0, rtol=0.1)
    two = hutchinson(lambda v: eye @ v, 30, rtol=1.0, max_products=100, min_samples=2)
    assert two.products == 2 and two.stderr == 0.0 and two.converged


def test_the_seed_alone_sets_the_random_vectors() -> None:
    """The default seed is 0; another seed draws other vectors; the global RNG plays no part."""
    a = _matrix(_decaying()[:40])
    for fn, kw in ((hutchinson, {"rtol": 0.0, "max_products": 12}),
                   (hutch_plus_plus, {"rtol": 0.0, "max_products": 30}),
                   (slq, {"probes": 2, "steps": 5})):  # fmt: skip
        torch.manual_seed(1)
        default = fn(lambda v: a @ v, 40, **kw)
        torch.manual_seed(2)
        zero = fn(lambda v: a @ v, 40, seed=0, **kw)
        one = fn(lambda v: a @ v, 40, seed=1, **kw)
        key = "ritz_values" if fn is slq else "value"
        np.testing.assert_array_equal(getattr(default, key), getattr(zero, key))
        assert not np.array_equal(getattr(default, key), getattr(one, key))


def test_lanczos_stops_at_an_invariant_subspace_of_any_scale_and_keeps_small_couplings() -> None:
    """Two distinct eigenvalues (of size 1e6): the Krylov space has dimension 2, so two
    steps; a coupling of 1.5e-10 between two zero diagonals is kept (it is above 1e-10)."""
    spectrum = np.where(np.arange(30) % 2 == 0, 1e6, 2e6)
    a = _matrix(spectrum, seed=2)
    v = torch.randn(30, generator=torch.Generator().manual_seed(0), dtype=F64)
    alpha, beta = lanczos(lambda x: a @ x, v, 10)
    assert len(alpha) == 2 and len(beta) == 1
    theta = np.linalg.eigvalsh(np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1))
    np.testing.assert_allclose(theta, [1e6, 2e6], rtol=1e-10)
    tiny = torch.tensor([[0.0, 1.5e-10], [1.5e-10, 0.0]], dtype=F64)
    alpha, beta = lanczos(lambda x: tiny @ x, torch.tensor([1.0, 0.0], dtype=F64), 2)
    assert alpha.tolist() == [0.0, 0.0] and beta.tolist() == [1.5e-10]


def test_slq_grid_width_and_arguments() -> None:
    """The grid has ``points`` values (1001 by default) from 5 sigma below the lowest node to
    5 sigma above the highest; sigma defaults to 1 % of the nodes' span; one probe, one step
    and two points are allowed, fewer refused, and so is sigma <= 0."""
    a = _matrix(_decaying()[:40])
    res = slq(lambda v: a @ v, 40, probes=1, steps=6)
    lo, hi = np.nanmin(res.ritz_values), np.nanmax(res.ritz_values)
    assert res.grid.shape == (1001,) and res.sigma == pytest.approx(0.01 * (hi - lo), rel=1e-12)
    assert res.grid[0] == pytest.approx(lo - 5 * res.sigma, rel=1e-12)
    assert res.grid[-1] == pytest.approx(hi + 5 * res.sigma, rel=1e-12)
    small = slq(lambda v: a @ v, 40, probes=1, steps=1, points=2, sigma=0.5)
    assert small.grid.shape == (2,) and small.sigma == 0.5 and small.products == 1
    for bad in ({"probes": 0}, {"steps": 0}, {"points": 1}):
        with pytest.raises(ValueError, match="probes >= 1, steps >= 1 and points >= 2"):
            slq(lambda v: a @ v, 40, **{"probes": 1, "steps": 2, **bad})
    with pytest.raises(ValueError, match="sigma must be > 0"):
        slq(lambda v: a @ v, 40, probes=1, steps=2, sigma=0.0)


def test_a_spectrum_of_one_value_still_gives_a_density() -> None:
    """All nodes equal (span 0): sigma falls back to a tiny width relative to the value, on a
    grid of distinct points, and the density integrates to 1 around it."""
    for value in (0.5, 1e3):
        res = slq(lambda v, c=value: c * v, 20, probes=2, steps=3)
        assert 0 < res.sigma <= 1e-9 * value and len(np.unique(res.grid)) == 1001
        np.testing.assert_allclose(np.trapezoid(res.density, res.grid), 1.0, rtol=1e-6)
        assert res.grid[np.argmax(res.density)] == pytest.approx(value, rel=1e-9)


def test_hutch_plus_plus_rank_budget_and_fields() -> None:
    """rank: a third of the budget, at most 50 (all of it with rtol 0); rank 1 is allowed;
    the budget is never exceeded; rank = n is exact: stderr 0, no samples, converged; a
    budget spent on the sketch alone leaves an infinite stderr, not converged."""
    a = _matrix(_power_law())
    mv = lambda v: a @ v  # noqa: E731
    assert hutch_plus_plus(mv, N, rtol=0.5, max_products=300).rank == 50
    assert hutch_plus_plus(mv, N, rtol=0.5, max_products=30).rank == 10
    spent = hutch_plus_plus(mv, N, rtol=0.0, max_products=301)
    assert spent.rank == 100 and spent.products == 301 and spent.samples == 101
    one = hutch_plus_plus(mv, N, rtol=0.0, max_products=12, rank=1)
    assert one.rank == 1 and one.products == 12 and one.samples == 10
    small = _matrix(_decaying()[:20])
    exact = hutch_plus_plus(lambda v: small @ v, 20, rtol=0.1, max_products=100, rank=20)
    assert (exact.products, exact.samples, exact.stderr, exact.converged) == (40, 0, 0.0, True)
    np.testing.assert_allclose(exact.value, float(torch.trace(small)), rtol=1e-12)
    sketch = hutch_plus_plus(mv, N, rtol=0.1, max_products=20, rank=10)
    assert sketch.samples == 0 and sketch.stderr == np.inf and not sketch.converged


def test_hutch_plus_plus_stops_at_the_first_converged_count_of_the_whole_trace() -> None:
    """The stopping rule measures stderr against |exact + mean|, the whole trace: two large
    outliers over a negative bulk make the deflated mean large and of the other sign."""
    spectrum = np.concatenate([[100.0, 80.0], -np.ones(58) + 0.3 * np.sin(np.arange(58))])
    a = _matrix(spectrum, seed=3)
    res = hutch_plus_plus(lambda v: a @ v, 60, rtol=0.05, max_products=1000, rank=2, seed=2)
    assert res.converged and res.stderr <= 0.05 * abs(res.value) and res.samples > 10
    short = hutch_plus_plus(lambda v: a @ v, 60, rtol=0.05, max_products=res.products - 1,
                            rank=2, seed=2)  # fmt: skip
    assert not short.converged and short.stderr > 0.05 * abs(short.value)
    loose = hutch_plus_plus(lambda v: a @ v, 60, rtol=1e-6, max_products=60, rank=2, seed=2)
    assert not loose.converged and loose.samples == 56


def test_a_zero_matrix_has_a_converged_zero_trace() -> None:
    zero = hutch_plus_plus(lambda v: 0.0 * v, 30, rtol=0.1, max_products=100, rank=4)
    assert (zero.value, zero.stderr, zero.converged, zero.products) == (0.0, 0.0, True, 18)
