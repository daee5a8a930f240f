"""Santurkar et al. Fig. 2: training accuracy beside activation distributions (Agg smoke
tests, and the bands drawn from the percentiles given)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from landscape import render
from tests.render.helpers import PNG_MAGIC, render_png, train_run

pytestmark = pytest.mark.filterwarnings("error")

LEVELS = (5.0, 15.0, 30.0, 50.0, 70.0, 85.0, 95.0)
KEYS = ("plain", "bn", "noisy_bn")


def distribution(rng: np.random.Generator, shift: float) -> dict:
    step = np.arange(0, 300, 10)
    centre = shift * np.sin(step / 40.0)
    spread = np.array([-1.6, -1.0, -0.5, 0.0, 0.5, 1.0, 1.6])
    return {"step": step, "percentiles": centre[:, None] + spread + 0.05 * rng.random((30, 7))}


def test_three_networks_two_layers(rng) -> None:
    curves = {k: train_run(rng, n=300) for k in KEYS}
    acts = {
        f"layer {n}": {k: distribution(rng, s) for k, s in zip(KEYS, (3.0, 0.1, 1.0))}
        for n in (3, 5)
    }
    fig = render.activation_distributions(curves, acts, percentiles=LEVELS, smooth=20)
    assert render_png(fig).startswith(PNG_MAGIC)
    assert len(fig.axes) == 1 + 2 * 3
    titles = [ax.get_title() for ax in fig.axes]
    assert 'Standard + "Noisy" BatchNorm' in titles and "Standard" in titles
    bands = [c for ax in fig.axes[1:] for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 6 * 3  # three bands (5-95, 15-85, 30-70) per panel
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[-1] == "(b) activations: 5-95%, 15-85%, 30-70% and median"
    # the panels of a row share their y axis
    row = fig.axes[1:4]
    assert all(ax.get_ylim() == row[0].get_ylim() for ax in row)


def test_a_missing_panel_says_so_and_bad_input_is_refused(rng) -> None:
    curves = {k: train_run(rng, n=300) for k in KEYS[:2]}
    fig = render.activation_distributions(
        curves, {"layer 3": {"bn": distribution(rng, 0.1)}}, percentiles=LEVELS
    )
    render_png(fig)
    assert "not recorded" in [t.get_text() for t in fig.axes[1].texts]
    with pytest.raises(ValueError, match=r"percentiles must increase strictly"):
        render.activation_distributions(curves, {"l": {}}, percentiles=(50, 5))
    with pytest.raises(ValueError, match=r"must be \(steps, levels\) = \(30, 7\), got \(30, 6\)"):
        bad = distribution(rng, 0.0)
        bad["percentiles"] = bad["percentiles"][:, :6]
        render.activation_distributions(curves, {"l": {"bn": bad}}, percentiles=LEVELS)
    with pytest.raises(ValueError, match=r"needs curves and at least one layer"):
        render.activation_distributions(curves, {}, percentiles=LEVELS)
