"""2-D slice figures: kinds, levels, shared colour scale, single rows, coverage notes."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from landscape import render
from tests.render.helpers import BN, STD, figure_texts, render_png

# Missing glyphs, layout failures and the like surface as warnings: treat them as failures.
pytestmark = pytest.mark.filterwarnings("error")


def _bowl(scale: float, nx: int = 21, ny: int = 17) -> tuple[np.ndarray, ...]:
    x, y = np.linspace(-1, 1, nx), np.linspace(-1, 1, ny)
    xx, yy = np.meshgrid(x, y)
    return x, y, 0.05 + scale * (xx**2 + 0.5 * yy**2)


def _contour_sets(fig: Figure) -> list[ContourSet]:
    return [a for ax in fig.axes for a in ax.collections if isinstance(a, ContourSet)]


@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap", "surface"])
def test_surface_plot_kinds_with_nan(kind: str) -> None:
    x, y, z = _bowl(2.0)
    z[10:, 12:] = np.nan
    fig = render.surface_plot(x, y, z, kind=kind, log=True, title="slice")
    assert len(fig.axes) == 2  # plot + colourbar
    assert "cells computed" in fig.axes[0].get_title()
    render_png(fig)


def test_surface_plot_contour_levels_and_trajectory() -> None:
    x, y, z = _bowl(2.0)
    traj = np.c_[np.linspace(0.9, 0.0, 10), np.linspace(0.8, 0.0, 10)]
    fig = render.surface_plot(
        x,
        y,
        z,
        levels=[0.1, 0.5, 1.0, 2.0],
        trajectory=traj,
        xlabel="PC 1 (72.1 % of variance)",
        ylabel="PC 2 (11.3 %)",
    )
    (cs,) = _contour_sets(fig)
    np.testing.assert_allclose(cs.levels, [0.1, 0.5, 1.0, 2.0])
    assert cs.labelTexts  # the levels are labelled
    ax = fig.axes[0]
    assert ax.get_xlabel() == "PC 1 (72.1 % of variance)"
    assert len(ax.get_lines()) == 2  # path and final point
    render_png(fig)


def test_surface_plot_rejects_bad_input() -> None:
    x, y, z = _bowl(1.0)
    with pytest.raises(ValueError, match="unknown surface kind 'wireframe'"):
        render.surface_plot(x, y, z, kind="wireframe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"z must be shaped \(len\(y\), len\(x\)\)"):
        render.surface_plot(x, y, z.T)
    with pytest.raises(ValueError, match="trajectory"):
        render.surface_plot(x, y, z, trajectory=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="unknown surface kind"):
        render.compare_surfaces({"bn": (x, y, z)}, kind="mesh")  # type: ignore[arg-type]


def test_surface_plot_all_nan_is_a_blank_panel() -> None:
    x, y, z = _bowl(1.0)
    fig = render.surface_plot(x, y, np.full_like(z, np.nan))
    assert "no computed values yet" in figure_texts(fig)
    render_png(fig)


@pytest.mark.parametrize("kind", ["contour", "contourf"])
@pytest.mark.parametrize("log", [False, True])
def test_compare_surfaces_shares_levels_and_norm(kind: str, log: bool) -> None:
    x, y, z_plain = _bowl(8.0)
    _, _, z_bn = _bowl(1.0)
    z_bn[0, 0] = np.nan
    fig = render.compare_surfaces(
        {"plain": (x, y, z_plain), "bn": (x, y, z_bn)}, kind=kind, log=log
    )
    assert len(fig.axes) == 3  # two panels, one colourbar
    filled = [cs for cs in _contour_sets(fig) if cs.filled == (kind == "contourf")]
    a, b = filled
    np.testing.assert_array_equal(a.levels, b.levels)
    assert (a.norm.vmin, a.norm.vmax) == (b.norm.vmin, b.norm.vmax)
    # the scale spans the union of both panels' values
    assert a.norm.vmin == pytest.approx(np.nanmin(z_bn))
    assert a.norm.vmax == pytest.approx(np.nanmax(z_plain))
    note = f"{z_bn.size - 1} of {z_bn.size} cells computed"
    assert [ax.get_title() for ax in fig.axes[:2]] == [STD, f"{BN}\n{note}"]
    render_png(fig)


@pytest.mark.parametrize("kind", ["heatmap", "surface"])
def test_compare_surfaces_shared_norm_other_kinds(kind: str) -> None:
    x, y, z1 = _bowl(8.0)
    _, _, z2 = _bowl(1.0)
    fig = render.compare_surfaces({STD: (x, y, z1), BN: (x, y, z2)}, kind=kind, vmax=5.0)
    norms = [c.norm for ax in fig.axes[:2] for c in ax.collections if c.get_array() is not None]
    assert len(norms) == 2
    assert (norms[0].vmin, norms[0].vmax) == (norms[1].vmin, norms[1].vmax)
    assert norms[0].vmax == 5.0
    render_png(fig)


def test_compare_refuses_two_panels_with_one_shown_label() -> None:
    """ "bn" and "Standard + BatchNorm" both show as BN: one panel would hide the other."""
    x, y, z = _bowl(1.0)
    with pytest.raises(ValueError, match="would both show as 'Standard \\+ BatchNorm'"):
        render.compare_surfaces({"bn": (x, y, z), BN: (x, y, 2 * z)})
    with pytest.raises(ValueError, match="would both show as"):
        render.compare_lines({"bn": (x, {"loss": x**2}), BN: (x, {"loss": x})})


def test_compare_surfaces_per_panel_labels_and_notes() -> None:
    x, y, z = _bowl(1.0)
    fig = render.compare_surfaces(
        {"plain": (x, y, z), "bn": (x, y, z)},
        xlabel={"plain": "PC 1 (80.0 %)", "bn": "PC 1 (60.0 %)"},
        notes={"bn": "11×9 grid"},
        title="a long title " * 20,
    )
    a, b = fig.axes[:2]
    assert (a.get_xlabel(), b.get_xlabel()) == ("PC 1 (80.0 %)", "PC 1 (60.0 %)")
    assert a.get_ylabel() == b.get_ylabel() == "β  (along direction d₂)"
    assert (a.get_title(), b.get_title()) == (STD, f"{BN}\n11×9 grid")
    assert fig.get_suptitle().count("\n") >= 1  # wrapped to the figure's width
    render_png(fig)


@pytest.mark.parametrize("nx", [5, 1])
def test_single_row_grid(nx: int) -> None:
    """A 1-row heatmap draws every cell; contours and surfaces have no area to draw."""
    x, y = np.linspace(-1, 1, nx), np.array([0.0])
    z = (1.0 + x**2)[None, :]
    fig = render.surface_plot(x, y, z, kind="heatmap")
    (mesh,) = fig.axes[0].collections
    assert np.ma.count(mesh.get_array()) == nx
    np.testing.assert_allclose(fig.axes[0].get_ylim(), [-0.5, 0.5])
    assert list(fig.axes[0].get_yticks()) == [0.0]  # the made-up cell height gets no ticks
    render_png(fig)
    for kind in ("contour", "contourf", "surface"):
        with pytest.raises(ValueError, match=f"a {nx}×1 grid has no area for a {kind} plot"):
            render.surface_plot(x, y, z, kind=kind)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="--kind heatmap"):
            render.compare_surfaces({"bn": (x, y, z)}, kind=kind)  # type: ignore[arg-type]


def test_coverage_note_follows_the_computed_mask() -> None:
    x, y, z = _bowl(1.0)
    z[:3] = np.nan  # computed but not finite: no "cells computed" note
    fig = render.surface_plot(x, y, z, computed=np.ones(z.shape, bool))
    assert "cells computed" not in fig.axes[0].get_title()
    done = np.ones(z.shape, bool)
    done[:3] = False
    fig = render.surface_plot(x, y, z, computed=done)
    assert f"{z.size - 3 * x.size} of {z.size} cells computed" in fig.axes[0].get_title()
    fig = render.compare_surfaces({"bn": (x, y, z)}, computed={"bn": done})
    assert "cells computed" in fig.axes[0].get_title()
    dead = np.full_like(z, np.nan)
    assert "no finite values" in figure_texts(render.surface_plot(x, y, dead, computed=~done))
    assert "no computed values yet" in figure_texts(render.surface_plot(x, y, dead))
    with pytest.raises(ValueError, match="computed must be shaped like the values"):
        render.surface_plot(x, y, z, computed=done.T)
