"""Figures of the init-scale sweep: does BN make large initial weights safe?

- :func:`gradient_scaling` - per activation, each layer's weight-gradient norm at
  initialisation against the init scale on log-log axes (BN and plain; median over seeds,
  band min..max), and below it the fitted slope of each layer with its spread over seeds.
- :func:`trainability_map` - a grid of activation x variant (rows) by init scale
  (columns), each cell split by how many seeds trained, stalled or diverged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from numpy.typing import ArrayLike

from landscape.render.style import (
    bottom_legend,
    color_for,
    display_label,
    figure_style,
    fit_titles,
    new_figure,
)

__all__ = ["OUTCOME_COLORS", "gradient_scaling", "trainability_map"]

#: Outcome -> colour (Okabe-Ito, apart from the variants' blue and vermillion).
OUTCOME_COLORS = {"trained": "#009E73", "stalled": "#E69F00", "diverged": "#CC79A7"}
_OUTCOME_TEXT = {"trained": "trained", "stalled": "stalled at chance", "diverged": "diverged"}
_LETTERS = {"trained": "T", "stalled": "S", "diverged": "D"}


def _tint(color: str, amount: float) -> tuple[float, float, float]:
    """``color`` mixed with white: 0 keeps it, 1 is white."""
    r, g, b = to_rgb(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _median_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, min and max over the last axis of the finite positive values (NaN if none)."""
    v = np.where(np.isfinite(values) & (values > 0), values, np.nan)
    ok = np.isfinite(v).any(axis=-1)
    filled = np.where(ok[..., None], v, 1.0)
    out = [np.where(ok, f(filled, axis=-1), np.nan) for f in (np.nanmedian, np.nanmin, np.nanmax)]
    return out[0], out[1], out[2]


def gradient_scaling(
    scales: ArrayLike,
    norms: ArrayLike,
    slopes: ArrayLike,
    *,
    activations: Sequence[str],
    variants: Sequence[str],
    feeds_bn: ArrayLike,
    title: str | None = None,
) -> Figure:
    """Weight-gradient norms at initialisation against the init scale, and their slopes.

    Top row, one panel per activation: ``||dL/dW_l||`` against the scale ``a`` (log-log),
    one line per layer and variant (lighter = earlier layer), the median over seeds with a
    band from the smallest to the largest. Bottom row: each layer's fitted slope of log
    norm on log scale, median over seeds with bars min..max; the layers not followed by
    BN are shaded; reference lines at 0 (no change with the scale) and -1 (Ioffe & Szegedy:
    a layer feeding BN, scaled alone).

    Args:
        scales: (S,) init scales.
        norms: (S, A, V, N, L) gradient norms at initialisation (N seeds, L layers).
        slopes: (A, V, N, L) fitted slopes.
        activations: the A activation names; variants: the V variant names (``bn``,
            ``plain`` or your own).
        feeds_bn: (L,) true where BN follows the layer (in the BN variant).
        title: Figure title.
    """
    x = np.asarray(scales, dtype=float)
    g, k = np.asarray(norms, dtype=float), np.asarray(slopes, dtype=float)
    feeds = np.asarray(feeds_bn, dtype=bool)
    n_act, n_var = len(activations), len(variants)
    if g.ndim != 5 or g.shape[:3] != (x.size, n_act, n_var) or g.shape[4] != feeds.size:
        raise ValueError(f"norms must be (S, A, V, N, L) = ({x.size}, {n_act}, {n_var}, N, "
                         f"{feeds.size}), got {g.shape}")  # fmt: skip
    if k.shape != g.shape[1:]:
        raise ValueError(f"slopes must be (A, V, N, L) = {g.shape[1:]}, got {k.shape}")
    n_layers = feeds.size
    labels = [display_label(v) for v in variants]
    with figure_style():
        fig = new_figure((3.7 * n_act + 0.6, 6.6))
        axes = np.asarray(fig.subplots(2, n_act, squeeze=False, sharey="row"))
        offsets = np.linspace(-0.15, 0.15, n_var) if n_var > 1 else np.zeros(1)
        for j, act in enumerate(activations):
            top, bottom = axes[0, j], axes[1, j]
            for v, label in enumerate(labels):
                color = color_for(label)
                med, lo, hi = _median_band(np.moveaxis(g[:, j, v], 1, -1))  # (S, L)
                for layer in range(n_layers):
                    shade = _tint(color, 0.65 * (1 - layer / max(n_layers - 1, 1)))
                    top.plot(x, med[:, layer], color=shade, lw=1.3, marker="o", ms=2.5)
                    top.fill_between(x, lo[:, layer], hi[:, layer], color=shade, alpha=0.15,
                                     lw=0)  # fmt: skip
                s = k[j, v]  # (N, L)
                ok = np.isfinite(s).any(axis=0)
                s_filled = np.where(ok, s, 0.0)
                s_med = np.where(ok, np.nanmedian(s_filled, axis=0), np.nan)
                s_lo = np.where(ok, np.nanmin(s_filled, axis=0), np.nan)
                s_hi = np.where(ok, np.nanmax(s_filled, axis=0), np.nan)
                pos = np.arange(1, n_layers + 1) + offsets[v]
                bottom.errorbar(pos, s_med, yerr=[s_med - s_lo, s_hi - s_med], color=color,
                                fmt="o" if v == 0 else "s", ms=4, capsize=2, lw=1)  # fmt: skip
            top.set_xscale("log")
            top.set_yscale("log")
            top.set(title=f"({'abcdefgh'[j]}) {act}: gradient at initialisation",
                    xlabel="init scale a", ylabel="‖∂L/∂W_l‖" if j == 0 else None)  # fmt: skip
            for layer in np.flatnonzero(~feeds):
                bottom.axvspan(layer + 0.5, layer + 1.5, color="0.9", lw=0, zorder=0)
            bottom.axhline(0.0, color="0.45", lw=0.8)
            bottom.axhline(-1.0, color="0.45", lw=0.8, linestyle="--")
            bottom.set_xticks(np.arange(1, n_layers + 1))
            bottom.set(title=f"({'abcdefgh'[n_act + j]}) {act}: fitted slopes",
                       xlabel="layer (input → output; shaded: no BN after it)",
                       ylabel="slope of log ‖∂L/∂W_l‖ on log a" if j == 0 else None)  # fmt: skip
        handles = [Line2D([], [], color=color_for(lab), marker="o" if v == 0 else "s",
                          label=lab) for v, lab in enumerate(labels)]  # fmt: skip
        handles += [
            Line2D([], [], color="0.6", lw=1.3, label="lighter: earlier layer"),
            Line2D([], [], color="0.45", lw=0.8, linestyle="--",
                   label="−1: one layer feeding BN scaled alone (Ioffe & Szegedy)"),
        ]  # fmt: skip
        bottom_legend(fig, handles)
        seeds = g.shape[3]
        fig.suptitle(title or "Does BN tame large initial weights? Every weight tensor × a; "
                     f"median over {seeds} seeds, band and bars: min..max")  # fmt: skip
        fit_titles(fig)
    return fig


