"""Randomised estimates from products alone: the trace (Hutchinson, Hutch++) and the spectral
density (stochastic Lanczos quadrature).

- Hutchinson: ``tr(H) = E[z^T H z]`` for Rademacher ``z``; the mean of ``s`` samples has
  standard error ``std / sqrt(s)``.
- Hutch++ (Meyer, Musco, Musco, Woodruff 2021): take ``Q``, an orthonormal basis of ``H S``
  for ``r`` random columns ``S``; then ``tr(H) = tr(Q^T H Q) + tr((I - QQ^T) H (I - QQ^T))``,
  the first term exact, Hutchinson only on the deflated rest, whose variance no longer holds
  the large (outlier) eigenvalues. For a fixed budget of ``m`` products its error falls like
  ``1/m`` instead of ``1/sqrt(m)``.
- SLQ (Lin, Saad, Yang 2016; Ghorbani et al. 2019): ``m`` Lanczos steps from a unit random
  vector give a tridiagonal ``T`` with eigenpairs ``(theta_j, u_j)``; ``tau_j = u_j[0]^2``
  are the Gauss quadrature weights: ``sum_j tau_j f(theta_j) = v^T f(H) v`` exactly for
  polynomials ``f`` of degree < ``2m``. The density is ``sum_j tau_j N(t; theta_j,
  sigma^2)``, averaged over the probe vectors; it integrates to 1.

Every function here takes ``matvec``, a map of flat float64 vectors, so that the tests can
check them on matrices with a known spectrum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = ["DensityResult", "TraceResult", "hutch_plus_plus", "hutchinson", "lanczos", "slq"]

MatVec = Callable[[Tensor], Tensor]


@dataclass
class TraceResult:
    """A trace estimate: ``value`` +- ``stderr`` (one standard error), from ``products``."""

    value: float
    stderr: float
    products: int
    samples: int  # Hutchinson samples (of the deflated rest, for Hutch++)
    method: str
    converged: bool  # stderr <= rtol |value| reached within the budget
    rank: int = 0  # Hutch++: columns of the exact part

    def __repr__(self) -> str:  # pragma: no mutate block
        state = "" if self.converged else "; NOT converged: raise max_products"
        return (f"TraceResult({self.method}: {self.value:.6g} +- {self.stderr:.2g} from "
                f"{self.products} products{state})")  # fmt: skip


def _rademacher(n: int, gen: torch.Generator, device: torch.device, cols: int = 0) -> Tensor:
    shape = (n, cols) if cols else (n,)
    return (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(device, torch.float64)


def hutchinson(
    matvec: MatVec, n: int, *, rtol: float, max_products: int, seed: int = 0,
    min_samples: int = 10, device: torch.device | str = "cpu",
) -> TraceResult:  # fmt: skip
    """Hutchinson until ``stderr <= rtol |mean|`` (after ``min_samples``) or the budget."""
    gen, dev = torch.Generator().manual_seed(seed), torch.device(device)
    samples: list[float] = []
    while len(samples) < max_products:
        z = _rademacher(n, gen, dev)
        samples.append(float(z @ matvec(z)))
        mean, err = _mean_err(samples)
        if len(samples) >= min_samples and err <= rtol * abs(mean):
            break
    mean, err = _mean_err(samples)
    ok = len(samples) >= min_samples and err <= rtol * abs(mean)
    return TraceResult(mean, err, len(samples), len(samples), "hutchinson", ok)


def hutch_plus_plus(
    matvec: MatVec, n: int, *, rtol: float, max_products: int, rank: int | None = None,
    seed: int = 0, min_samples: int = 10, device: torch.device | str = "cpu",
) -> TraceResult:  # fmt: skip
    """Hutch++: the exact trace on ``span(H S)`` (``rank`` columns, ``2 rank`` products),
    Hutchinson on the rest until ``stderr <= rtol |trace|`` or the budget.

    ``rank`` defaults to a third of the budget (Hutch++'s own split) capped at 50; with
    ``rtol=0`` the whole budget is spent (``rank`` = ``max_products // 3``): the fixed-budget
    estimator whose error falls like ``1 / max_products``.
    """
    gen, dev = torch.Generator().manual_seed(seed), torch.device(device)
    r = min(n, rank if rank is not None else min(max_products // 3, 50) if rtol else
            max_products // 3)  # fmt: skip
    if r < 1 or 2 * r > max_products:
        raise ValueError(f"Hutch++ needs 2 x rank <= max_products and rank >= 1 "
                         f"(rank {r}, max_products {max_products})")  # fmt: skip
    sketch = _rademacher(n, gen, dev, r)
    y = torch.stack([matvec(sketch[:, j]) for j in range(r)], dim=1)
    q, _ = torch.linalg.qr(y)
    exact = sum(float(q[:, j] @ matvec(q[:, j])) for j in range(r))
    products, samples = 2 * r, []
    if r < n:
        while products < max_products:
            z = _rademacher(n, gen, dev)
            z = z - q @ (q.T @ z)
            samples.append(float(z @ matvec(z)))
            products += 1
            mean, err = _mean_err(samples)
            if rtol and len(samples) >= min_samples and err <= rtol * abs(exact + mean):
                break
    mean, err = _mean_err(samples) if samples else (0.0, 0.0 if r == n else math.inf)
    ok = r == n or (len(samples) >= min_samples and err <= rtol * abs(exact + mean))
    return TraceResult(exact + mean, err, products, len(samples), "hutch++", ok, r)


def _mean_err(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples, dtype=float)
    if len(a) < 2:
        return float(a.mean()), math.inf
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a)))


def lanczos(matvec: MatVec, v0: Tensor, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` Lanczos steps from ``v0`` with full reorthogonalisation: the diagonal
    ``alpha`` and off-diagonal ``beta`` of the tridiagonal ``T = V^T H V`` (shorter when an
    invariant subspace is found)."""
    v = v0 / torch.linalg.vector_norm(v0)
    basis, alpha, beta = [v], [], []
    for j in range(steps):
        w = matvec(basis[-1])
        a = float(w @ basis[-1])
        alpha.append(a)
        stack = torch.stack(basis, dim=1)
        w = w - stack @ (stack.T @ w)  # full reorthogonalisation, twice (Kahan)
        w = w - stack @ (stack.T @ w)
        b = float(torch.linalg.vector_norm(w))
        if j == steps - 1 or b <= 1e-10 * max(1.0, abs(a)):
            break
        beta.append(b)
        basis.append(w / b)
    return np.asarray(alpha), np.asarray(beta)


@dataclass
class DensityResult:
    """A spectral density ``rho(t)`` on ``grid`` and the quadrature nodes it is made of.

    Attributes:
        grid, density: ``rho`` sampled on ``grid`` (it integrates to 1).
        ritz_values, weights: per probe vector, the nodes ``theta_j`` and weights ``tau_j``
            (each row's weights sum to 1; rows padded with NaN where Lanczos stopped early).
        sigma: The Gaussian broadening.
        products: Hessian-vector products used.
    """

    grid: np.ndarray
    density: np.ndarray
    ritz_values: np.ndarray
    weights: np.ndarray
    sigma: float
    products: int
    bn_mode: str = ""
    names: list[str] = field(default_factory=list, repr=False)

    def __repr__(self) -> str:  # pragma: no mutate block
        lo, hi = np.nanmin(self.ritz_values), np.nanmax(self.ritz_values)
        return (f"DensityResult({self.ritz_values.shape[0]} probes x "
                f"{self.ritz_values.shape[1]} steps: nodes {lo:.4g}..{hi:.4g}, sigma "
                f"{self.sigma:.3g}, {self.products} products)")  # fmt: skip


def slq(
    matvec: MatVec, n: int, *, probes: int, steps: int, sigma: float | None = None,
    points: int = 1001, seed: int = 0, device: torch.device | str = "cpu",
) -> DensityResult:  # fmt: skip
    """Stochastic Lanczos quadrature with Gaussian broadening (see the module docstring).

    ``sigma`` defaults to 1 % of the span of the nodes; the grid reaches 5 sigma past them.
    """
    if probes < 1 or steps < 1 or points < 2:
        raise ValueError("need probes >= 1, steps >= 1 and points >= 2")
    gen, dev = torch.Generator().manual_seed(seed), torch.device(device)
    steps = min(steps, n)
    nodes = np.full((probes, steps), np.nan)
    weights = np.full((probes, steps), np.nan)
    for i in range(probes):
        v0 = torch.randn(n, generator=gen, dtype=torch.float64).to(dev)
        alpha, beta = lanczos(matvec, v0, steps)
        t = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
        theta, u = np.linalg.eigh(t)
        nodes[i, : len(theta)], weights[i, : len(theta)] = theta, u[0] ** 2
    span = float(np.nanmax(nodes) - np.nanmin(nodes))
    if sigma is None:
        sigma = max(0.01 * span, 1e-12 * max(1.0, float(np.nanmax(np.abs(nodes)))))
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    grid = np.linspace(np.nanmin(nodes) - 5 * sigma, np.nanmax(nodes) + 5 * sigma, points)
    ok = np.isfinite(nodes)
    diff = (grid[None, :] - nodes[ok][:, None]) / sigma
    kernel = np.exp(-0.5 * diff**2) / (sigma * math.sqrt(2 * math.pi))
    density = (weights[ok][:, None] * kernel).sum(axis=0) / probes
    products = int(np.sum(ok))
    return DensityResult(grid, density, nodes, weights, sigma, products)
