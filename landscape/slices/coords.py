"""Where a slice is evaluated: grid coordinates, and the limits that catch typos.

Coordinates are a ``"start:stop:num"`` range string or the points themselves
(:func:`as_coords`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["MAX_POINTS", "MAX_POINTS_PER_AXIS", "Coords", "as_coords", "parse_range"]

Coords = str | Sequence[float] | np.ndarray  # "start:stop:num" or the points themselves

#: A guard against typos: 100,000 points per axis is 10^10 evaluations for a plane.
MAX_POINTS_PER_AXIS = 100_000
#: ... and 10^7 points per grid (80 MB per metric in memory); more is a typo, not a slice.
MAX_POINTS = 10_000_000
_RANGE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")
_RANGE_HELP = "expected 'start:stop:num' with start <= stop and an integer num >= 1, e.g. '-1:1:51'"


def parse_range(spec: str) -> np.ndarray:
    """Parse ``"start:stop:num"`` into ``num`` evenly spaced points, endpoints included.

    Example:
        >>> parse_range("-1:1:5")
        array([-1. , -0.5,  0. ,  0.5,  1. ])
        >>> parse_range("0:0:1")
        array([0.])
    """
    m = _RANGE.match(spec) if isinstance(spec, str) else None
    if m is None:
        raise ValueError(f"bad range {spec!r}: {_RANGE_HELP}")
    try:
        start, stop, num = float(m[1]), float(m[2]), int(m[3])
    except ValueError:
        raise ValueError(f"bad range {spec!r}: {_RANGE_HELP}") from None
    if not (math.isfinite(start) and math.isfinite(stop)) or num < 1 or start > stop:
        raise ValueError(f"bad range {spec!r}: {_RANGE_HELP}")
    if start == stop and num != 1:
        raise ValueError(f"bad range {spec!r}: start == stop needs num == 1")
    if num > MAX_POINTS_PER_AXIS:
        raise ValueError(f"bad range {spec!r}: at most {MAX_POINTS_PER_AXIS} points per axis")
    if not math.isfinite(stop - start):
        raise ValueError(f"bad range {spec!r}: stop - start overflows; use a smaller range")
    return np.linspace(start, stop, num)


def as_coords(v: Coords, name: str = "x") -> np.ndarray:
    """A range string (see :func:`parse_range`) or numbers -> finite float64 array (n,)."""
    arr = parse_range(v) if isinstance(v, str) else np.asarray(v, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} coordinates must be finite and non-empty")
    return arr
