"""Figures of the Hessian over training (Ghorbani et al. 2019; Yao et al. 2020).

- :func:`hessian_over_training` - top eigenvalues, trace and curvature along the gradient
  against the training step, every run overlaid (log axes where the values are positive),
  the probes' effective beta beside the curvature along the gradient when given.
- :func:`spectral_densities` - one panel per run: the density of the spectrum on a log axis,
  with the top eigenvalues marked (outliers show as isolated bumps far right of the bulk).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
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

__all__ = ["hessian_over_training", "spectral_densities"]


def _column(run: Mapping[str, ArrayLike], key: str, label: str, n: int) -> np.ndarray:
    a = np.asarray(run[key], dtype=float)
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[0] != n:
        raise ValueError(f"run {label!r}: {key} must have one row per step ({n}), got "
                         f"{np.shape(run[key])}")  # fmt: skip
    return a


def hessian_over_training(
    runs: Mapping[str, Mapping[str, ArrayLike]], *, title: str | None = None
) -> Figure:
    """Curvature against the training step, every run overlaid.

    Three panels: (a) the top eigenvalues ``lambda_1 >= lambda_2 >= ...`` (the largest
    solid, the others thinner); (b) the trace with a band of +- one standard error; (c)
    ``g^T H g / |g|^2``, the curvature along the gradient, and, where the run holds the
    probes' ``beta`` (effective beta-smoothness), that too, dashed, on the same axes.

    Args:
        runs: Mapping label -> series with ``step`` (T,), ``eigenvalues`` (T, k), and
            optionally ``trace`` (T,), ``trace_stderr`` (T,), ``curvature_gradient`` (T,),
            ``beta_step`` (B,) with ``beta`` (B,). Labels ``plain``/``bn`` read "Standard" /
            "Standard + BatchNorm".
        title: Figure title.
    """
    if not runs:
        raise ValueError("hessian_over_training needs at least one run")
    labels = {key: display_label(key) for key in runs}
    colors = colors_for(labels.values())
    with figure_style():
        fig = new_figure((12.0, 3.8))
        ax_eig, ax_tr, ax_cg = fig.subplots(1, 3, sharex=True)
        pos = {"eig": [], "tr": [], "cg": []}
        for key, run in runs.items():
            require_keys(run, key, ("step", "eigenvalues"))
            color, step = colors[labels[key]], np.asarray(run["step"], dtype=float).reshape(-1)
            eig = _column(run, "eigenvalues", key, step.size)
            for j in range(eig.shape[1]):  # the largest bold, the others thin
                width, alpha = (1.6, 1.0) if j == 0 else (0.7, 0.6)
                ax_eig.plot(step, finite_or_nan(eig[:, j]), color=color, lw=width, alpha=alpha)
            pos["eig"].append(eig[:, 0])
            if "trace" in run:
                tr = _column(run, "trace", key, step.size)[:, 0]
                ax_tr.plot(step, finite_or_nan(tr), color=color)
                if "trace_stderr" in run:
                    se = _column(run, "trace_stderr", key, step.size)[:, 0]
                    ax_tr.fill_between(step, tr - se, tr + se, color=color, alpha=0.25, lw=0)
                pos["tr"].append(tr)
            if "curvature_gradient" in run:
                cg = _column(run, "curvature_gradient", key, step.size)[:, 0]
                ax_cg.plot(step, finite_or_nan(cg), color=color)
                pos["cg"].append(cg)
            if "beta" in run and "beta_step" in run:
                beta = np.asarray(run["beta"], dtype=float).reshape(-1)
                ax_cg.plot(np.asarray(run["beta_step"], dtype=float).reshape(-1),
                           finite_or_nan(beta), color=color, linestyle="--")  # fmt: skip
                pos["cg"].append(beta)
        for ax, name in ((ax_eig, "eig"), (ax_tr, "tr"), (ax_cg, "cg")):
            values = np.concatenate(pos[name]) if pos[name] else np.array([])
            if values.size and has_positive(values) and np.all(values[np.isfinite(values)] > 0):
                ax.set_yscale("log")
        ax_eig.set(title="(a) top Hessian eigenvalues", xlabel="training step", ylabel="λ")
        ax_tr.set(title="(b) trace", xlabel="training step", ylabel="tr H (± 1 s.e.)")
        ax_cg.set(title="(c) curvature along the gradient", xlabel="training step",
                  ylabel="gᵀHg / ‖g‖²")  # fmt: skip
        for ax, name in ((ax_tr, "tr"), (ax_cg, "cg")):
            if not pos[name]:
                ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center",
                        va="center", color="0.4")  # fmt: skip
        handles = [Line2D([], [], color=colors[lab], label=lab) for lab in labels.values()]
        if any("beta" in r for r in runs.values()):
            handles.append(Line2D([], [], color="0.3", linestyle="--",
                                  label="probes' effective β (panel c)"))  # fmt: skip
        bottom_legend(fig, handles)
        fig.suptitle(title or "Hessian of the training loss over training")
        fit_titles(fig)
    return fig


def spectral_densities(
    runs: Mapping[str, Mapping[str, ArrayLike]], *, title: str | None = None
) -> Figure:
    """The Hessian's spectral density of each run, side by side on a log axis.

    Args:
        runs: Mapping label -> ``grid`` (G,), ``density`` (G,), optionally ``eigenvalues``
            (k,) (marked as outliers: vertical ticks) and ``step`` (the checkpoint, titled).
        title: Figure title.
    """
    if not runs:
        raise ValueError("spectral_densities needs at least one run")
    labels = {key: display_label(key) for key in runs}
    colors = colors_for(labels.values())
    with figure_style():
        fig = new_figure((4.6 * len(runs) + 0.6, 3.8))
        axes = np.atleast_1d(fig.subplots(1, len(runs), sharey=True))
        tops: list[float] = []
        for ax, (key, run) in zip(axes, runs.items()):
            require_keys(run, key, ("grid", "density"))
            grid = np.asarray(run["grid"], dtype=float)
            dens = np.asarray(run["density"], dtype=float)
            if grid.shape != dens.shape or grid.ndim != 1:
                raise ValueError(f"run {key!r}: grid and density must be equal 1-D arrays")
            color = colors[labels[key]]
            floor = max(float(np.nanmax(dens)) * 1e-12, 1e-300) if dens.size else 1e-300
            ax.plot(grid, positive_or_nan(np.maximum(dens, floor)), color=color)
            ax.set_yscale("log")
            tops.append(float(np.nanmax(dens)) if dens.size else np.nan)
            for lam in np.asarray(run.get("eigenvalues", []), dtype=float).reshape(-1):
                ax.axvline(lam, color=color, linestyle=":", linewidth=0.9, alpha=0.8)
            when = f" (step {int(run['step'])})" if "step" in run else ""
            ax.set_title(f"{labels[key]}{when}", color=color)
            ax.set_xlabel("eigenvalue λ")
        top = max((t for t in tops if np.isfinite(t) and t > 0), default=None)
        if top is not None:  # nine decades: the Gaussian tails, not the clipping floor
            axes[0].set_ylim(bottom=top * 1e-9)
        axes[0].set_ylabel("density (log scale)")
        fig.suptitle(title or "Hessian spectral density (dotted: top eigenvalues)")
        fit_titles(fig)
    return fig
