"""Training curves (Santurkar et al. Fig. 1) on the Agg backend."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from landscape import render
from tests.render.helpers import BN, PNG_MAGIC, STD, figure_texts, render_png, train_run

# Missing glyphs, layout failures and the like surface as warnings: treat them as failures.
pytestmark = pytest.mark.filterwarnings("error")


def test_training_curves_panels_and_divergence(rng: np.random.Generator) -> None:
    runs = {"plain": train_run(rng, diverge_at=250), "bn": train_run(rng)}
    fig = render.training_curves(runs, title="VGG, lr 0.1", smooth=20)
    assert isinstance(fig, Figure)
    acc, held_out, loss = fig.axes
    assert len(fig.axes) == 3
    assert acc.get_ylabel() == "training accuracy (%)"
    assert held_out.get_ylabel() == "held-out accuracy (%)"
    assert loss.get_yscale() == "log"
    assert all(ax.get_xlabel() == "training step" for ax in fig.axes)
    text = figure_texts(fig)
    assert STD in text and BN in text and "VGG, lr 0.1" in text
    assert "diverged at step 250" in text
    assert render_png(fig).startswith(PNG_MAGIC)


def test_training_curves_without_eval_and_fully_nan_loss(rng: np.random.Generator) -> None:
    run = train_run(rng)
    empty = {**run, "eval_step": [], "eval_loss": [], "eval_accuracy": []}
    dead = {
        "step": run["step"],
        "loss": np.full(run["step"].size, np.nan),
        "accuracy": run["accuracy"],
    }
    fig = render.training_curves({"bn": empty, "plain": dead})
    text = figure_texts(fig)
    assert "no held-out evaluation recorded" in text and "diverged at step 0" in text
    render_png(fig)


def test_training_curves_rejects_bad_input(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="smooth"):
        render.training_curves({"bn": train_run(rng)}, smooth=-1)
    with pytest.raises(ValueError, match="lacks 'accuracy'"):
        render.training_curves({"bn": {"step": [0, 1], "loss": [1.0, 0.5]}})
    with pytest.raises(ValueError, match="lengths differ"):
        render.training_curves({"bn": {"step": [0, 1], "loss": [1.0], "accuracy": [0.1, 0.2]}})


def test_moving_average_skips_non_finite() -> None:
    out = render.moving_average([1.0, 2.0, 3.0, np.nan, 5.0], 3)
    np.testing.assert_allclose(out, [1.5, 2.0, 2.5, np.nan, 5.0])
    assert render.divergence_step([10, 20, 30], [1.0, np.inf, np.nan]) == 20
    assert render.divergence_step([10, 20], [1.0, 0.5]) is None
