"""Training curves (Santurkar et al. Fig. 1) on the Agg backend."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from landscape import render

# Missing glyphs, layout failures and the like surface as warnings: treat them as failures.
pytestmark = pytest.mark.filterwarnings("error")


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


STD, BN = "Standard", "Standard + BatchNorm"


def _train_run(rng: np.random.Generator, n: int = 400, diverge_at: int | None = None) -> dict:
    step = np.arange(n)
    loss = (2.3 * np.exp(-step / 100) + 0.05) * np.exp(0.2 * rng.standard_normal(n))
    acc = np.clip(1 - 0.9 * np.exp(-step / 80) + 0.02 * rng.standard_normal(n), 0, 1)
    if diverge_at is not None:
        loss[diverge_at] = np.inf
        loss[diverge_at + 1 :] = np.nan
        acc[diverge_at:] = 0.1
    eval_step = np.arange(0, n, 50)
    return {
        "step": step,
        "loss": loss,
        "accuracy": acc,
        "eval_step": eval_step,
        "eval_loss": 1.1 * np.interp(eval_step, step, np.nan_to_num(loss, posinf=np.nan)),
        "eval_accuracy": 0.9 * acc[eval_step],
    }


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _render(fig: Figure) -> bytes:
    """Draw the figure fully (layout, text, glyphs) and return PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


def _texts(fig: Figure) -> str:
    """Every piece of text in the figure, legends and suptitle included."""
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def test_training_curves_panels_and_divergence(rng: np.random.Generator) -> None:
    runs = {"plain": _train_run(rng, diverge_at=250), "bn": _train_run(rng)}
    fig = render.training_curves(runs, title="VGG, lr 0.1", smooth=20)
    assert isinstance(fig, Figure)
    acc, held_out, loss = fig.axes
    assert len(fig.axes) == 3
    assert acc.get_ylabel() == "training accuracy (%)"
    assert held_out.get_ylabel() == "held-out accuracy (%)"
    assert loss.get_yscale() == "log"
    assert all(ax.get_xlabel() == "training step" for ax in fig.axes)
    text = _texts(fig)
    assert STD in text and BN in text and "VGG, lr 0.1" in text
    assert "diverged at step 250" in text
    assert _render(fig).startswith(PNG_MAGIC)


def test_training_curves_without_eval_and_fully_nan_loss(rng: np.random.Generator) -> None:
    run = _train_run(rng)
    empty = {**run, "eval_step": [], "eval_loss": [], "eval_accuracy": []}
    dead = {
        "step": run["step"],
        "loss": np.full(run["step"].size, np.nan),
        "accuracy": run["accuracy"],
    }
    fig = render.training_curves({"bn": empty, "plain": dead})
    text = _texts(fig)
    assert "no held-out evaluation recorded" in text and "diverged at step 0" in text
    _render(fig)


def test_training_curves_rejects_bad_input(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="smooth"):
        render.training_curves({"bn": _train_run(rng)}, smooth=-1)
    with pytest.raises(ValueError, match="lacks 'accuracy'"):
        render.training_curves({"bn": {"step": [0, 1], "loss": [1.0, 0.5]}})
    with pytest.raises(ValueError, match="lengths differ"):
        render.training_curves({"bn": {"step": [0, 1], "loss": [1.0], "accuracy": [0.1, 0.2]}})


def test_moving_average_skips_non_finite() -> None:
    out = render.moving_average([1.0, 2.0, 3.0, np.nan, 5.0], 3)
    np.testing.assert_allclose(out, [1.5, 2.0, 2.5, np.nan, 5.0])
    assert render.divergence_step([10, 20, 30], [1.0, np.inf, np.nan]) == 20
    assert render.divergence_step([10, 20], [1.0, 0.5]) is None
