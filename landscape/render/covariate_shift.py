"""Santurkar et al. (NeurIPS 2018) Fig. 3: internal covariate shift over training.

- :func:`ics_figure` - the l2 difference and the cosine between a layer's gradient G and its
  gradient G′ after the earlier layers' update of the same step (Definition 2.1), for two
  layers, every run overlaid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from landscape.render.common import finite_or_nan, has_positive, positive_or_nan, require_keys
from landscape.render.santurkar import _rows
from landscape.render.style import (
    bottom_legend,
    colors_for,
    display_label,
    figure_style,
    fit_titles,
    new_figure,
)

__all__ = ["ics_figure"]


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
        bottom_legend(fig, handles)
        fig.suptitle(
            title
            or "Internal covariate shift: gradient G of a layer vs G′ after the earlier layers "
            "are updated"
        )
        fit_titles(fig)
    return fig
