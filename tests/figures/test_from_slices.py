"""landscape.figures.from_slices: slice files -> figures, checked on the returned Figure.

The files are written by the public ``landscape.run_grid`` (a tiny model, so their meta has
none of what ``landscape slice`` adds); tests that need particular values or a partial
``computed`` mask then edit the file as an interrupted or diverged run would leave it.
"""

from __future__ import annotations

import h5py
import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.collections import QuadMesh
from matplotlib.contour import ContourSet
from torch import nn

import landscape as L
from landscape.figures import compare_figure, grid_text, slice_figure

pytestmark = pytest.mark.filterwarnings("error")


def _file(path, xs="-1:1:5", ys="-1:1:4", meta=None, loss=None, computed=None):
    """A slice file from run_grid; ``loss``/``computed`` then overwrite what it holds."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
    dirs = L.random_directions(model, 1 if ys is None else 2, seed=0)
    L.run_grid(path, model, nn.CrossEntropyLoss(), data, dirs, xs, ys, meta=meta or {})
    with h5py.File(path, "r+") as f:
        if loss is not None:
            f["values/loss"][...] = loss
        if computed is not None:
            f["computed"][...] = computed
    return path


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def _panels(fig):
    """The plot axes (colourbars have a label but no title)."""
    return [ax for ax in fig.axes if ax.get_title()]


def _drawn(ax) -> bool:
    """Whether the axes shows data: contour levels, mesh cells or a line with finite points."""
    for c in ax.collections:
        if isinstance(c, ContourSet) and len(c.allsegs) and any(len(s) for s in c.allsegs):
            return True
        if isinstance(c, QuadMesh) and np.ma.count(c.get_array()):
            return True
    return any(np.isfinite(ln.get_ydata()).any() for ln in ax.get_lines())


def test_grid_text_grammar() -> None:
    assert grid_text((1,)) == "1 point" and grid_text((7,)) == "7 points"
    assert grid_text((3, 5)) == "5×3 grid"


@pytest.mark.parametrize("meta", [{}, {"kind": "random_plane", "seed": 3}, {"kind": "mine"}])
def test_files_from_run_grid_plot(tmp_path, meta) -> None:
    """run_grid files plot: meta without sources/model/dataset, and the API's own kinds."""
    path = _file(tmp_path / "api.h5", meta=meta)
    fig, kind = slice_figure(path, None, None, None)
    assert kind == "contour" and len(_panels(fig)) == 1 and _drawn(_panels(fig)[0])
    text = _texts(fig)
    assert "5×4 grid" in text and "16 examples" in text
    expected = {"random_plane": "random plane, seed 3", "mine": "mine plane"}
    assert expected.get(meta.get("kind"), "plane along the given directions") in text
    fig, _ = compare_figure((path, path), None, None, None, None)
    assert len(_panels(fig)) == 2 and all(_drawn(ax) for ax in _panels(fig))


def test_one_d_file_from_run_grid_plots_with_markers(tmp_path) -> None:
    path = _file(tmp_path / "line.h5", xs="0:0:1", ys=None, meta={"kind": "random_line"})
    fig, kind = slice_figure(path, None, None, None)
    assert kind == "line" and "random line, 1 point" in _texts(fig)
    (line,) = fig.axes[0].get_lines()  # one point: visible only as a marker
    assert line.get_marker() == "o" and list(line.get_markevery()) == [True]


def test_a_missing_meta_key_is_a_value_error(tmp_path) -> None:
    path = _file(tmp_path / "a.h5", meta={"kind": "plane", "sources": [{"role": "origin"}]})
    with pytest.raises(ValueError, match=r"a\.h5 lacks 'step'"):
        slice_figure(path, None, None, None)


def test_compare_same_variant_same_stem_keeps_both_panels(tmp_path) -> None:
    """Two runs' files of one variant with the same name: both panels, told apart by path."""
    (tmp_path / "lr0.1").mkdir()
    (tmp_path / "lr0.5").mkdir()
    a = _file(tmp_path / "lr0.1" / "bn.h5", meta={"variant": "bn"})
    b = _file(tmp_path / "lr0.5" / "bn.h5", ys="-1:1:3", meta={"variant": "bn"})
    fig, _ = compare_figure((a, b), None, None, None, None)
    panels = _panels(fig)
    assert len(panels) == 2 and all(_drawn(ax) for ax in panels)
    first, second = (ax.get_title().split("\n")[0] for ax in panels)
    assert "lr0.1/bn" in first and "lr0.5/bn" in second
    # B's own grid is under B's title, not A's in the suptitle
    assert "5×3 grid" in panels[1].get_title() and "5×3" not in fig.get_suptitle()
    with pytest.raises(ValueError, match="both labels are 'x'"):
        compare_figure((a, b), ("x", "x"), None, None, None)


