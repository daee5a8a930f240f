"""Figures of Santurkar et al. (NeurIPS 2018), "How Does Batch Normalization Help Optimization?".

- :func:`gradient_landscape` - Fig. 4: loss variation, gradient predictiveness and
  "effective" beta-smoothness along the gradient, over training.
- :func:`gradient_distance_vs_step` - Fig. 10: gradient change as a function of step size.
- :func:`ics_figure` - Fig. 3: internal covariate shift of two layers over training.

Notation on the axes: at parameters θ with mini-batch gradient ∇L(θ), the probe looks at
θ − η∇L for step sizes η in a grid; see docs/science.md, Section 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from numpy.typing import ArrayLike

from landscape.render.common import finite_or_nan, has_positive, positive_or_nan, require_keys
from landscape.render.style import (
    colors_for,
    display_label,
    figure_style,
    fit_titles,
    legend_columns,
    new_figure,
)

__all__ = ["gradient_distance_vs_step", "gradient_landscape", "ics_figure"]

_BAND_ALPHA = 0.3
_STEP_CMAP = "viridis"

LOSS_LABEL = "loss at θ − η∇L\n(min–max over η)"
GRAD_DIST = "‖∇L(θ − η∇L) − ∇L(θ)‖₂"
BETA_LABEL = "max over η of\n‖∇L(θ − η∇L) − ∇L(θ)‖₂ / ‖η∇L(θ)‖₂"


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
    of that gradient change divided by the distance moved ‖η∇L‖₂.

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

        ax_loss.set(title="(a) loss landscape", xlabel="training step", ylabel=LOSS_LABEL)
        ax_grad.set(
            title="(b) gradient predictiveness",
            xlabel="training step",
            ylabel=f"{GRAD_DIST}\n(min–max over η)",
        )
        ax_beta.set(title="(c) “effective” β-smoothness", xlabel="training step", ylabel=BETA_LABEL)
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
        ncols = legend_columns([h.get_label() for h in handles], fig.get_figwidth())
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols)
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

    Each panel shows ‖∇L(θ − η∇L) − ∇L(θ)‖₂ against η, one curve per probed training step
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
        axes[0].set_ylabel(GRAD_DIST)
        sm = ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=list(axes), label="training step", shrink=0.95)
        fig.suptitle("Gradient change along the gradient vs step size")
        fit_titles(fig)
    return fig


def _default_layers(names: Sequence[str]) -> list[int]:
    """A middle and a deep layer: about 40 % and 90 % of the depth.

    For an 11-layer VGG this gives layers 5 and 10 (1-based), the paper's choice.
    """
    n = len(names)
    return sorted({round(0.4 * (n - 1)), round(0.9 * (n - 1))})


def _layer_index(names: Sequence[str], layer: str | int, label: str) -> int:
    if isinstance(layer, (int, np.integer)):
        if not -len(names) <= layer < len(names):
            raise ValueError(f"run {label!r}: layer index {layer} out of range 0..{len(names) - 1}")
        return int(layer) % len(names)
    try:
        return list(names).index(layer)
    except ValueError:
        raise ValueError(
            f"run {label!r} has no layer {layer!r}; its layers are {list(names)}"
        ) from None


_NEAR_ONE = 1e-3  # cosines this close to 1 are drawn as 1 - cos, on a log axis


def _draw_cosines(ax: Axes, curves: list[tuple[np.ndarray, np.ndarray, str]]) -> None:
    """cos(G, G') against the step; as 1 - cos on a log axis when every finite value is
    within ``_NEAR_ONE`` of 1 (tiny learning rates: a linear axis shows only an offset)."""
    values = np.concatenate([c for _, c, _ in curves])
    finite = values[np.isfinite(values)]
    gaps = 1.0 - finite
    if finite.size and gaps.max() < _NEAR_ONE and has_positive(gaps):
        for step, cos, color in curves:
            ax.plot(step, positive_or_nan(1.0 - cos), color=color)
        ax.set_yscale("log")
        ax.set(xlabel="training step", ylabel="1 − cos(G, G′) (log scale)")
        return
    for step, cos, color in curves:
        ax.plot(step, cos, color=color)
    ax.set(xlabel="training step", ylabel="cos(G, G′)")
    ax.axhline(1.0, color="0.5", linewidth=0.8, linestyle=":")


def ics_figure(
    runs: Mapping[str, Mapping[str, ArrayLike]],
    *,
    layers: Sequence[str | int] | None = None,
    title: str | None = None,
) -> Figure:
    """Santurkar et al. Fig. 3: internal covariate shift of chosen layers over training.

    One column per layer with two panels against the training step: the l2 difference
    ‖G − G′‖₂ and the cosine cos(G, G′) between the layer's gradient G and its gradient G′
    after the preceding layers have taken their update of the same step (same batch).
    All runs are overlaid in each panel; cosines all within 1e-3 of 1 are drawn as 1 − cos
    on a log axis.

    Args:
        runs: Mapping label -> ICS series with ``step`` (T,), ``l2`` (T, L), ``cos`` (T, L)
            and ``layers`` (L names, the columns of ``l2`` and ``cos``).
        layers: Layers to show, by name (or by index into the first run's ``layers``).
            Default: a middle and a deep layer (about 40 % and 90 % of the depth).
        title: Figure title (default: what the panels show).

    Returns:
        The figure (2 axes per chosen layer).

    Raises:
        ValueError: If ``runs`` is empty, a layer is unknown or shapes disagree.
    """
    if not runs:
        raise ValueError("ics_figure needs at least one run")
    labels = {key: display_label(key) for key in runs}
    colors = colors_for(labels.values())
    for key, run in runs.items():
        require_keys(run, key, ("step", "l2", "cos", "layers"))
    first_key = next(iter(runs))
    first_names = [str(n) for n in runs[first_key]["layers"]]
    if not first_names:
        raise ValueError(f"run {first_key!r} lists no layers")
    chosen = list(layers) if layers is not None else _default_layers(first_names)
    if not chosen:
        raise ValueError("layers must name at least one layer")
    # Integers index the first run's layers; names are looked up in every run below.
    chosen_names = [
        c if isinstance(c, str) else first_names[_layer_index(first_names, c, first_key)]
        for c in chosen
    ]

    with figure_style():
        ncol = len(chosen_names)
        fig = new_figure((4.2 * ncol + 0.6, 5.6))
        grid = fig.subplots(2, ncol, sharex="col", squeeze=False)
        for col, name in enumerate(chosen_names):
            ax_l2, ax_cos = grid[0, col], grid[1, col]
            curves = []
            for key, run in runs.items():
                names = [str(n) for n in run["layers"]]
                j = _layer_index(names, name, key)
                step = np.asarray(run["step"], dtype=float).reshape(-1)
                l2 = _rows(run, "l2", key, step.size)
                cos = _rows(run, "cos", key, step.size)
                if l2.shape[1] != len(names) or cos.shape[1] != len(names):
                    raise ValueError(
                        f"run {key!r}: l2 and cos need one column per layer ({len(names)}), "
                        f"got {l2.shape[1]} and {cos.shape[1]}"
                    )
                color = colors[labels[key]]
                ax_l2.plot(step, finite_or_nan(l2[:, j]), color=color)
                curves.append((step, finite_or_nan(cos[:, j]), color))
            _draw_cosines(ax_cos, curves)
            depth = len(first_names)
            where = (
                f"layer {first_names.index(name) + 1} of {depth}\n" if name in first_names else ""
            )
            ax_l2.set_title(f"{where}{name}")
            ax_l2.set_ylabel("‖G − G′‖₂")
        handles = [Line2D([], [], color=colors[lab], label=lab) for lab in labels.values()]
        ncols = legend_columns([h.get_label() for h in handles], fig.get_figwidth())
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols)
        fig.suptitle(
            title
            or "Internal covariate shift: gradient G of a layer vs G′ after the earlier layers "
            "are updated"
        )
        fit_titles(fig)
    return fig
