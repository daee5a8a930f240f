"""Figures of Santurkar et al. (NeurIPS 2018), "How Does Batch Normalization Help Optimization?".

- :func:`gradient_landscape` - Fig. 4: loss variation, gradient predictiveness and
  "effective" beta-smoothness along the gradient, over training.
- :func:`gradient_distance_vs_step` - Fig. 10: gradient change as a function of step size.

Fig. 3 (internal covariate shift) is :mod:`.covariate_shift`.

Notation on the axes: at parameters θ with mini-batch gradient ∇L(θ), the probe looks at
θ − η∇L for step sizes η in a grid; see docs/science.md, Section 1.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from numpy.typing import ArrayLike

from landscape.render.common import finite_or_nan, has_positive, positive_or_nan, require_keys
from landscape.render.style import (
    bottom_legend,
    colors_for,
    display_label,
    figure_style,
    fit_titles,
    new_figure,
)

__all__ = ["gradient_distance_vs_step", "gradient_landscape"]

_BAND_ALPHA = 0.3
_STEP_CMAP = "viridis"

#: The probe direction d as written on the axes: the gradient, or (``direction`` "random",
#: stored with the probes) a random one; runs along different directions drawn together: d.
_DIRECTION_SYMBOL = {"gradient": "∇L", "random": "d"}
_ALONG = {"gradient": "along the gradient", "random": "along a random direction d"}


def _direction(runs: Mapping[str, Mapping[str, ArrayLike]]) -> str:
    """``gradient`` or ``random`` when every run was probed along it (a run without the
    attribute counts as ``gradient``), else ``mixed``."""
    found = {str(run.get("direction", "gradient")) for run in runs.values()}
    return found.pop() if len(found) == 1 and found <= set(_ALONG) else "mixed"


def _axis_labels(direction: str) -> tuple[str, str, str]:
    """The loss, gradient-change and beta labels for probes along ``direction``."""
    d = _DIRECTION_SYMBOL.get(direction, "d")
    grad_dist = f"‖∇L(θ − η{d}) − ∇L(θ)‖₂"
    moved = "‖η∇L(θ)‖₂" if d == "∇L" else f"‖η{d}‖₂"
    return f"loss at θ − η{d}\n(min–max over η)", grad_dist, f"max over η of\n{grad_dist} / {moved}"


def _rows(run: Mapping[str, ArrayLike], key: str, label: str, n_steps: int) -> np.ndarray:
    """A (T, K) array from ``run[key]``; a (T,) array counts as K = 1."""
    a = np.asarray(run[key], dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] != n_steps:
        raise ValueError(
            f"run {label!r}: {key} must be shaped (T, K) with T = len(step) = {n_steps}, "
            f"got {np.shape(run[key])}"
        )
    return a


def _band(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise min and max over finite entries; NaN where a row has none (no warnings)."""
    m = np.ma.masked_invalid(a)
    return m.min(axis=1).filled(np.nan), m.max(axis=1).filled(np.nan)


def _step_sizes(run: Mapping[str, ArrayLike], n_steps: int, n_eta: int, label: str) -> np.ndarray:
    """Step sizes as a (T, K) array, from a (K,) grid or a (T, K) table."""
    eta = np.asarray(run["step_sizes"], dtype=float)
    if eta.ndim == 1:
        eta = np.broadcast_to(eta, (n_steps, eta.size))
    if eta.shape != (n_steps, n_eta):
        raise ValueError(
            f"run {label!r}: step_sizes must be (K,) or (T, K) = ({n_steps}, {n_eta}), "
            f"got {np.shape(run['step_sizes'])}"
        )
    return eta


def _draw_band(ax: Axes, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str) -> None:
    ax.fill_between(x, lo, hi, color=color, alpha=_BAND_ALPHA, linewidth=0)
    ax.plot(x, lo, color=color, linewidth=0.8)
    ax.plot(x, hi, color=color, linewidth=0.8)


def _eta_note(etas: list[np.ndarray]) -> str | None:
    finite = np.concatenate([e[np.isfinite(e)].ravel() for e in etas]) if etas else np.empty(0)
    if finite.size == 0:
        return None
    counts = {e.shape[-1] for e in etas}
    n = f"{counts.pop()} step sizes" if len(counts) == 1 else "step sizes"
    return f"{n} η ∈ [{finite.min():.3g}, {finite.max():.3g}]"


