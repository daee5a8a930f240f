"""What a slice is evaluated at and on: grid coordinates and the evaluation data.

Coordinates are a ``"start:stop:num"`` range string or the points themselves
(:func:`as_coords`). Evaluation data are re-iterable ``(inputs, targets)`` batches: one pass
over them is one point of a slice, so a one-shot iterator is refused (:func:`as_batches`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MAX_POINTS_PER_AXIS",
    "Batch",
    "Coords",
    "Data",
    "DataSummary",
    "LossFn",
    "Metric",
    "as_batches",
    "as_coords",
    "describe_data",
    "parse_range",
]

Batch = tuple[Tensor, Tensor]
Data = Iterable[Batch] | Callable[[], Iterable[Batch]]
Metric = Callable[[Tensor, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> batch mean
Coords = str | Sequence[float] | np.ndarray  # "start:stop:num" or the points themselves

#: A guard against typos: 100,000 points per axis is 10^10 evaluations for a plane.
MAX_POINTS_PER_AXIS = 100_000
_RANGE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")
_RANGE_HELP = "expected 'start:stop:num' with start <= stop and an integer num >= 1, e.g. '-1:1:51'"


@dataclass(frozen=True)
class DataSummary:
    """What one pass over the evaluation data sees, found without a forward pass."""

    examples: int
    batches: int
    classification: bool  # every target is a 1-D tensor of integer class labels


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


def as_batches(data: Data) -> Iterable[Batch]:
    """One fresh pass over ``data``: a single ``(x, y)`` tuple, a re-iterable or a callable.

    Raises:
        ValueError: If ``data`` is a one-shot iterator (a second pass would see nothing).
    """
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        return [data]  # a single (inputs, targets) batch
    if callable(data):
        return data()
    if iter(data) is data:
        raise ValueError(
            "data is a one-shot iterator; pass a list of batches, a DataLoader or a "
            "callable returning a fresh iterator"
        )
    return data


def _is_labels(t: Tensor) -> bool:
    return t.ndim == 1 and not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def describe_data(data: Data) -> DataSummary:
    """Count examples and batches and check whether targets are class labels."""
    examples = batches = 0
    labels = True
    for _, targets in as_batches(data):
        examples += int(targets.shape[0])
        batches += 1
        labels = labels and _is_labels(targets)
    if batches == 0 or examples == 0:
        raise ValueError("the evaluation data is empty")
    return DataSummary(examples, batches, labels)