def trainability_map(
    scales: ArrayLike,
    counts: Mapping[str, ArrayLike],
    *,
    activations: Sequence[str],
    variants: Sequence[str],
    accuracy: ArrayLike | None = None,
    diverged_at: ArrayLike | None = None,
    title: str | None = None,
) -> Figure:
    """Which networks train: rows activation x variant, columns init scale.

    Each cell is split left to right by how many seeds trained, stalled at chance or
    diverged (colours :data:`OUTCOME_COLORS`), with the counts written in it (``3T``,
    ``2T 1S``) and, when given, the median held-out accuracy and the first divergence.

    Args:
        scales: (S,) init scales.
        counts: outcome (``trained``, ``stalled``, ``diverged``) -> (S, A, V) seed counts.
        activations: the A activations; variants: the V variants.
        accuracy: (S, A, V) median held-out accuracy (NaN: none).
        diverged_at: (S, A, V) the earliest step a seed diverged at (NaN: none), written
            in the cell.
        title: Figure title.
    """
    x = [f"{s:g}" for s in np.asarray(scales, dtype=float)]
    unknown = set(counts) - set(OUTCOME_COLORS)
    if unknown:
        raise ValueError(f"unknown outcomes {sorted(unknown)}: counts are keyed by "
                         f"{', '.join(OUTCOME_COLORS)}")  # fmt: skip
    shape = (len(x), len(activations), len(variants))
    c = {o: np.asarray(counts.get(o, np.zeros(shape)), dtype=float) for o in OUTCOME_COLORS}
    for o, a in c.items():
        if a.shape != shape:
            raise ValueError(f"counts[{o!r}] must be (S, A, V) = {shape}, got {a.shape}")
    acc = None if accuracy is None else np.asarray(accuracy, dtype=float)
    div = None if diverged_at is None else np.asarray(diverged_at, dtype=float)
    for name, a in (("accuracy", acc), ("diverged_at", div)):
        if a is not None and a.shape != shape:
            raise ValueError(f"{name} must be (S, A, V) = {shape}, got {a.shape}")
    rows = [(j, v) for j in range(len(activations)) for v in range(len(variants))]
    with figure_style():
        fig = new_figure((1.05 * len(x) + 2.4, 0.55 * len(rows) + 1.9))
        ax = fig.subplots()
        for r, (j, v) in enumerate(rows):
            for i in range(len(x)):
                total = sum(c[o][i, j, v] for o in c)
                left = i
                for o in OUTCOME_COLORS:
                    n = c[o][i, j, v]
                    if total and n:
                        ax.add_patch(Rectangle((left, r), n / total, 1, lw=0,
                                               color=_tint(OUTCOME_COLORS[o], 0.35)))  # fmt: skip
                        left += n / total
                ax.add_patch(Rectangle((i, r), 1, 1, fill=False, lw=0.8, ec="white"))
                text = " ".join(f"{int(c[o][i, j, v])}{_LETTERS[o]}" for o in c
                                if c[o][i, j, v]) or "–"  # fmt: skip
                if acc is not None and np.isfinite(acc[i, j, v]):
                    text += f"\nacc {acc[i, j, v]:.2f}"
                if div is not None and np.isfinite(div[i, j, v]):
                    text += f"\nfrom step {int(div[i, j, v])}"
                ax.text(i + 0.5, r + 0.5, text, ha="center", va="center", fontsize="small")
        for j in range(1, len(activations)):
            ax.axhline(j * len(variants), color="0.2", lw=1.2)
        ax.set_xlim(0, len(x))
        ax.set_ylim(len(rows), 0)
        ax.set_xticks(np.arange(len(x)) + 0.5, x)
        names = [f"{activations[j]} · {display_label(variants[v])}" for j, v in rows]
        ax.set_yticks(np.arange(len(rows)) + 0.5, names)
        ax.tick_params(length=0)
        ax.grid(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_xlabel("init scale a (every weight tensor × a)")
        handles = [Patch(color=_tint(col, 0.35), label=f"{_LETTERS[o]}: {_OUTCOME_TEXT[o]}")
                   for o, col in OUTCOME_COLORS.items()]  # fmt: skip
        bottom_legend(fig, handles)
        fig.suptitle(title or "Trainability: seeds per outcome (acc: median held-out accuracy)")
        fit_titles(fig)
    return fig
