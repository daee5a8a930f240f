"""Helpers shared by the renderers: values made fit to plot, input checks, number labels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["finite_or_nan", "fmt_number", "has_positive", "positive_or_nan", "require_keys"]


def finite_or_nan(values: Any) -> np.ndarray:
    """Float copy with every non-finite entry (NaN, +-inf) replaced by NaN."""
    a = np.array(values, dtype=float, copy=True)
    a[~np.isfinite(a)] = np.nan
    return a


def positive_or_nan(values: Any) -> np.ndarray:
    """Float copy fit for a log axis: non-finite and non-positive entries become NaN."""
    a = finite_or_nan(values)
    with np.errstate(invalid="ignore"):
        a[~(a > 0)] = np.nan
    return a


def has_positive(values: Any) -> bool:
    """Whether any entry is finite and positive (something to draw on a log axis)."""
    return bool(np.any(np.isfinite(positive_or_nan(values))))


def require_keys(run: Any, label: str, keys: Iterable[str]) -> None:
    """Raise ValueError naming the keys ``run`` (the series labelled ``label``) lacks."""
    missing = [k for k in keys if k not in run]
    if missing:
        raise ValueError(
            f"run {label!r} lacks {', '.join(map(repr, missing))}; it has {sorted(run)}"
        )


def fmt_number(value: float) -> str:
    """Step numbers and the like: integers without a decimal point."""
    return f"{int(value):d}" if float(value).is_integer() else f"{value:g}"
