"""Helpers shared by the renderers: values made fit to plot, input checks, number labels."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "coverage_note",
    "finite_or_nan",
    "fmt_number",
    "has_positive",
    "positive_or_nan",
    "require_keys",
    "wrap",
]

# Average glyph width of the project's sans-serif font, in font sizes (for wrapping titles).
_CHAR_WIDTH = 0.55


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


def coverage_note(computed: Any, shape: tuple[int, ...], unit: str) -> str:
    """``"12 of 21 points computed"``, or "" when every point is (``computed``: a bool mask)."""
    mask = np.asarray(computed, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"computed must be shaped like the values {shape}, got {mask.shape}")
    done = int(mask.sum())
    return "" if done == mask.size else f"{done} of {mask.size} {unit} computed"


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """Break each line of ``text`` so that it fits ``width_in`` inches at ``fontsize`` points."""
    chars = max(20, int(width_in * 72 / (_CHAR_WIDTH * fontsize)))
    return "\n".join(textwrap.fill(line, chars) if line else line for line in text.split("\n"))
