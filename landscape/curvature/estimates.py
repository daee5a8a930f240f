"""The trace and the spectral density of the Hessian of a model's mean loss (the public
wrappers of :mod:`.stochastic` on :class:`~landscape.curvature.HessianOperator`)."""

from __future__ import annotations

from typing import Literal

from torch import nn

from landscape.curvature.operator import BNMode, HessianOperator, Method, Params
from landscape.curvature.stochastic import (
    DensityResult,
    TraceResult,
    hutch_plus_plus,
    hutchinson,
    slq,
)
from landscape.data.evaluation import Data, Loss

__all__ = ["hessian_density", "hessian_trace"]


def hessian_trace(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    *,
    method: Literal["hutch++", "hutchinson"] = "hutch++",
    rtol: float = 1e-2,
    max_products: int = 1000,
    rank: int | None = None,
    params: Params = None,
    bn_mode: BNMode = "train",
    product: Method = "graph",
    seed: int = 0,
) -> TraceResult:
    """``tr(H) = sum_i lambda_i`` of the Hessian of the mean loss over ``data``, estimated to
    a relative standard error ``rtol`` (stderr <= rtol |trace|) or until ``max_products``.

    Args:
        model, loss_fn, data, params, bn_mode, seed: As for
            :func:`~landscape.curvature.hessian_eigenvalues`.
        method: ``"hutch++"`` (exact on the top subspace, Hutchinson on the rest) or
            ``"hutchinson"`` (Rademacher ``z^T H z``).
        rtol: Target relative standard error; 0 spends the whole budget.
        max_products: The budget of Hessian-vector products.
        rank: Hutch++'s exact columns (default: a third of the budget, at most 50).
        product: How products are taken (``"graph"`` or ``"func"``).

    Returns:
        A :class:`TraceResult`; ``converged`` says whether ``rtol`` was reached.
    """
    if method not in ("hutch++", "hutchinson"):
        raise ValueError(f"unknown method {method!r}; use 'hutch++' or 'hutchinson'")
    if rtol < 0 or max_products < 1:
        raise ValueError(f"need rtol >= 0 and max_products >= 1, got {rtol}, {max_products}")
    with HessianOperator(model, loss_fn, data, params=params, bn_mode=bn_mode, method=product,
                         seed=seed) as op:  # fmt: skip
        if method == "hutchinson":
            return hutchinson(op.flat_matvec, op.size, rtol=rtol, max_products=max_products,
                              seed=seed, device=op.device)  # fmt: skip
        return hutch_plus_plus(op.flat_matvec, op.size, rtol=rtol, max_products=max_products,
                               rank=rank, seed=seed, device=op.device)  # fmt: skip


def hessian_density(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    *,
    probes: int = 4,
    steps: int = 80,
    sigma: float | None = None,
    points: int = 1001,
    params: Params = None,
    bn_mode: BNMode = "train",
    product: Method = "graph",
    seed: int = 0,
) -> DensityResult:
    """The spectral density of the Hessian by stochastic Lanczos quadrature: ``probes``
    random unit vectors, ``steps`` Lanczos steps each (``probes x steps`` products), Gaussian
    broadening ``sigma`` (default 1 % of the spectrum's span).

    ``rho(t) = (1/P) sum_p sum_j tau_pj N(t; theta_pj, sigma^2)`` integrates to 1; its
    moments approximate ``tr(H^k) / n``. Outliers show as isolated nodes with weight
    ``~1/n``: plot the density on a log axis (Ghorbani et al. 2019).
    """
    with HessianOperator(model, loss_fn, data, params=params, bn_mode=bn_mode, method=product,
                         seed=seed) as op:  # fmt: skip
        res = slq(op.flat_matvec, op.size, probes=probes, steps=steps, sigma=sigma,
                  points=points, seed=seed, device=op.device)  # fmt: skip
        res.bn_mode, res.names = bn_mode, op.names
        return res
