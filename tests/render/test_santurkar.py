"""Gradient landscape and gradient change figures (Santurkar et al. Figs. 4, 10)."""

from __future__ import annotations

import numpy as np
import pytest

from landscape import render
from tests.render.helpers import BN, STD, figure_texts, render_png

# Missing glyphs, layout failures and the like surface as warnings: treat them as failures.
pytestmark = pytest.mark.filterwarnings("error")


def _probe_run(rng: np.random.Generator, scale: float, n: int = 60, k: int = 6) -> dict:
    step = np.linspace(0, 3000, n)
    eta = np.linspace(0.05, 0.4, k)
    base = 2.3 * np.exp(-step / 1000)[:, None] + 0.05
    loss = base * (1 + scale * eta[None, :] * (0.5 + rng.random((n, k))))
    grad = scale * eta[None, :] * (1 + rng.random((n, k)))
    return {
        "step": step,
        "loss": loss,
        "grad_distance": grad,
        "beta": (grad / eta[None, :]).max(axis=1),
        "step_sizes": eta,
    }


def test_gradient_landscape_eta_range_follows_a_schedule(rng: np.random.Generator) -> None:
    """Per-row step sizes (an lr schedule halving the lr after step 30): the title gives
    the range over all rows, not the first row's grid."""
    run = _probe_run(rng, 1.0)
    etas = np.tile(run["step_sizes"], (60, 1))
    etas[30:] /= 2
    run["step_sizes"] = etas
    assert "η ∈ [0.025, 0.4]" in figure_texts(render.gradient_landscape({"bn": run}))


def test_gradient_landscape(rng: np.random.Generator) -> None:
    runs = {"plain": _probe_run(rng, 3.0), "bn": _probe_run(rng, 0.5)}
    runs["plain"]["loss"][20:25] = np.nan
    runs["plain"]["grad_distance"][30] = np.inf
    runs["bn"]["step_sizes"] = np.tile(runs["bn"]["step_sizes"], (60, 1))  # (T, K) form
    fig = render.gradient_landscape(runs, title="VGG")
    loss_ax, grad_ax, beta_ax = fig.axes
    assert len(fig.axes) == 3
    assert loss_ax.get_yscale() == "log" and grad_ax.get_yscale() == "linear"
    assert "θ − η∇L" in loss_ax.get_ylabel() and "min–max over η" in loss_ax.get_ylabel()
    assert "β-smoothness" in beta_ax.get_title()
    text = figure_texts(fig)
    assert STD in text and BN in text and "η ∈ [0.05, 0.4]" in text
    render_png(fig)


def test_gradient_landscape_rejects_bad_shapes(rng: np.random.Generator) -> None:
    run = _probe_run(rng, 1.0)
    with pytest.raises(ValueError, match=r"loss must be shaped \(T, K\)"):
        render.gradient_landscape({"bn": {**run, "loss": run["loss"][:-1]}})
    with pytest.raises(ValueError, match="step_sizes"):
        render.gradient_landscape({"bn": {**run, "step_sizes": [0.1, 0.2]}})


def test_gradient_distance_vs_step(rng: np.random.Generator) -> None:
    runs = {"plain": _probe_run(rng, 3.0), "bn": _probe_run(rng, 0.5)}
    fig = render.gradient_distance_vs_step(runs, max_curves=5)
    *panels, cbar = fig.axes
    assert len(panels) == 2 and cbar.get_ylabel() == "training step"
    for ax in panels:
        assert len(ax.get_lines()) == 5
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert [ax.get_title() for ax in panels] == [STD, BN]
    render_png(fig)


def test_probes_along_a_random_direction_are_labelled_with_d(rng: np.random.Generator) -> None:
    """The probes' stored ``direction`` attribute decides the axes: never "θ − η∇L" for a
    random direction; runs along different directions together read "d"."""
    gradient = {"plain": _probe_run(rng, 1.0), "bn": _probe_run(rng, 0.2)}
    random = {k: {**v, "direction": "random"} for k, v in gradient.items()}
    for builder in (render.gradient_landscape, render.gradient_distance_vs_step):
        texts = figure_texts(builder(gradient))
        assert "η∇L" in texts and "ηd" not in texts
        texts = figure_texts(builder(random))
        assert "θ − ηd" in texts and "η∇L" not in texts
    assert "along a random direction d" in figure_texts(render.gradient_distance_vs_step(random))
    mixed = {"plain": gradient["plain"], "bn": random["bn"]}
    assert "along the probe directions d" in figure_texts(render.gradient_distance_vs_step(mixed))
    assert "‖ηd‖₂" in figure_texts(render.gradient_landscape(mixed))
