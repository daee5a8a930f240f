"""Internal covariate shift figure (Santurkar et al. Fig. 3)."""

from __future__ import annotations

import numpy as np
import pytest

from landscape import render
from tests.render.helpers import figure_texts, render_png

# Missing glyphs, layout failures and the like surface as warnings: treat them as failures.
pytestmark = pytest.mark.filterwarnings("error")


def _ics_run(rng: np.random.Generator, n: int = 50, layers: int = 11) -> dict:
    return {
        "step": np.arange(n) * 10,
        "l2": rng.random((n, layers)),
        "cos": 1 - 0.3 * rng.random((n, layers)),
        "layers": [f"features.{3 * i}.weight" for i in range(layers)],
    }


def test_ics_figure_default_and_named_layers(rng: np.random.Generator) -> None:
    runs = {"plain": _ics_run(rng), "bn": _ics_run(rng)}
    fig = render.ics_figure(runs)
    assert len(fig.axes) == 4  # 2 layers x (l2, cos)
    titles = figure_texts(fig)
    assert "layer 5 of 11" in titles and "layer 10 of 11" in titles  # the paper's choice
    assert fig.axes[2].get_ylabel() == "cos(G, G′)"
    render_png(fig)

    fig = render.ics_figure(runs, layers=["features.0.weight"], title="Fig. 3, deep linear net")
    assert len(fig.axes) == 2 and fig.get_suptitle() == "Fig. 3, deep linear net"
    with pytest.raises(ValueError, match="no layer 'conv99'"):
        render.ics_figure(runs, layers=["conv99"])


def test_ics_cosines_near_one_are_drawn_as_one_minus_cos(rng: np.random.Generator) -> None:
    """A tiny learning rate (the paper's DLN at 1e-7): cos within 1e-9 of 1."""
    runs = {"plain": _ics_run(rng), "bn": _ics_run(rng)}
    for run in runs.values():
        run["cos"] = 1 - 1e-9 * rng.random(run["cos"].shape)
    fig = render.ics_figure(runs, layers=[0])
    ax_cos = fig.axes[1]
    assert ax_cos.get_yscale() == "log" and ax_cos.get_ylabel().startswith("1 − cos")
    assert 0 < np.nanmax(ax_cos.lines[0].get_ydata()) <= 1e-9
    render_png(fig)
