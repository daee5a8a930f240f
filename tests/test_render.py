"""Smoke and contract tests of landscape.render on the Agg backend (no pyplot)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from landscape import render

# Missing glyphs, layout failures and the like surface as warnings: treat them as failures.
pytestmark = pytest.mark.filterwarnings("error")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STD, BN = "Standard", "Standard + BatchNorm"


# ---------------------------------------------------------------------------------------------
# synthetic data


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


def _ics_run(rng: np.random.Generator, n: int = 50, layers: int = 11) -> dict:
    return {
        "step": np.arange(n) * 10,
        "l2": rng.random((n, layers)),
        "cos": 1 - 0.3 * rng.random((n, layers)),
        "layers": [f"features.{3 * i}.weight" for i in range(layers)],
    }


def _bowl(scale: float, nx: int = 21, ny: int = 17) -> tuple[np.ndarray, ...]:
    x, y = np.linspace(-1, 1, nx), np.linspace(-1, 1, ny)
    xx, yy = np.meshgrid(x, y)
    return x, y, 0.05 + scale * (xx**2 + 0.5 * yy**2)


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


def _contour_sets(fig: Figure) -> list[ContourSet]:
    return [a for ax in fig.axes for a in ax.collections if isinstance(a, ContourSet)]


# ---------------------------------------------------------------------------------------------
# style


def test_fixed_colours_and_labels() -> None:
    assert render.color_for(STD) == render.color_for("plain") == "#D55E00"
    assert render.color_for(BN) == render.color_for("bn") == "#0072B2"
    assert render.LABELS == {"plain": STD, "bn": BN}
    assert render.color_for("lr 0.5") == render.color_for("lr 0.5")  # stable across calls
    assert render.color_for("lr 0.5") not in (render.color_for(STD), render.color_for(BN))
    # yellow is unreadable as a title on white: never a label's own colour
    assert "#F0E442" not in {render.color_for(f"model (file {c})") for c in "ABCDEFGH"}


def test_colors_for_gives_distinct_colours() -> None:
    labels = [STD, BN, *(f"run {i}" for i in range(6))]
    colours = render.colors_for(labels)
    assert list(colours) == labels
    assert len(set(colours.values())) == len(labels)
    assert colours[STD] == "#D55E00" and colours[BN] == "#0072B2"


def test_builders_leave_global_rcparams_alone(rng: np.random.Generator) -> None:
    before = dict(matplotlib.rcParams)
    render.training_curves({"plain": _train_run(rng)})
    assert dict(matplotlib.rcParams) == before


def test_render_never_uses_pyplot() -> None:
    uses_pyplot = re.compile(
        r"^\s*(import matplotlib\.pyplot|from matplotlib(\.pyplot)? import"
        r" .*pyplot|from matplotlib\.pyplot import)",
        re.MULTILINE,
    )
    for source in Path(render.__file__).parent.glob("*.py"):
        assert not uses_pyplot.search(source.read_text(encoding="utf-8")), source.name


def test_save_figure_writes_png_and_pdf(tmp_path: Path, rng: np.random.Generator) -> None:
    fig = render.training_curves({"plain": _train_run(rng), "bn": _train_run(rng)})
    paths = render.save_figure(fig, tmp_path / "sub" / "dir" / "curves.png")
    assert paths == [tmp_path / "sub/dir/curves.png", tmp_path / "sub/dir/curves.pdf"]
    png, pdf = (p.read_bytes() for p in paths)
    assert png.startswith(PNG_MAGIC) and len(png) > 1024
    assert pdf.startswith(b"%PDF") and len(pdf) > 1024
    assert sorted(p.name for p in (tmp_path / "sub/dir").iterdir()) == ["curves.pdf", "curves.png"]


def test_save_figure_keeps_unknown_suffix_and_rejects_unknown_format(tmp_path: Path) -> None:
    fig = Figure()
    fig.add_subplot().plot([0, 1], [0, 1])
    (path,) = render.save_figure(fig, tmp_path / "run.lr0.1", formats=("png",))
    assert path.name == "run.lr0.1.png" and path.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="unknown figure format"):
        render.save_figure(fig, tmp_path / "x", formats=("bmpx",))
    assert not list(tmp_path.glob(".*tmp"))


# ---------------------------------------------------------------------------------------------
# training curves


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


# ---------------------------------------------------------------------------------------------
# Santurkar et al. figures


def test_gradient_landscape_eta_range_follows_a_schedule(rng: np.random.Generator) -> None:
    """Per-row step sizes (an lr schedule halving the lr after step 30): the title gives
    the range over all rows, not the first row's grid."""
    run = _probe_run(rng, 1.0)
    etas = np.tile(run["step_sizes"], (60, 1))
    etas[30:] /= 2
    run["step_sizes"] = etas
    assert "η ∈ [0.025, 0.4]" in _texts(render.gradient_landscape({"bn": run}))


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
    text = _texts(fig)
    assert STD in text and BN in text and "η ∈ [0.05, 0.4]" in text
    _render(fig)


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
    _render(fig)