def test_compare_refuses_different_kinds(tmp_path) -> None:
    """Different kinds are refused: one file's axis labels and title would describe both."""
    a = _file(tmp_path / "a.h5", meta={"kind": "pca"})
    b = _file(tmp_path / "b.h5", meta={"kind": "random"})
    with pytest.raises(ValueError, match=r"different kinds \(pca, random\)"):
        compare_figure((a, b), None, None, None, None)


def test_compare_one_d_title_names_each_file_and_is_wrapped(tmp_path) -> None:
    a = _file(tmp_path / "a.h5", xs="-1:1:5", ys=None, meta={"variant": "bn", "seed": 1})
    b = _file(tmp_path / "b.h5", xs="-1:1:9", ys=None, meta={"variant": "plain", "seed": 2})
    fig, kind = compare_figure((a, b), None, None, None, None)
    title = fig.get_suptitle()
    assert kind == "line" and "5 points" in title and "9 points" in title
    assert "the two files differ in" in title and "seed" in title
    assert max(map(len, title.split("\n"))) <= 80  # fits the 6.4-inch figure


@pytest.mark.parametrize("shape", [(1, 5), (1, 1)])
def test_single_row_grid_is_a_drawn_heatmap(tmp_path, shape) -> None:
    """A one-row grid is drawn as a heatmap with every cell (contour has no area to draw)."""
    xs = "-1:1:5" if shape[1] == 5 else "0:0:1"
    path = _file(tmp_path / "thin.h5", xs=xs, ys="0:0:1")
    fig, kind = slice_figure(path, None, None, None)
    (mesh,) = [c for c in fig.axes[0].collections if isinstance(c, QuadMesh)]
    assert kind == "heatmap" and np.ma.count(mesh.get_array()) == shape[1]
    fig, kind = compare_figure((path, path), None, None, None, None)
    assert kind == "heatmap" and all(_drawn(ax) for ax in _panels(fig))
    for k in ("contour", "contourf", "surface"):
        with pytest.raises(ValueError, match=f"has no area for a {k} plot.*--kind heatmap"):
            slice_figure(path, k, None, None)


def test_coverage_note_comes_from_the_computed_mask(tmp_path) -> None:
    """A computed NaN cell is "not finite", not "not computed"."""
    loss = np.full((4, 5), 2.0)
    loss[0, :3] = np.nan
    path = _file(tmp_path / "nan.h5", loss=loss)
    fig, _ = slice_figure(path, "heatmap", None, None)
    assert "loss not finite at 3 points" in _texts(fig) and "cells computed" not in _texts(fig)

    computed = np.ones((4, 5), dtype=np.uint8)
    computed[2:] = 0  # an interrupted run: 10 of 20 cells written
    loss[2:] = np.nan
    path = _file(tmp_path / "part.h5", loss=loss, computed=computed)
    fig, _ = slice_figure(path, None, None, None)
    assert "10 of 20 cells computed" in fig.axes[0].get_title()
    fig, _ = compare_figure((path, path), None, None, None, None)
    assert all("10 of 20 cells computed" in ax.get_title() for ax in _panels(fig))

    path = _file(tmp_path / "dead.h5", loss=np.full((4, 5), np.nan))
    text = _texts(slice_figure(path, None, None, None)[0])
    assert "no finite values" in text and "computed" not in text


def test_one_d_coverage_note(tmp_path) -> None:
    computed = np.array([1, 1, 1, 0, 0], dtype=np.uint8)
    loss = np.array([1.0, 1.1, 1.2, np.nan, np.nan])
    path = _file(tmp_path / "l.h5", ys=None, loss=loss, computed=computed)
    fig, _ = slice_figure(path, None, None, None)
    assert "3 of 5 points computed" in fig.get_suptitle()
    fig, _ = compare_figure((path, path), ("a", "b"), None, None, None)
    assert "a: 3 of 5 points computed" in fig.get_suptitle()


def test_compare_switches_to_log_when_a_panel_would_be_flat(tmp_path) -> None:
    """Log scale for a 2-6 basin next to 0.8-65 cliffs (max/min 83 < AUTO_LOG_RATIO)."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, 4), np.linspace(-1, 1, 5), indexing="ij")
    bowl = xx**2 + yy**2
    steep = _file(tmp_path / "bn.h5", loss=0.8 + 32 * bowl, meta={"variant": "bn"})
    flat = _file(tmp_path / "plain.h5", loss=2.2 + 2 * bowl, meta={"variant": "plain"})
    fig, _ = compare_figure((steep, flat), None, "contourf", None, None)
    assert "loss (log scale)" in _texts(fig)
    levels = next(c.levels for c in fig.axes[1].collections if isinstance(c, ContourSet))
    inside = np.sum((levels > 2.2) & (levels < 6.2))
    assert inside >= 4  # the flat panel spans several colours, not one
    fig, _ = compare_figure((steep, flat), None, "contourf", False, None)  # --linear wins
    assert "log scale" not in _texts(fig)
    fig, _ = compare_figure((flat, flat), None, None, None, None)  # equal ranges stay linear
    assert "log scale" not in _texts(fig)
