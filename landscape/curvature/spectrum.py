"""Eigenvalues of the Hessian (Lanczos, ``scipy.sparse.linalg.eigsh``) and the curvature
along a direction.

``which="largest"`` means algebraically largest: the top of the spectrum, not the largest
magnitude (power iteration, as PyHessian uses, converges to whichever end is larger in
magnitude, which can be the negative one). Eigenvectors come back as ``{parameter name:
tensor}``, ready to serve as slice directions (the top two span the Hessian plane).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor, nn

from landscape.curvature.operator import BNMode, HessianOperator, Method, Params, flatten
from landscape.data.evaluation import Data, Loss

__all__ = ["EigenResult", "Which", "curvature_along", "hessian_eigenvalues"]

Which = Literal["largest", "smallest", "both_ends"]
_ARPACK = {"largest": "LA", "smallest": "SA", "both_ends": "BE"}


@dataclass
class EigenResult:
    """Hessian eigenvalues (largest first) with what they cost and how exact they are.

    Attributes:
        values: The eigenvalues, in decreasing order (``both_ends``: the top ``k``, then the
            bottom ``k``, still decreasing).
        residuals: ``||H v - lambda v||_2`` of each unit eigenvector (same order).
        products: Hessian-vector products used (the residuals' ``k`` included).
        vectors: ``{parameter name: tensor}`` per eigenvalue (unit norm over the chosen
            parameters), or None unless asked for.
        names: The parameters the Hessian is over.
        bn_mode, which: As asked.
    """

    values: np.ndarray
    residuals: np.ndarray
    products: int
    names: list[str]
    bn_mode: str
    which: str
    vectors: list[dict[str, Tensor]] | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # pragma: no mutate block
        vals = ", ".join(f"{v:.6g}" for v in self.values)
        return (f"EigenResult({self.which}: [{vals}]; max residual "
                f"{float(np.max(self.residuals)):.2g}; {self.products} products; "
                f"bn_mode {self.bn_mode}; {len(self.names)} parameter tensors)")  # fmt: skip


def hessian_eigenvalues(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    k: int = 1,
    which: Which = "largest",
    *,
    eigenvectors: bool = False,
    tol: float = 1e-6,
    max_products: int | None = None,
    ncv: int | None = None,
    params: Params = None,
    bn_mode: BNMode = "train",
    method: Method = "graph",
    seed: int = 0,
) -> EigenResult:
    """The ``k`` largest (or smallest, or both ends') eigenvalues of the Hessian of the mean
    loss over ``data``: ``H v = lambda v`` with ``H = d^2 L / d theta^2``.

    Lanczos with implicit restarts (ARPACK through :func:`scipy.sparse.linalg.eigsh`) on the
    exact products of :class:`HessianOperator`, in float64 on the scipy side.

    Args:
        model, loss_fn, data: As for the slices: ``(inputs, targets)`` batches with
            ``loss_fn(outputs, targets)``, or any batches with :func:`landscape.batch_loss`;
            a dataset name is its fixed default subset. Every batch weighs by its size.
        k: Eigenvalues wanted (from each end for ``both_ends``); fewer than the parameters.
        which: ``"largest"`` (algebraically), ``"smallest"`` or ``"both_ends"``.
        eigenvectors: Also return the eigenvectors, keyed by parameter name.
        tol: Relative accuracy ARPACK aims for (``|lambda_est - lambda| <= tol |lambda|``).
        max_products: A cap on products (ARPACK's ``maxiter`` is set from it).
        ncv: Lanczos vectors kept between restarts (default ``max(2 k + 2, 4)``, measured on
            vgg_small: 11 products for the top eigenvalue to 1e-3 where ARPACK's default
            of 20 spends 21).
        params: Parameters to take the Hessian over: all trainable (None), names, or a
            predicate ``(name, param) -> bool``.
        bn_mode: ``"train"`` (batch statistics) or ``"eval"`` (running statistics).
        method: ``"graph"`` (double backward, graphs kept) or ``"func"`` (forward-over-reverse).
        seed: Seeds the start vector and stochastic layers.

    Raises:
        ValueError: bad arguments, or no convergence within ``max_products`` (the message
            gives the products used).
    """
    if which not in _ARPACK:
        raise ValueError(f"unknown which {which!r}; use 'largest', 'smallest' or 'both_ends'")
    if k < 1 or tol < 0:
        raise ValueError(f"need k >= 1 and tol >= 0, got k={k}, tol={tol}")
    with HessianOperator(model, loss_fn, data, params=params, bn_mode=bn_mode, method=method,
                         seed=seed) as op:  # fmt: skip
        wanted = 2 * k if which == "both_ends" else k
        if wanted >= op.size:
            raise ValueError(f"{wanted} eigenvalues of a {op.size}x{op.size} Hessian: ask "
                             f"for fewer than its size ({op.size - 1} at most)")  # fmt: skip
        lanczos = min(op.size, ncv if ncv is not None else max(2 * wanted + 2, 4))
        if not wanted < lanczos <= op.size:
            raise ValueError(f"ncv must exceed the eigenvalues wanted ({wanted}), got {ncv}")
        values, vecs = _eigsh(op, wanted, _ARPACK[which], tol, max_products, seed, lanczos)
        order = np.argsort(values)[::-1]
        values, vecs = values[order], vecs[:, order]
        residuals = np.empty(len(values))
        for j in range(len(values)):
            v = torch.from_numpy(np.ascontiguousarray(vecs[:, j])).to(op.device)
            residuals[j] = float(torch.linalg.vector_norm(op.flat_matvec(v) - values[j] * v))
        vectors = None
        if eigenvectors:
            vectors = [op.as_dict(torch.from_numpy(np.ascontiguousarray(vecs[:, j])))
                       for j in range(len(values))]  # fmt: skip
        return EigenResult(values, residuals, op.products, op.names, bn_mode, which, vectors)


def _eigsh(
    op: HessianOperator, k: int, which: str, tol: float, max_products: int | None, seed: int,
    ncv: int,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    def matvec(x: np.ndarray) -> np.ndarray:
        if max_products is not None and op.products >= max_products:
            raise _Budget
        v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
        return op.flat_matvec(v.to(op.device)).cpu().numpy()

    lin = LinearOperator((op.size, op.size), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(op.size)
    try:
        return eigsh(lin, k=k, which=which, tol=tol, v0=v0, ncv=ncv, maxiter=max_products or None)
    except (_Budget, ArpackNoConvergence):
        raise ValueError(
            f"the eigenvalues did not converge to tol {tol:g} within "
            f"{op.products} products: raise max_products or tol"
        ) from None


class _Budget(Exception):
    """The product budget is spent."""


def curvature_along(
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    direction: Mapping[str, Tensor] | Literal["gradient"] = "gradient",
    *,
    params: Params = None,
    bn_mode: BNMode = "train",
    method: Method = "graph",
    seed: int = 0,
) -> float:
    """The curvature of the mean loss along ``d``: ``d^T H d / ||d||^2``.

    Along the gradient (``direction="gradient"``, the full-data gradient) it is the quantity
    of Santurkar et al.'s Theorem 4.2, the second-order view of the probes' effective beta.
    ``direction`` may also be ``{parameter name: tensor}`` (missing names: zero; e.g. an
    eigenvector or a slice direction). NaN for a zero direction.
    """
    with HessianOperator(model, loss_fn, data, params=params, bn_mode=bn_mode, method=method,
                         seed=seed) as op:  # fmt: skip
        if isinstance(direction, str):
            if direction != "gradient":
                raise ValueError(f"direction must be 'gradient' or a dict, got {direction!r}")
            d = op.gradient()
        else:
            unknown = [n for n in direction if n not in op.names]
            if unknown:
                raise ValueError(f"direction entries {unknown[:3]} are not among the chosen "
                                 "parameters")  # fmt: skip
            d = [direction[n].to(op.device, op.dtype) if n in direction else torch.zeros_like(p)
                 for n, p in zip(op.names, op.params)]  # fmt: skip
        flat = flatten(d)
        norm2 = float(flat @ flat)
        if norm2 == 0.0:
            return float("nan")
        return float(flat @ flatten(op.matvec(d))) / norm2