def test_ics_figure_default_and_named_layers(rng: np.random.Generator) -> None:
    runs = {"plain": _ics_run(rng), "bn": _ics_run(rng)}
    fig = render.ics_figure(runs)
    assert len(fig.axes) == 4  # 2 layers x (l2, cos)
    titles = _texts(fig)
    assert "layer 5 of 11" in titles and "layer 10 of 11" in titles  # the paper's choice
    assert fig.axes[2].get_ylabel() == "cos(G, G′)"
    _render(fig)

    fig = render.ics_figure(runs, layers=["features.0.weight"])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="no layer 'conv99'"):
        render.ics_figure(runs, layers=["conv99"])


# ---------------------------------------------------------------------------------------------
# Li et al. slices


def test_line_plot_twin_axes_and_log() -> None:
    a = np.linspace(-1, 1, 41)
    values = {"train_loss": 0.1 + a**2, "test_accuracy": 1 - 0.5 * a**2}
    values["train_loss"][3] = np.nan  # not computed yet
    fig = render.line_plot(a, values, label="bn", log=True)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_yscale() == "log" and acc_ax.get_ylabel() == "accuracy (%)"
    assert np.nanmax(acc_ax.get_lines()[0].get_ydata()) == pytest.approx(100.0)
    _render(fig)
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
    _render(fig)


@pytest.mark.parametrize("kind", ["contour", "contourf", "heatmap", "surface"])
def test_surface_plot_kinds_with_nan(kind: str) -> None:
    x, y, z = _bowl(2.0)
    z[10:, 12:] = np.nan
    fig = render.surface_plot(x, y, z, kind=kind, log=True, title="slice")
    assert len(fig.axes) == 2  # plot + colourbar
    assert "cells computed" in fig.axes[0].get_title()
    _render(fig)


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
    _render(fig)


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
    assert "no computed values yet" in _texts(fig)
    _render(fig)


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
    _render(fig)


@pytest.mark.parametrize("kind", ["heatmap", "surface"])
def test_compare_surfaces_shared_norm_other_kinds(kind: str) -> None:
    x, y, z1 = _bowl(8.0)
    _, _, z2 = _bowl(1.0)
    fig = render.compare_surfaces({STD: (x, y, z1), BN: (x, y, z2)}, kind=kind, vmax=5.0)
    norms = [c.norm for ax in fig.axes[:2] for c in ax.collections if c.get_array() is not None]
    assert len(norms) == 2
    assert (norms[0].vmin, norms[0].vmax) == (norms[1].vmin, norms[1].vmax)
    assert norms[0].vmax == 5.0
    _render(fig)


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
    _render(fig)


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
    _render(fig)
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
    assert "no finite values" in _texts(render.surface_plot(x, y, dead, computed=~done))
    assert "no computed values yet" in _texts(render.surface_plot(x, y, dead))
    with pytest.raises(ValueError, match="computed must be shaped like the values"):
        render.surface_plot(x, y, z, computed=done.T)


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
    assert "no finite values" in _texts(fig)
    _render(fig)
