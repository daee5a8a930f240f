"""Pictures of result objects for notebooks (IPython's ``_repr_png_``).

``SliceResult._repr_png_`` and ``ProbeResult._repr_png_`` call :func:`png_of`, which reads
the result by its fields (a slice has ``x``, ``y``, ``values``; a probe ``step_sizes``,
``loss``, ``grad_distance``), so that rendering never imports the numerical wings.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from landscape.render.common import finite_or_nan
from landscape.render.lines import line_plot
from landscape.render.style import figure_style, new_figure
from landscape.render.surfaces import surface_plot

__all__ = ["png_of", "probe_figure"]

_DPI = 80


def png_of(result: Any) -> bytes:
    """PNG bytes of a slice (its loss surface or lines) or of a gradient probe."""
    if hasattr(result, "step_sizes") and hasattr(result, "grad_distance"):
        fig = probe_figure(result.step_sizes, result.loss, result.grad_distance, result.beta,
                           result.base_loss)  # fmt: skip
    elif result.y is None:
        fig = line_plot(result.x, result.values, computed=result.computed)
    else:
        z = result.values["loss"]
        fig = surface_plot(result.x, result.y, z, computed=result.computed, kind="heatmap")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def probe_figure(
    step_sizes: Any, loss: Any, grad_distance: Any, beta: float, base_loss: float | None = None
) -> Figure:
    """Loss and gradient change along the probed direction over the step sizes; the loss at
    theta itself (eta = 0) as an open marker when ``base_loss`` is given."""
    eta = np.asarray(step_sizes, dtype=float)
    with figure_style():
        fig = new_figure((7.0, 2.8))
        left, right = fig.subplots(1, 2)
        left.plot(eta, np.asarray(loss, dtype=float), marker="o")
        if base_loss is not None:
            left.plot([0.0], [base_loss], marker="o", markerfacecolor="none", color="0.3")
            left.annotate("θ", (0.0, base_loss), textcoords="offset points", xytext=(5, 3))
        left.set(xlabel="step size η", ylabel="loss L(θ − η d)")
        right.plot(eta, finite_or_nan(grad_distance), marker="o")
        right.set(xlabel="step size η", ylabel="‖∇L(θ − η d) − g‖", ylim=(0, None))
        right.set_title(f"effective β {beta:.4g}")
    return fig
