"""landscape.figures.from_sweep: a sweep file's figures, written beside it or elsewhere."""

from __future__ import annotations

from dataclasses import replace

import pytest

from landscape.figures import plot_sweep, sweep_figures
from landscape.render.style import FigureOptions
from landscape.store import kind_of
from tests.studies.helpers import TINY, tiny_sweep

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, one_thread):
    small = replace(TINY, activations=["relu"], seeds=[0])
    return tiny_sweep(tmp_path_factory.mktemp("sweep") / "init.h5", small)


def test_the_figures_of_a_sweep(sweep):
    figs = sweep_figures(sweep)
    assert list(figs) == ["gradient_scaling", "trainability"]
    assert figs["gradient_scaling"].axes[0].get_title() == "(a) relu: gradient at initialisation"
    assert "Trainability of mlp, 8 steps" in figs["trainability"].get_suptitle()


def test_written_beside_the_file_or_elsewhere(sweep, tmp_path):
    written = plot_sweep(sweep, options=FigureOptions(formats=("png",)))
    assert [p.name for p in written] == ["init_gradient_scaling.png", "init_trainability.png"]
    assert all(p.parent == sweep.parent and kind_of(p) == "figure" for p in written)
    elsewhere = plot_sweep(sweep, tmp_path / "figs", options=FigureOptions(formats=("svg",)))
    assert [p.name for p in elsewhere] == ["init_gradient_scaling.svg", "init_trainability.svg"]


def test_a_file_that_is_not_a_sweep_is_named(tmp_path):
    (tmp_path / "x.h5").write_text("no")
    with pytest.raises(ValueError, match="not a sweep file"):
        sweep_figures(tmp_path / "x.h5")
