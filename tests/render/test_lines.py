"""1-D slice figures: twin axes, log scale, overlays, markers and coverage notes."""

from __future__ import annotations

import numpy as np
import pytest

from landscape import render
from tests.render.helpers import STD, figure_texts, render_png

# Missing glyphs, layout failures and the like surface as warnings: treat them as failures.
pytestmark = pytest.mark.filterwarnings("error")


def test_line_plot_twin_axes_and_log() -> None:
    a = np.linspace(-1, 1, 41)
    values = {"train_loss": 0.1 + a**2, "test_accuracy": 1 - 0.5 * a**2}
    values["train_loss"][3] = np.nan  # not computed yet
    fig = render.line_plot(a, values, label="bn", log=True)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_yscale() == "log" and acc_ax.get_ylabel() == "accuracy (%)"
    assert np.nanmax(acc_ax.get_lines()[0].get_ydata()) == pytest.approx(100.0)
    render_png(fig)
    assert len(render.line_plot(a, {"loss": a**2}).axes) == 1


def test_compare_lines_overlays_variants() -> None:
    a = np.linspace(-1, 1, 21)
    panels = {
        k: (a, {"loss": s * a**2, "accuracy": 1 - s * a**2 / 10})
        for k, s in (("plain", 5.0), ("bn", 1.0))
    }
    fig = render.compare_lines(panels, title="1-D")
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 2 and len(fig.axes[1].get_lines()) == 2
    colours = {ln.get_color() for ln in fig.axes[0].get_lines()}
    assert colours == {"#D55E00", "#0072B2"}
    render_png(fig)


def test_lines_mark_short_and_isolated_points_and_note_coverage() -> None:
    a = np.linspace(-1, 1, 41)
    loss = 1 + a**2
    loss[[10, 12]] = np.nan  # a finite point between two NaNs: no segment to draw
    fig = render.line_plot(a, {"loss": loss}, computed=a < 0.5)
    (line,) = fig.axes[0].get_lines()
    marked = np.flatnonzero(line.get_markevery())
    assert line.get_marker() == "o" and list(marked) == [11]
    assert "30 of 41 points computed" in fig.get_suptitle()
    fig = render.compare_lines(
        {"bn": (a[:1], {"loss": [1.0]}), "plain": (a[:1], {"loss": [2.0]})},
        computed={"bn": [True], "plain": [False]},
    )
    assert all(list(ln.get_markevery()) == [True] for ln in fig.axes[0].get_lines())
    assert f"{STD}: 0 of 1 points computed" in fig.get_suptitle()
    fig = render.line_plot(a, {"loss": np.full(41, np.nan)}, computed=np.ones(41, bool))
    assert "no finite values" in figure_texts(fig)
    render_png(fig)
