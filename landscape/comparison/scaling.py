"""Power laws of a quantity against a scale: the slope of log y on log x.

Ioffe & Szegedy (2015, Sec. 3.3; science.md s. 2): for a > 0, BN((aW)u) = BN(Wu) and
d BN((aW)u) / d(aW) = (1/a) d BN(Wu) / dW, so the weight gradient of a layer feeding BN,
with only that layer scaled by a, scales as a^-1 (slope -1). A plain network of ``d``
homogeneous layers (ReLU, zero biases) scaled as a whole has logits that scale as a^d and
weight gradients as a^(d-1) while its loss is not saturated; a sigmoid network saturates
instead. :func:`loglog_slope` measures what a sweep gives.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["loglog_slope", "loglog_slopes"]


def loglog_slope(x: ArrayLike, y: ArrayLike) -> float:
    """The least-squares slope of ``log y`` on ``log x`` over the points where both are
    finite and positive; NaN with fewer than two distinct such ``x``.

    >>> round(loglog_slope([0.1, 1.0, 10.0], [100.0, 1.0, 0.01]), 12)
    -2.0
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"loglog_slope needs two 1-D arrays of one length, got shapes "
                         f"{x.shape} and {y.shape}")  # fmt: skip
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[ok]), np.log(y[ok])
    if np.unique(lx).size < 2:
        return math.nan
    lx = lx - lx.mean()
    return float(lx @ (ly - ly.mean()) / (lx @ lx))


def loglog_slopes(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """:func:`loglog_slope` along the first axis of ``y`` (S, ...) for ``x`` (S,): an array
    of the shape of ``y[0]``."""
    y = np.asarray(y, dtype=np.float64)
    flat = y.reshape(y.shape[0], -1)
    out = np.array([loglog_slope(x, flat[:, j]) for j in range(flat.shape[1])])
    return out.reshape(y.shape[1:])
