"""Directions in parameter space: random (filter-normalized), checkpoint and PCA directions.

A direction is a ``dict[str, Tensor]`` keyed by ``model.named_parameters()`` names, on the
parameters' device and dtype, so that it can be stored by name and applied to a rebuilt
model. Slices (:mod:`landscape.slices`) evaluate ``f(a, b) = L(theta + a d1 + b d2)``.

Filter normalization (Li et al. 2018, Sec. 4): for every filter ``j`` of layer ``i`` (a slice
along dim 0 of a weight with ``ndim >= 2``; for a linear layer the weights into one unit),

    d_ij <- d_ij / ||d_ij|| * ||theta_ij||,

so that the slice is comparable across networks whose weights differ in scale (and is
blind to the scale invariance that BatchNorm introduces).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from landscape._params import Params, dot, flatten, get_params, norm, unflatten

__all__ = [
    "Ignore",
    "Normalization",
    "buffer_direction",
    "checkpoint_direction",
    "normalize_direction",
    "orthogonalize",
    "pca_directions",
    "project",
    "random_direction",
    "random_directions",
]

log = logging.getLogger(__name__)

Normalization = Literal["filter", "layer", "none"]
Ignore = Literal["biasbn", "none"]


def _check_options(normalization: str, ignore: str) -> None:
    if normalization not in ("filter", "layer", "none"):
        raise ValueError(
            f"unknown normalization {normalization!r}; use 'filter', 'layer' or 'none'"
        )
    if ignore not in ("biasbn", "none"):
        raise ValueError(f"unknown ignore {ignore!r}; use 'biasbn' or 'none'")


def _rescale(d: Tensor, p: Tensor, dim0_groups: bool) -> Tensor:
    """Scale each group of ``d`` to the norm of the same group of ``p``.

    Groups are the slices along dim 0 (``dim0_groups``) or the whole tensor. Where either
    norm is zero the result is 0: a zero parameter group (a fresh BatchNorm bias) has no
    scale to copy, and dividing would give the NaN that crashes other tools.
    """
    rows = d.shape[0] if dim0_groups and d.ndim >= 1 else 1
    d2, p2 = d.reshape(rows, -1), p.reshape(rows, -1)
    dn, pn = d2.norm(dim=1), p2.norm(dim=1)
    ok = (dn > 0) & (pn > 0)
    factor = torch.where(ok, pn / torch.where(ok, dn, torch.ones_like(dn)), torch.zeros_like(dn))
    return (d2 * factor[:, None]).reshape(d.shape)


def normalize_direction(
    direction: Mapping[str, Tensor],
    params: Mapping[str, Tensor],
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
) -> Params:
    """Normalize a direction against the parameters it will be added to (a new dict).

    With ``normalization="filter"``, ``d_ij <- d_ij / ||d_ij|| * ||theta_ij||`` for every
    slice ``j`` along dim 0 of a tensor with ``ndim >= 2``; ``"layer"`` uses the whole
    tensor, ``d_i <- d_i / ||d_i|| * ||theta_i||``; ``"none"`` leaves ``d`` as it is.
    With ``ignore="biasbn"`` every tensor with ``ndim <= 1`` (biases, BatchNorm weights and
    biases) gets a zero direction, as in Li et al.'s code; with ``ignore="none"`` such a
    tensor is normalized as one filter. Where ``||d_ij|| = 0`` or ``||theta_ij|| = 0`` the
    direction is 0 there (never NaN).

    Args:
        direction: Raw direction, keys a subset of ``params`` with the same shapes.
        params: The point ``theta`` the direction is normalized against.
        normalization: ``"filter"``, ``"layer"`` or ``"none"``.
        ignore: ``"biasbn"`` or ``"none"``.

    Returns:
        The normalized direction, keyed like ``direction``.

    Raises:
        ValueError: On an unknown option, unknown key or shape mismatch.

    Example:
        >>> d = {"w": torch.tensor([[3.0, 4.0], [1.0, 0.0]])}
        >>> p = {"w": torch.tensor([[0.0, 10.0], [0.0, 2.0]])}
        >>> normalize_direction(d, p)["w"]
        tensor([[6., 8.],
                [2., 0.]])
    """
    _check_options(normalization, ignore)
    out: Params = {}
    for name, d in direction.items():
        if name not in params:
            raise ValueError(f"direction entry {name!r} is not a parameter")
        p = params[name]
        if d.shape != p.shape:
            raise ValueError(f"direction {name!r} has shape {tuple(d.shape)}, not {tuple(p.shape)}")
        d = d.detach()
        if d.ndim <= 1 and ignore == "biasbn":
            out[name] = torch.zeros_like(d)
        elif normalization == "filter":
            out[name] = _rescale(d, p.detach(), dim0_groups=d.ndim >= 2)
        elif normalization == "layer":
            out[name] = _rescale(d, p.detach(), dim0_groups=False)
        elif normalization == "none":
            out[name] = d.clone()
        else:  # unreachable after _check_options; kept so a new option cannot pass silently
            raise ValueError(f"unknown normalization {normalization!r}")
    return out


def random_directions(
    model: nn.Module,
    k: int,
    *,
    seed: int,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
) -> list[Params]:
    """``k`` Gaussian directions drawn one after another from one seeded generator.

    The generator lives on the model's device, so the same seed gives the same direction
    on the same kind of device (CPU and CUDA generators differ). Direction 1 of
    ``random_directions(model, 2, seed=s)`` equals ``random_direction(model, seed=s)``:
    a random line is the x-axis of the random plane with the same seed.

    Args:
        model: Supplies the trainable parameters (names, shapes, device, dtype).
        k: Number of directions.
        seed: Seed of the ``torch.Generator``.
        normalization: See :func:`normalize_direction`.
        ignore: See :func:`normalize_direction`.

    Returns:
        ``k`` directions keyed by parameter name.
    """
    _check_options(normalization, ignore)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    params = get_params(model)
    if not params:
        raise ValueError("the model has no trainable parameters")
    device = next(iter(params.values())).device
    gen = torch.Generator(device=device).manual_seed(int(seed))
    out = []
    for _ in range(k):
        raw = {
            n: torch.randn(p.shape, generator=gen, device=device, dtype=p.dtype).to(p.device)
            for n, p in params.items()
        }
        out.append(normalize_direction(raw, params, normalization, ignore))
    return out


def random_direction(
    model: nn.Module,
    *,
    seed: int,
    normalization: Normalization = "filter",
    ignore: Ignore = "biasbn",
) -> Params:
    """One Gaussian direction ``d ~ N(0, I)``, normalized by :func:`normalize_direction`."""
    return random_directions(model, 1, seed=seed, normalization=normalization, ignore=ignore)[0]


def orthogonalize(d2: Mapping[str, Tensor], d1: Mapping[str, Tensor]) -> Params:
    """Project ``d1`` out of ``d2`` and rescale to ``d2``'s original norm (Gram-Schmidt).

    ``d2' = (d2 - <d2, d1> / <d1, d1> d1) * ||d2|| / ||d2 - <d2, d1> / <d1, d1> d1||``
    over the flattened direction. The result is not filter-normalized any more (its
    filter norms change by the removed component, tiny for random high-dimensional
    directions, which are nearly orthogonal already).

    Raises:
        ValueError: If the keys differ or ``d2`` is parallel to ``d1``.
    """
    if set(d1) != set(d2):
        raise ValueError("d1 and d2 must have the same parameter names")
    n1 = float(dot(d1, d1))
    if n1 == 0.0:
        return {n: v.detach().clone() for n, v in d2.items()}
    c = float(dot(d2, d1)) / n1
    resid = {n: d2[n] - c * d1[n] for n in d2}
    rn, n2 = float(norm(resid)), float(norm(d2))
    if rn <= 1e-12 * max(n2, 1e-300):
        raise ValueError("d2 is parallel to d1; cannot orthogonalize")
    return {n: v * (n2 / rn) for n, v in resid.items()}


def checkpoint_direction(params_a: Mapping[str, Tensor], params_b: Mapping[str, Tensor]) -> Params:
    """The direction from ``theta_a`` to ``theta_b``: ``d = theta_b - theta_a``."""
    if set(params_a) != set(params_b):
        missing = sorted(set(params_a) ^ set(params_b))[:3]
        raise ValueError(f"the two parameter sets differ in names, e.g. {missing}")
    out: Params = {}
    for n, a in params_a.items():
        b = params_b[n]
        if a.shape != b.shape:
            raise ValueError(f"{n!r} has shape {tuple(a.shape)} and {tuple(b.shape)}")
        out[n] = b.detach().to(a.device, a.dtype) - a.detach()
    return out


def buffer_direction(model_a: nn.Module, model_b: nn.Module) -> Params:
    """``buffers_b - buffers_a`` for the floating buffers (BN running mean and variance).

    Used with :func:`checkpoint_direction` to interpolate BN running statistics between
    two trained models of one architecture; integer buffers (``num_batches_tracked``) are
    left out.
    """
    a, b = dict(model_a.named_buffers()), dict(model_b.named_buffers())
    if set(a) != set(b):
        raise ValueError("the models have different buffers; are they the same architecture?")
    floats = {n: t for n, t in a.items() if t.is_floating_point()}
    return {n: b[n].detach().to(t.device, t.dtype) - t.detach() for n, t in floats.items()}


def _diff_matrix(trajectory: Sequence[Mapping[str, Tensor]], final: Mapping[str, Tensor]) -> Tensor:
    """Rows ``flatten(theta_t - theta_final)`` in float64 on the CPU, shape (T, P)."""
    ref = flatten({n: final[n] for n in final}).detach().to("cpu", torch.float64)
    rows = [flatten({n: p[n] for n in final}).detach().to("cpu", torch.float64) for p in trajectory]
    return torch.stack(rows) - ref  # (T, P)


#: Singular values below this fraction of the largest count as zero in :func:`pca_directions`.
RANK_TOL = 1e-9


def pca_directions(
    trajectory: Sequence[Mapping[str, Tensor]],
    final: Mapping[str, Tensor],
    k: int = 2,
    *,
    center: bool = True,
) -> tuple[list[Params], np.ndarray]:
    """Principal directions of the optimization path ``theta_t - theta_final`` (Li, Sec. 7).

    With ``M`` the (T, P) matrix of rows ``theta_t - theta_final`` (float64, centered by
    column means when ``center``, as scikit-learn's PCA in Li et al.'s code),
    ``M = U S V^T``; direction ``i`` is row ``i`` of ``V^T`` and its explained-variance ratio
    is ``S_i^2 / sum_j S_j^2``. The sign is fixed so that each direction's largest entry in
    absolute value is positive.

    Args:
        trajectory: Parameters along training (T >= 2), keys those of ``final``; they must
            span ``k`` directions (T >= k + 1 when centered), else ValueError.
        final: The origin ``theta_final``.
        k: Number of directions.
        center: Subtract the mean row before the SVD.

    Returns:
        ``(directions, ratios)``: ``k`` unit-norm directions on ``final``'s device and
        dtype, and their explained-variance ratios, shape (k,).
    """
    if len(trajectory) < 2:
        raise ValueError("PCA needs at least 2 trajectory points")
    if not 1 <= k <= len(trajectory):
        raise ValueError(f"k must be in [1, {len(trajectory)}], got {k}")
    m = _diff_matrix(trajectory, final)
    if center:
        m = m - m.mean(dim=0, keepdim=True)
    _, s, vt = torch.linalg.svd(m, full_matrices=False)  # s (min(T,P),), vt (min(T,P), P)
    total = float((s**2).sum())
    if total == 0.0:
        raise ValueError("the trajectory does not move; no principal directions")
    rank = int((s > RANK_TOL * s[0]).sum())  # beyond it, V's rows are arbitrary null vectors
    if rank < k:
        hint = " (centering removes one)" if center else ""
        raise ValueError(
            f"the trajectory spans only {rank} direction(s), {k} asked{hint}: "
            f"pass more checkpoints (at least {k + int(center)}) or fewer directions"
        )
    ratios = (s[:k] ** 2 / total).numpy()
    like = {n: final[n] for n in final}
    dirs = []
    for i in range(k):
        v = vt[i]
        if v[v.abs().argmax()] < 0:
            v = -v
        dirs.append({n: t.to(like[n].device, like[n].dtype) for n, t in unflatten(v, like).items()})
    return dirs, ratios


def project(
    trajectory: Sequence[Mapping[str, Tensor]],
    final: Mapping[str, Tensor],
    directions: Sequence[Mapping[str, Tensor]],
) -> np.ndarray:
    """Coordinates of ``theta_t - theta_final`` in the span of ``directions``, shape (T, k).

    Least squares: ``c_t = argmin_c ||theta_t - theta_final - sum_i c_i d_i||``, solved
    through the normal equations ``(D^T D) c_t = D^T (theta_t - theta_final)`` in float64,
    so non-orthogonal directions are handled.
    """
    if not directions:
        raise ValueError("project needs at least one direction")
    m = _diff_matrix(trajectory, final)  # (T, P)
    d = torch.stack(
        [flatten({n: di[n] for n in final}).detach().to("cpu", torch.float64) for di in directions]
    )  # (k, P)
    gram = (d @ d.T).numpy()  # (k, k)
    rhs = (d @ m.T).numpy()  # (k, T)
    coords, *_ = np.linalg.lstsq(gram, rhs, rcond=None)  # (k, T)
    return coords.T
