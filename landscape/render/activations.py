"""Santurkar et al. (2018) Fig. 1c: the distribution of layers' inputs over training.

- :func:`activation_distributions` - one row per layer, one column per run: nested quantile
  bands (TensorBoard's distribution plot) and the median against the training step, the
  panels of a row on one y scale so that BN and plain compare directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from numpy.typing import ArrayLike

from landscape.render.common import finite_or_nan, require_keys
from landscape.render.style import colors_for, display_label, figure_style, fit_titles, new_figure

__all__ = ["activation_distributions"]

_BAND_ALPHA = 0.22  # per band; nested bands darken towards the median


def _values(run: Mapping[str, ArrayLike], label: str) -> tuple[np.ndarray, ...]:
    require_keys(run, label, ("step", "quantiles", "values", "layers"))
    step = np.asarray(run["step"], dtype=float).reshape(-1)
    q = np.asarray(run["quantiles"], dtype=float).reshape(-1)
    values = np.asarray(run["values"], dtype=float)
    names = [str(n) for n in run["layers"]]
    if values.shape != (step.size, len(names), q.size):
        raise ValueError(
            f"run {label!r}: values must be shaped (T, L, Q) = ({step.size}, {len(names)}, "
            f"{q.size}), got {values.shape}"
        )
    if np.any(np.diff(q) <= 0):
        raise ValueError(f"run {label!r}: quantiles must increase, got {q.tolist()}")
    return step, q, values, np.asarray(names)


def activation_distributions(
    runs: Mapping[str, Mapping[str, ArrayLike]],
    *,
    layers: Sequence[str] | None = None,
    layer_titles: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """The distribution of chosen layers' inputs against the training step, per run.

    Each panel shades the band between each pair of symmetric quantiles (the q-th and the
    (1 - q)-th: the outermost is the minimum-maximum range with the default levels of
    :data:`landscape.probes.ACTIVATION_QUANTILES`) and draws the median as a line.

    Args:
        runs: Mapping label -> series with ``step`` (T,), ``quantiles`` (Q,) increasing,
            ``values`` (T, L, Q) and ``layers`` (L names). Labels ``plain``/``bn`` read
            "Standard" / "Standard + BatchNorm" and keep their colours.
        layers: The layers to draw, one row each (default: all of the first run's).
        layer_titles: A row's title by layer name (default: the name).
        title: Figure title.

    Returns:
        The figure (one axes per layer and run).

    Raises:
        ValueError: If ``runs`` is empty, a key is missing, shapes disagree or a layer is
            not in a run.
    """
    if not runs:
        raise ValueError("activation_distributions needs at least one run")
    data = {key: _values(run, key) for key, run in runs.items()}
    first = next(iter(data.values()))[3].tolist()
    rows = list(layers) if layers is not None else first
    if not rows:
        raise ValueError("layers must name at least one layer")
    labels = {key: display_label(key) for key in runs}
    colors = colors_for(labels.values())
    with figure_style():
        fig = new_figure((3.9 * len(runs) + 0.4, 2.7 * len(rows) + 0.9))
        grid = fig.subplots(len(rows), len(runs), sharex=True, sharey="row", squeeze=False)
        for col, (key, (step, q, values, names)) in enumerate(data.items()):
            color = colors[labels[key]]
            for row, layer in enumerate(rows):
                ax = grid[row, col]
                where = np.flatnonzero(names == layer)
                if where.size == 0:
                    raise ValueError(f"run {key!r} has no layer {layer!r}; it has {list(names)}")
                v = finite_or_nan(values[:, where[0], :])
                for i in range(q.size // 2):
                    ax.fill_between(step, v[:, i], v[:, q.size - 1 - i], color=color,
                                    alpha=_BAND_ALPHA, linewidth=0)  # fmt: skip
                median = np.array([np.interp(0.5, q, r) for r in v])
                ax.plot(step, median, color=color, linewidth=1.2)
                name = (layer_titles or {}).get(layer, layer)
                ax.set_title(f"{labels[key]}\n{name}")
                if col == 0:
                    ax.set_ylabel("layer input value")
                if row == len(rows) - 1:
                    ax.set_xlabel("training step")
        outer = q.size // 2
        bands = [f"{100 * q[i]:g}–{100 * q[q.size - 1 - i]:g} %" for i in range(outer)]
        handles = [Patch(color="0.3", alpha=min(1.0, _BAND_ALPHA * (i + 1)), label=b)
                   for i, b in enumerate(bands)]  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center", ncols=max(1, len(handles)),
                   title="quantile bands (shaded: nested; line: median)")  # fmt: skip
        fig.suptitle(title or "Distribution of layer inputs over training")
        fit_titles(fig)
    return fig
