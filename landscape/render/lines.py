"""1-D loss-landscape slices in the style of Li et al. (NeurIPS 2018).

f(α) = L(θ + α d) or interpolations f(α) = L((1 − α) θ + α θ′): :func:`line_plot` (one model,
loss and accuracy on twin axes) and :func:`compare_lines` (variants overlaid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from landscape.render.common import (
    coverage_note,
    finite_or_nan,
    has_positive,
    positive_or_nan,
    wrap,
)
from landscape.render.style import (
    colors_for,
    display_label,
    figure_style,
    font_points,
    new_figure,
    unique_labels,
)

__all__ = ["compare_lines", "line_plot"]

_LINE_STYLES = ("-", "--", ":", "-.")
_LEGEND_ROW_CHARS = 75  # legend text that fits one row of a 6.4-inch figure
_ACCURACY_COLOR = "0.35"  # single-model plots: accuracy in grey, loss in the model's colour
_MARKERS_UP_TO = 25  # lines with at most this many points mark every point
_WIDTH = 6.4  # figure width (inches)
DEFAULT_XLABEL_1D = "α  (parameters θ + α·d)"


def _is_accuracy(name: str) -> bool:
    return "acc" in name.lower()


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def _markevery(y: np.ndarray) -> np.ndarray:
    """Points to mark: all of a short line, else the finite points with no finite neighbour
    (a line segment needs two, so an isolated point would be invisible)."""
    if y.size <= _MARKERS_UP_TO:
        return np.ones(y.size, dtype=bool)
    ok = np.isfinite(y)
    return ok & ~np.r_[False, ok[:-1]] & ~np.r_[ok[1:], False]


def _line_styles(names: Sequence[str], *, per_axis: bool) -> dict[str, str]:
    """Linestyle per quantity, cycling solid, dashed, dotted, dash-dot.

    With ``per_axis`` the cycle restarts for the accuracies (which then differ by colour).
    """
    if not per_axis:
        return {n: _LINE_STYLES[i % len(_LINE_STYLES)] for i, n in enumerate(names)}
    losses = [n for n in names if not _is_accuracy(n)]
    accs = [n for n in names if _is_accuracy(n)]
    return {
        n: _LINE_STYLES[i % len(_LINE_STYLES)]
        for group in (losses, accs)
        for i, n in enumerate(group)
    }


def _draw_lines(
    panels: Mapping[str, tuple[ArrayLike, Mapping[str, ArrayLike]]],
    colors: Mapping[str, str],
    *,
    log: bool,
    xlabel: str | None,
    title: str | None,
    legend_variants: bool,
    computed: Mapping[str, ArrayLike] | None = None,
) -> Figure:
    """Shared body of line_plot (one model) and compare_lines (several, ``legend_variants``).

    One model: loss lines in the model's colour, accuracy lines in grey, train/test told
    apart by linestyle. Several: colour = variant, linestyle = quantity. ``computed`` (label
    -> mask of the points evaluated so far) adds "N of M points computed" to the title.
    """
    names: list[str] = []
    for _, values in panels.values():
        names += [n for n in values if n not in names]
    if not names:
        raise ValueError("no values to plot: pass e.g. {'loss': ..., 'accuracy': ...}")
    styles = _line_styles(names, per_axis=not legend_variants)
    has_acc = any(_is_accuracy(n) for n in names)
    has_loss = any(not _is_accuracy(n) for n in names)
    loss_values = [
        np.asarray(v, dtype=float).ravel()
        for _, values in panels.values()
        for n, v in values.items()
        if not _is_accuracy(n)
    ]
    log = log and bool(loss_values) and has_positive(np.concatenate(loss_values))

    with figure_style():
        fig = new_figure((_WIDTH, 4.2))
        ax = fig.add_subplot()
        ax_acc = ax.twinx() if has_acc and has_loss else (ax if has_acc else None)
        if ax_acc is not None and ax_acc is not ax:
            ax_acc.grid(False)
            ax_acc.spines["right"].set_visible(True)
        drawn = False
        for label, (x, values) in panels.items():
            x = np.asarray(x, dtype=float).ravel()
            for name, v in values.items():
                v = np.asarray(v, dtype=float).ravel()
                if v.size != x.size:
                    raise ValueError(
                        f"{label!r}: {name!r} has {v.size} values for {x.size} x positions"
                    )
                if _is_accuracy(name):
                    target, y = ax_acc, 100.0 * finite_or_nan(v)
                else:
                    target, y = ax, positive_or_nan(v) if log else finite_or_nan(v)
                color = colors[label]
                if not legend_variants and _is_accuracy(name):
                    color = _ACCURACY_COLOR
                target.plot(x, y, color=color, linestyle=styles[name], marker="o",
                            markersize=3, markevery=list(_markevery(y)))  # fmt: skip
                drawn = drawn or bool(np.isfinite(y).any())
        if not drawn:  # say why the axes are empty
            done = any(np.any(m) for m in (computed or {}).values())
            why = "no finite values" if done else "no computed values yet"
            ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_xlabel(xlabel or DEFAULT_XLABEL_1D)
        model_color = next(iter(colors.values()))
        if has_loss:
            ax.set_ylabel(
                "loss (log scale)" if log else "loss",
                color="black" if legend_variants else model_color,
            )
            if log:
                ax.set_yscale("log")
        if ax_acc is not None:
            ax_acc.set_ylabel("accuracy (%)", color="black" if legend_variants else _ACCURACY_COLOR)

        handles = []
        if legend_variants:
            handles += [Line2D([], [], color=c, label=lab) for lab, c in colors.items()]
        for n in names:
            if legend_variants:
                color = "0.3"
            else:
                color = _ACCURACY_COLOR if _is_accuracy(n) else model_color
            suffix = " (right axis)" if _is_accuracy(n) and has_loss else ""
            handles.append(
                Line2D([], [], color=color, linestyle=styles[n], label=_pretty(n) + suffix)
            )
        # One row when the labels fit the figure's width, else two columns.
        chars = sum(len(h.get_label()) for h in handles)
        ncols = min(len(handles), 4) if chars <= _LEGEND_ROW_CHARS else 2
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols)
        notes = []
        for label, mask in (computed or {}).items():
            note = coverage_note(mask, np.shape(panels[label][0]), "points")
            notes += [f"{label}: {note}" if legend_variants and note else note]
        heading = "\n".join(s for s in (title, *notes) if s)
        if heading:
            fig.suptitle(wrap(heading, fig.get_figwidth(), font_points("figure.titlesize")))
    return fig


def line_plot(
    x: ArrayLike,
    values: Mapping[str, ArrayLike],
    *,
    label: str | None = None,
    log: bool = False,
    xlabel: str | None = None,
    title: str | None = None,
    computed: ArrayLike | None = None,
) -> Figure:
    """A 1-D slice of one model: loss on the left axis, accuracy on a twin right axis.

    Args:
        x: Positions α along the slice, shape (N,).
        values: Mapping quantity -> (N,) values, e.g. ``{"train_loss": ..., "train_accuracy":
            ..., "test_loss": ...}``. Names containing "acc" are accuracies in [0, 1] (shown
            in % on the right axis); all others are losses (left axis). NaN = not computed.
        label: The model's label (e.g. "Standard"); sets the line colour and the default title.
        log: Log-scale loss axis (non-positive values are left out).
        xlabel: x-axis label (default "α  (parameters θ + α·d)").
        title: Figure title (default: ``label``).
        computed: (N,) mask of the points evaluated so far; the title says how many are
            when not all are.

    Returns:
        The figure (1 axes, 2 when both losses and accuracies are given).
    """
    name = display_label(label) if label else "model"
    colors = {name: colors_for([name])[name] if label else "#000000"}
    return _draw_lines(
        {name: (x, values)},
        colors,
        log=log,
        xlabel=xlabel,
        title=title if title is not None else (display_label(label) if label else None),
        legend_variants=False,
        computed=None if computed is None else {name: computed},
    )


def compare_lines(
    panels: Mapping[str, tuple[ArrayLike, Mapping[str, ArrayLike]]],
    *,
    log: bool = False,
    xlabel: str | None = None,
    title: str | None = None,
    computed: Mapping[str, ArrayLike] | None = None,
) -> Figure:
    """1-D slices of several variants overlaid on one axes (accuracy on a twin right axis).

    Colour identifies the variant ("Standard" vermillion, "Standard + BatchNorm" blue);
    line style identifies the quantity: solid, dashed, dotted, dash-dot, in the order the
    quantities first appear.

    Args:
        panels: Mapping label -> ``(x, values)`` as for :func:`line_plot`.
        log: Log-scale loss axis.
        xlabel: x-axis label.
        title: Figure title.
        computed: Mapping label -> (N,) mask of the points evaluated so far; the title says
            how many are for each variant where not all are.

    Returns:
        The figure (1 axes, 2 when both losses and accuracies are given).

    Raises:
        ValueError: For no variants, or two that would be shown with the same label.
    """
    if not panels:
        raise ValueError("compare_lines needs at least one variant")
    names = unique_labels(panels)
    shown = {names[k]: v for k, v in panels.items()}
    masks = {names[k]: m for k, m in (computed or {}).items()}
    return _draw_lines(shown, colors_for(shown), log=log, xlabel=xlabel, title=title,
                       legend_variants=True, computed=masks)  # fmt: skip