def gradient_landscape(
    runs: Mapping[str, Mapping[str, ArrayLike]],
    *,
    title: str | None = None,
    log_gradient: bool = False,
) -> Figure:
    """Santurkar et al. Fig. 4: smoothness of the loss along the gradient, over training.

    Three panels against the training step: (a) the loss at θ − η∇L as a band from its
    minimum to its maximum over the step sizes η (log axis); (b) gradient predictiveness, the
    band of ‖∇L(θ − η∇L) − ∇L(θ)‖₂ over η; (c) "effective" β-smoothness, the maximum over η
    of that gradient change divided by the distance moved ‖η∇L‖₂. Runs whose ``direction``
    is ``"random"`` (the probes' stored attribute) are labelled with d for ∇L.

    Args:
        runs: Mapping label -> probe series (labels ``plain``/``bn`` are shown as "Standard" /
            "Standard + BatchNorm"). Each run maps ``step`` (T,), ``loss`` (T, K),
            ``grad_distance`` (T, K), ``beta`` (T,) and ``step_sizes`` (K,) or (T, K).
            Non-finite values are left out of the bands.
        title: Figure title (default "Gradient-direction probes"); the step-size range is
            appended on a second line.
        log_gradient: Also draw panels (b) and (c) on log axes (useful when one variant's
            gradient change is orders of magnitude larger).

    Returns:
        The figure (3 axes).

    Raises:
        ValueError: If ``runs`` is empty, a key is missing or shapes disagree.
    """
    if not runs:
        raise ValueError("gradient_landscape needs at least one run")
    labels = {key: display_label(key) for key in runs}
    colors = colors_for(labels.values())
    etas = []
    with figure_style():
        fig = new_figure((12.0, 3.8))
        ax_loss, ax_grad, ax_beta = fig.subplots(1, 3, sharex=True)
        all_loss, all_grad, all_beta = [], [], []
        empty: set[str] = set()  # runs with nothing finite to draw, flagged in the legend
        for key, run in runs.items():
            color = colors[labels[key]]
            require_keys(run, key, ("step", "loss", "grad_distance", "beta", "step_sizes"))
            step = np.asarray(run["step"], dtype=float).reshape(-1)
            loss = _rows(run, "loss", key, step.size)
            grad = _rows(run, "grad_distance", key, step.size)
            beta = np.asarray(run["beta"], dtype=float).reshape(-1)
            if beta.size != step.size:
                raise ValueError(f"run {key!r}: beta has {beta.size} values for {step.size} steps")
            etas.append(_step_sizes(run, step.size, loss.shape[1], key))

            _draw_band(ax_loss, step, *_band(positive_or_nan(loss)), color)
            grad_vals = positive_or_nan(grad) if log_gradient else finite_or_nan(grad)
            _draw_band(ax_grad, step, *_band(grad_vals), color)
            beta_vals = positive_or_nan(beta) if log_gradient else finite_or_nan(beta)
            ax_beta.plot(step, beta_vals, color=color)
            all_loss.append(loss.ravel())
            all_grad.append(grad.ravel())
            all_beta.append(beta)
            if not any(np.isfinite(a).any() for a in (loss, grad, beta)):
                empty.add(labels[key])

        loss_label, grad_dist, beta_label = _axis_labels(_direction(runs))
        ax_loss.set(title="(a) loss landscape", xlabel="training step", ylabel=loss_label)
        ax_grad.set(
            title="(b) gradient predictiveness",
            xlabel="training step",
            ylabel=f"{grad_dist}\n(min–max over η)",
        )
        ax_beta.set(title="(c) “effective” β-smoothness", xlabel="training step", ylabel=beta_label)
        if has_positive(np.concatenate(all_loss)):
            ax_loss.set_yscale("log")
        if log_gradient and has_positive(np.concatenate(all_grad)):
            ax_grad.set_yscale("log")
        if log_gradient and has_positive(np.concatenate(all_beta)):
            ax_beta.set_yscale("log")

        handles = [
            Patch(
                facecolor=colors[lab],
                alpha=0.6,
                edgecolor=colors[lab],
                label=f"{lab} (no finite values)" if lab in empty else lab,
            )
            for lab in labels.values()
        ]
        bottom_legend(fig, handles)
        head = title or "Gradient-direction probes"
        note = _eta_note(etas)
        fig.suptitle(f"{head}\n{note}" if note else head)
        fit_titles(fig)
    return fig


