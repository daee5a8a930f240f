"""Training accuracy beside the distribution of activations over training (Santurkar et al.
2018, Fig. 2: Standard, Standard + BatchNorm and Standard + "noisy" BatchNorm).

Left, the training accuracy of every network against the step. Right, one row per layer and
one column per network: the distribution of one unit's activations at each recorded step as
nested bands between symmetric percentiles (``q_p`` to ``q_{100-p}``, the outermost palest)
around the median. The panels of a row share their y axis, so that a distribution that moves
(the noisy network's) reads against one that stays put.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from landscape.render.common import finite_or_nan, require_keys
from landscape.render.curves import moving_average
from landscape.render.style import (
    bottom_legend,
    colors_for,
    display_label,
    figure_style,
    fit_titles,
    new_figure,
)

__all__ = ["activation_distributions"]

_ROW_HEIGHT = 2.2  # inches per layer row
_BAND_ALPHAS = (0.18, 0.3, 0.45)  # outermost band first


def _bands(percentiles: Sequence[float]) -> tuple[list[tuple[int, int]], int | None]:
    """Index pairs (p, 100 - p) from the outside in, and the index of the median (or None)."""
    levels = [float(p) for p in percentiles]
    if levels != sorted(levels) or len(set(levels)) != len(levels):
        raise ValueError(f"percentiles must increase strictly, got {levels}")
    pairs = [
        (i, levels.index(100.0 - p)) for i, p in enumerate(levels) if p < 50 and 100.0 - p in levels
    ]
    median = levels.index(50.0) if 50.0 in levels else None
    if not pairs and median is None:
        raise ValueError(f"percentiles {levels} hold neither a pair (p, 100 - p) nor 50")
    return pairs, median


def activation_distributions(
    curves: Mapping[str, Mapping[str, ArrayLike]],
    activations: Mapping[str, Mapping[str, Mapping[str, ArrayLike]]],
    *,
    percentiles: Sequence[float],
    smooth: int = 0,
    title: str | None = None,
) -> Figure:
    """Training accuracy and per-layer activation distributions of several networks.

    Args:
        curves: label -> ``{"step": (T,), "accuracy": (T,)}`` (accuracy in [0, 1], per
            training step). Labels ``plain``/``bn``/``noisy_bn`` read "Standard", "Standard +
            BatchNorm", "Standard + "Noisy" BatchNorm".
        activations: layer title -> label -> ``{"step": (S,), "percentiles": (S, P)}``; the
            columns follow the labels of ``curves``; a label a layer lacks leaves its panel
            empty, with a note.
        percentiles: The P levels of the ``percentiles`` columns, increasing; pairs (p,
            100 - p) become bands, 50 the median line.
        smooth: Moving-average window (steps) of the accuracy curves; the raw curve is then
            drawn faintly behind (0: none).
        title: Figure title.

    Returns:
        The figure: one accuracy panel, and ``layers x labels`` distribution panels.

    Raises:
        ValueError: empty inputs, a missing key, shapes that disagree, bad percentiles.
    """
    if not curves or not activations:
        raise ValueError("activation_distributions needs curves and at least one layer")
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0 (a window in steps), got {smooth}")
    pairs, median = _bands(percentiles)
    keys = list(curves)
    labels = {key: display_label(key) for key in keys}
    colors = colors_for(labels.values())
    rows = len(activations)
    with figure_style():
        fig = new_figure((4.2 + 2.9 * len(keys), _ROW_HEIGHT * rows + 1.3))
        grid = fig.add_gridspec(rows, 1 + len(keys), width_ratios=[1.5] + [1.0] * len(keys))
        ax_acc = fig.add_subplot(grid[:, 0])
        for key in keys:
            require_keys(curves[key], key, ("step", "accuracy"))
            step = np.asarray(curves[key]["step"], dtype=float).reshape(-1)
            acc = 100.0 * finite_or_nan(np.asarray(curves[key]["accuracy"]).reshape(-1))
            if step.size != acc.size:
                raise ValueError(f"curve {key!r}: step and accuracy lengths differ")
            color = colors[labels[key]]
            if smooth > 1:
                ax_acc.plot(step, acc, color=color, alpha=0.2, lw=0.8)
                acc = moving_average(acc, smooth)
            ax_acc.plot(step, acc, color=color, label=labels[key])
        note = f" (moving average of {smooth} steps)" if smooth > 1 else ""
        ax_acc.set(title="(a) training accuracy", xlabel="training step",
                   ylabel=f"training accuracy (%){note}")  # fmt: skip
        first_panel = None
        for r, (layer, by_label) in enumerate(activations.items()):
            row_first = None
            for c, key in enumerate(keys):
                ax = fig.add_subplot(grid[r, 1 + c], sharex=first_panel, sharey=row_first)
                first_panel, row_first = first_panel or ax, row_first or ax
                _distribution(ax, by_label.get(key), key, layer, len(percentiles), pairs, median,
                              colors[labels[key]])  # fmt: skip
                if r == 0:
                    ax.set_title(labels[key])
                if c == 0:
                    ax.set_ylabel(layer)
                else:
                    ax.tick_params(labelleft=False)
                if r == rows - 1:
                    ax.set_xlabel("training step")
                else:
                    ax.tick_params(labelbottom=False)
        shown = [f"{percentiles[i]:g}-{percentiles[j]:g}%" for i, j in pairs]
        handles = [Line2D([], [], color=colors[labels[k]], label=labels[k]) for k in keys]
        if shown or median is not None:
            bands = ", ".join(shown) + (" and median" if median is not None else "")
            handles.append(Line2D([], [], color="0.45", lw=6, alpha=0.3,
                                  label=f"(b) activations: {bands}"))  # fmt: skip
        bottom_legend(fig, handles)
        fig.suptitle(title or "Training accuracy and the distribution of activations")
        fit_titles(fig)
    return fig


def _distribution(
    ax, run: Mapping[str, ArrayLike] | None, key: str, layer: str, n_levels: int,
    pairs: list[tuple[int, int]], median: int | None, color: str,
) -> None:  # fmt: skip
    """One panel: the bands and the median of one network at one layer."""
    if run is None:
        ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center",
                color="0.4")  # fmt: skip
        return
    require_keys(run, f"{layer}/{key}", ("step", "percentiles"))
    step = np.asarray(run["step"], dtype=float).reshape(-1)
    q = np.asarray(run["percentiles"], dtype=float)
    if q.shape != (step.size, n_levels):
        raise ValueError(
            f"{layer}/{key}: percentiles must be (steps, levels) = ({step.size}, {n_levels}), "
            f"got {q.shape}"
        )
    for k, (lo, hi) in enumerate(pairs):
        alpha = _BAND_ALPHAS[min(k, len(_BAND_ALPHAS) - 1)]
        ax.fill_between(step, finite_or_nan(q[:, lo]), finite_or_nan(q[:, hi]), color=color,
                        alpha=alpha, lw=0)  # fmt: skip
    if median is not None:
        ax.plot(step, finite_or_nan(q[:, median]), color=color, lw=1.2)
