"""The distribution of layer inputs over training (Santurkar et al. Fig. 1c)."""

from __future__ import annotations

import numpy as np
import pytest

from landscape import render
from landscape.probes import ACTIVATION_QUANTILES
from tests.render.helpers import BN, PNG_MAGIC, STD, figure_texts, render_png

pytestmark = pytest.mark.filterwarnings("error")


def _run(rng: np.random.Generator, scale: float, n: int = 20) -> dict:
    q = np.asarray(ACTIVATION_QUANTILES)
    spread = np.sort(rng.standard_normal((n, 2, 1000)), axis=-1)
    values = np.quantile(spread * scale, q, axis=-1).transpose(1, 2, 0)  # (T, L, Q)
    return {"step": np.arange(n) * 50, "quantiles": q, "values": values,
            "layers": ["features.3.conv", "classifier.2"]}  # fmt: skip


def test_one_row_per_layer_one_column_per_run(rng: np.random.Generator) -> None:
    fig = render.activation_distributions(
        {"bn": _run(rng, 1.0), "plain": _run(rng, 5.0)},
        layer_titles={"classifier.2": "input of layer 6 of 6"},
    )
    assert len(fig.axes) == 4
    texts = figure_texts(fig)
    assert STD in texts and BN in texts and "input of layer 6 of 6" in texts
    assert "features.3.conv" in texts and "0–100 %" in texts and "30.85–69.15 %" in texts
    assert render_png(fig).startswith(PNG_MAGIC)


def test_layers_choose_rows_and_bad_input_is_named(rng: np.random.Generator) -> None:
    fig = render.activation_distributions({"bn": _run(rng, 1.0)}, layers=["classifier.2"])
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="has no layer 'nope'"):
        render.activation_distributions({"bn": _run(rng, 1.0)}, layers=["nope"])
    bad = _run(rng, 1.0)
    bad["values"] = bad["values"][:, :1]
    with pytest.raises(ValueError, match=r"\(T, L, Q\)"):
        render.activation_distributions({"bn": bad})
    with pytest.raises(ValueError, match="at least one run"):
        render.activation_distributions({})
