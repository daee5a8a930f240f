"""Helpers shared by the render tests: synthetic runs, drawing a figure, its texts."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.figure import Figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


STD, BN = "Standard", "Standard + BatchNorm"


def train_run(rng: np.random.Generator, n: int = 400, diverge_at: int | None = None) -> dict:
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


def render_png(fig: Figure) -> bytes:
    """Draw the figure fully (layout, text, glyphs) and return PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    return buf.getvalue()


def figure_texts(fig: Figure) -> str:
    """Every piece of text in the figure, legends and suptitle included."""
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
