"""Training curves of several runs side by side (Santurkar et al. 2018, Fig. 1 style)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory
from numpy.typing import ArrayLike

from landscape.render.common import (
    finite_or_nan,
    fmt_number,
    has_positive,
    positive_or_nan,
    require_keys,
)
from landscape.render.style import (
    bottom_legend,
    colors_for,
    display_label,
    figure_style,
    fit_titles,
    new_figure,
)

__all__ = ["divergence_step", "moving_average", "training_curves"]

_FIGSIZE = (12.0, 3.6)
_RAW_ALPHA = 0.25  # raw curve drawn faintly behind its moving average
_EVAL_MARKER_SIZE = 3.5


def moving_average(values: ArrayLike, window: int) -> np.ndarray:
    """Centred moving average that skips non-finite values.

    Each output point is the mean of the finite inputs in a window of ``window`` points
    centred on it (shrinking at the ends). Points whose own input is non-finite stay NaN,
    so a diverged stretch is not painted over.

    Args:
        values: 1-D series.
        window: Window length in points; 0 or 1 returns a float copy.

    Returns:
        Array of the same length as ``values``.

    Example:
        >>> moving_average([1.0, 2.0, 3.0, float("nan")], 3).tolist()
        [1.5, 2.0, 2.5, nan]
    """
    y = finite_or_nan(values)
    if window < 0:
        raise ValueError(f"smoothing window must be >= 0, got {window}")
    if window <= 1 or y.size == 0:
        return y
    ok = np.isfinite(y)
    kernel = np.ones(int(window))
    total = np.convolve(np.where(ok, y, 0.0), kernel, mode="same")
    count = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    out[~ok] = np.nan
    return out


def divergence_step(step: ArrayLike, loss: ArrayLike) -> float | None:
    """Training step at which the loss first becomes NaN or infinite, or ``None``."""
    bad = ~np.isfinite(np.asarray(loss, dtype=float))
    if not bad.any():
        return None
    return float(np.asarray(step, dtype=float)[int(np.argmax(bad))])


def _plot_series(
    ax: Axes, x: np.ndarray, y: np.ndarray, smooth: int, color: str, label: str
) -> None:
    if smooth > 1:
        ax.plot(x, y, color=color, alpha=_RAW_ALPHA, linewidth=0.8)
        ax.plot(x, moving_average(y, smooth), color=color, label=label)
    else:
        ax.plot(x, y, color=color, label=label)


def _as_1d(run: Mapping[str, ArrayLike], key: str) -> np.ndarray:
    return np.asarray(run.get(key, ()), dtype=float).reshape(-1)


def _mark_divergence(
    axes: tuple[Axes, ...], loss_ax: Axes, step: np.ndarray, loss: np.ndarray, color: str, k: int
) -> None:
    at = divergence_step(step, loss)
    if at is None:
        return
    for ax in axes:
        ax.axvline(at, color=color, linestyle=":", linewidth=1.0, alpha=0.8)
    finite = np.isfinite(loss) & (loss > 0)
    before = finite & (step <= at)
    if before.any():
        y, transform = float(loss[before][-1]), loss_ax.transData
    else:  # never finite: mark at the top of the panel
        y, transform = 0.9, blended_transform_factory(loss_ax.transData, loss_ax.transAxes)
    loss_ax.plot(
        [at],
        [y],
        marker="x",
        markersize=9,
        markeredgewidth=2,
        color=color,
        transform=transform,
        linestyle="none",
        zorder=5,
    )
    # The note sits at the top of the panel next to the dotted line, where a decreasing loss
    # leaves room, rather than on the curves; one line per diverged run.
    lo, hi = float(np.nanmin(step)), float(np.nanmax(step))
    right_half = hi > lo and (at - lo) / (hi - lo) > 0.5
    loss_ax.text(
        at,
        0.97 - 0.08 * k,
        f" diverged at step {fmt_number(at)} ",
        transform=blended_transform_factory(loss_ax.transData, loss_ax.transAxes),
        ha="right" if right_half else "left",
        va="top",
        color=color,
        fontsize=8,
        fontweight="bold",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0},
        zorder=6,
    )


def training_curves(
    runs: Mapping[str, Mapping[str, ArrayLike]],
    *,
    title: str | None = None,
    smooth: int = 0,
) -> Figure:
    """Training accuracy, held-out accuracy and training loss of several runs.

    Three panels sharing the x axis (training step): training accuracy (%), held-out accuracy
    (%) and training loss on a log axis (held-out loss, where recorded, drawn dashed with
    markers). A run whose loss becomes NaN or infinite is drawn up to that point, and the
    divergence is marked by an ``x`` on the loss panel, the note "diverged at step N" and a
    dotted vertical line on every panel.

    Args:
        runs: Mapping label -> run. Labels ``plain``/``bn`` are shown as "Standard" /
            "Standard + BatchNorm". Each run maps
            ``step`` (T,), ``loss`` (T,), ``accuracy`` (T,) in [0, 1] per training step, and
            optionally ``eval_step`` (E,), ``eval_loss`` (E,), ``eval_accuracy`` (E,) in
            [0, 1] (E may be 0).
        title: Figure title.
        smooth: Moving-average window in points for the per-step curves (0: none); the raw
            curve is then drawn faintly behind.

    Returns:
        The figure (3 axes).

    Raises:
        ValueError: If ``runs`` is empty, a required key is missing, lengths disagree or
            ``smooth`` is negative.
    """
    if not runs:
        raise ValueError("training_curves needs at least one run")
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0 (a window in steps), got {smooth}")
    labels = {key: display_label(key) for key in runs}
    colors = colors_for(labels.values())
    with figure_style():
        fig = new_figure(_FIGSIZE)
        ax_acc, ax_eval, ax_loss = fig.subplots(1, 3, sharex=True)
        any_eval_acc = any_eval_loss = False
        for k, (key, run) in enumerate(runs.items()):
            label, color = labels[key], colors[labels[key]]
            require_keys(run, key, ("step", "loss", "accuracy"))
            step, loss, acc = (_as_1d(run, name) for name in ("step", "loss", "accuracy"))
            if not (step.size == loss.size == acc.size):
                raise ValueError(
                    f"run {key!r}: step, loss and accuracy lengths differ "
                    f"({step.size}, {loss.size}, {acc.size})"
                )
            _plot_series(ax_acc, step, 100.0 * acc, smooth, color, label)
            _plot_series(ax_loss, step, positive_or_nan(loss), smooth, color, label)

            e_step = _as_1d(run, "eval_step")
            e_acc, e_loss = _as_1d(run, "eval_accuracy"), _as_1d(run, "eval_loss")
            if e_step.size and e_acc.size == e_step.size:
                ax_eval.plot(
                    e_step,
                    100.0 * finite_or_nan(e_acc),
                    color=color,
                    marker="o",
                    markersize=_EVAL_MARKER_SIZE,
                    label=label,
                )
                any_eval_acc = True
            if e_step.size and e_loss.size == e_step.size:
                ax_loss.plot(
                    e_step,
                    positive_or_nan(e_loss),
                    color=color,
                    linestyle="--",
                    marker="o",
                    markersize=_EVAL_MARKER_SIZE,
                )
                any_eval_loss = True
            _mark_divergence((ax_acc, ax_eval, ax_loss), ax_loss, step, loss, color, k)

        ax_acc.set(
            title="training accuracy", xlabel="training step", ylabel="training accuracy (%)"
        )
        ax_eval.set(
            title="held-out accuracy", xlabel="training step", ylabel="held-out accuracy (%)"
        )
        ax_loss.set(title="loss", xlabel="training step", ylabel="loss")
        if not any_eval_acc:
            ax_eval.text(
                0.5,
                0.5,
                "no held-out evaluation recorded",
                transform=ax_eval.transAxes,
                ha="center",
                va="center",
                color="0.4",
            )
            ax_eval.set_ylim(0, 100)
        if has_positive(np.concatenate([_as_1d(r, "loss") for r in runs.values()])):
            ax_loss.set_yscale("log")
            ax_loss.set_ylabel("loss (log scale)")
        if any_eval_loss:
            ax_loss.legend(
                handles=[
                    Line2D([], [], color="0.3", label="training (per step)"),
                    Line2D(
                        [],
                        [],
                        color="0.3",
                        linestyle="--",
                        marker="o",
                        markersize=_EVAL_MARKER_SIZE,
                        label="held-out",
                    ),
                ],
                loc="lower left",
            )

        handles = [Line2D([], [], color=colors[lab], label=lab) for lab in labels.values()]
        legend_title = (
            f"moving average over {smooth} steps (raw values faint)" if smooth > 1 else None
        )
        bottom_legend(fig, handles, title=legend_title)
        if title:
            fig.suptitle(title)
        fit_titles(fig)
    return fig