def _plain_log_ticks(axis: Axis) -> None:
    """Log-axis ticks at 1, 2, 5 x 10^k written as plain numbers (0.05, 0.1, 0.2).

    A step-size grid spans about one decade, where the default "3×10⁻¹" labels collide.
    """
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _pick_rows(n: int, max_curves: int) -> np.ndarray:
    if n <= max_curves:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_curves)).astype(int))


def gradient_distance_vs_step(
    runs: Mapping[str, Mapping[str, ArrayLike]],
    *,
    max_curves: int = 8,
) -> Figure:
    """Santurkar et al. Fig. 10: gradient change against step size, one panel per run.

    Each panel shows ‖∇L(θ − η∇L) − ∇L(θ)‖₂ (d for ∇L along a random direction, as for
    :func:`gradient_landscape`) against η, one curve per probed training step
    (at most ``max_curves``, evenly spread over training), coloured by training step on a
    shared colour scale with one colourbar. Axes are logarithmic where the data are positive;
    panels share the y axis so that variants compare directly.

    Args:
        runs: Mapping label -> probe series with ``step`` (T,), ``grad_distance`` (T, K) and
            ``step_sizes`` (K,) or (T, K).
        max_curves: Most curves per panel.

    Returns:
        The figure (one axes per run plus the colourbar's).

    Raises:
        ValueError: If ``runs`` is empty, ``max_curves`` < 1, a key is missing or shapes
            disagree.
    """
    if not runs:
        raise ValueError("gradient_distance_vs_step needs at least one run")
    if max_curves < 1:
        raise ValueError(f"max_curves must be >= 1, got {max_curves}")
    data = []
    for key, run in runs.items():
        require_keys(run, key, ("step", "grad_distance", "step_sizes"))
        step = np.asarray(run["step"], dtype=float).reshape(-1)
        grad = _rows(run, "grad_distance", key, step.size)
        eta = _step_sizes(run, step.size, grad.shape[1], key)
        rows = _pick_rows(step.size, max_curves)
        data.append((display_label(key), step[rows], eta[rows], grad[rows]))

    shown_steps = np.concatenate([d[1] for d in data])
    finite_steps = shown_steps[np.isfinite(shown_steps)]
    lo, hi = (finite_steps.min(), finite_steps.max()) if finite_steps.size else (0.0, 1.0)
    norm = Normalize(lo, hi if hi > lo else lo + 1.0)
    cmap = colormaps[_STEP_CMAP]
    log_x = has_positive(np.concatenate([d[2].ravel() for d in data]))
    log_y = has_positive(np.concatenate([d[3].ravel() for d in data]))

    with figure_style():
        fig = new_figure((4.0 * len(data) + 1.0, 3.6))
        axes = np.atleast_1d(fig.subplots(1, len(data), sharey=True, squeeze=False)[0])
        for ax, (label, steps, eta, grad) in zip(axes, data):
            for s, e, g in zip(steps, eta, grad):
                x = positive_or_nan(e) if log_x else finite_or_nan(e)
                y = positive_or_nan(g) if log_y else finite_or_nan(g)
                order = np.argsort(x)
                ax.plot(x[order], y[order], color=cmap(norm(s)), marker="o", markersize=3)
            ax.set(title=label, xlabel="step size η")
            if log_x:
                ax.set_xscale("log")
                _plain_log_ticks(ax.xaxis)
            if log_y:
                ax.set_yscale("log")
                _plain_log_ticks(ax.yaxis)
        direction = _direction(runs)
        axes[0].set_ylabel(_axis_labels(direction)[1])
        sm = ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=list(axes), label="training step", shrink=0.95)
        along = _ALONG.get(direction, "along the probe directions d")
        fig.suptitle(f"Gradient change {along} vs step size")
        fit_titles(fig)
    return fig
