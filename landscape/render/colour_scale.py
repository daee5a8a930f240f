"""One colour scale for 2-D slices: shared contour levels, the norm, and the colour bar.

Used by :mod:`landscape.render.surfaces` so that compared panels share levels and colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from landscape.render.common import finite_or_nan, positive_or_nan

__all__ = [
    "DEFAULT_LEVELS",
    "MAX_COLORBAR_TICKS",
    "add_colorbar",
    "colorbar_label",
    "extend_mode",
    "level_format",
    "shared_scale",
]

DEFAULT_LEVELS = 15
MAX_COLORBAR_TICKS = 8


def shared_scale(
    zs: Sequence[np.ndarray],
    levels: int | Sequence[float] | None,
    log: bool,
    vmin: float | None,
    vmax: float | None,
) -> tuple[np.ndarray, Normalize] | None:
    """Common contour levels and colour norm from the union of finite (positive if log) values.

    Returns ``None`` when there is nothing to scale (no computed value and no explicit range).
    """
    vals = np.concatenate([(positive_or_nan(z) if log else finite_or_nan(z)).ravel() for z in zs])
    vals = vals[np.isfinite(vals)]
    if levels is not None and not isinstance(levels, (int, np.integer)):
        lv = np.sort(np.asarray(levels, dtype=float).ravel())
        if lv.size < 2:
            raise ValueError("levels needs at least two values")
        lo = lv[0] if vmin is None else vmin
        hi = lv[-1] if vmax is None else vmax
    else:
        n = DEFAULT_LEVELS if levels is None else int(levels)
        if n < 2:
            raise ValueError(f"levels must be >= 2, got {n}")
        if vals.size == 0 and (vmin is None or vmax is None):
            return None
        lo = float(vals.min()) if vmin is None else float(vmin)
        hi = float(vals.max()) if vmax is None else float(vmax)
        if log and lo <= 0:
            raise ValueError(f"log scale needs a positive lower limit, got vmin={lo}")
        if hi <= lo:  # flat surface: widen so that the colour scale is defined
            hi = lo * 10.0 if log else lo + max(abs(lo), 1.0) * 0.1
        lv = np.geomspace(lo, hi, n) if log else np.linspace(lo, hi, n)
    if log and lo <= 0:
        raise ValueError(f"log scale needs positive levels, got a lower limit of {lo}")
    norm = LogNorm(lo, hi) if log else Normalize(lo, hi)
    return lv, norm


def extend_mode(zs: Sequence[np.ndarray], norm: Normalize) -> str:
    """Which ends of the colour bar get an arrow: values below / above the norm's range."""
    vals = np.concatenate([finite_or_nan(z).ravel() for z in zs])
    vals = vals[np.isfinite(vals)]
    below = bool(vals.size and vals.min() < norm.vmin)
    above = bool(vals.size and vals.max() > norm.vmax)
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        (below, above), "both"
    )


def level_format(value: float) -> str:
    """A contour level as three significant digits."""
    return f"{value:.3g}"


def colorbar_label(zlabel: str, kind: str, log: bool) -> str:
    """The colour bar's label; a 3-D surface on a log scale plots log10 of the values."""
    if log and kind == "surface":
        return f"log₁₀ {zlabel}"
    return f"{zlabel} (log scale)" if log else zlabel


def add_colorbar(
    fig: Figure,
    artist: Any,
    axes: Axes | list[Axes],
    *,
    kind: str,
    levels: np.ndarray,
    label: str,
) -> None:
    """One colourbar; for contour kinds its ticks are the contour levels, written plainly.

    (A contour set on a log norm otherwise gets a single unreadable tick.)
    """
    cbar = fig.colorbar(
        artist,
        ax=axes,
        label=label,
        shrink=0.75 if kind == "surface" else 1.0,
        pad=0.1 if kind == "surface" else 0.02,
    )
    if kind in ("contour", "contourf"):
        step = max(1, int(np.ceil(len(levels) / MAX_COLORBAR_TICKS)))
        cbar.set_ticks(levels[::step])
        cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: level_format(v)))
        cbar.ax.minorticks_off()
