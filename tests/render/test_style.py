"""Figure style and output: fixed colours and labels, no global rc changes, save_figure."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from landscape import render
from tests.render.helpers import BN, PNG_MAGIC, STD, train_run

# Missing glyphs, layout failures and the like surface as warnings: treat them as failures.
pytestmark = pytest.mark.filterwarnings("error")


def test_fixed_colours_and_labels() -> None:
    assert render.color_for(STD) == render.color_for("plain") == "#D55E00"
    assert render.color_for(BN) == render.color_for("bn") == "#0072B2"
    assert render.LABELS == {"plain": STD, "bn": BN, "noisy_bn": 'Standard + "Noisy" BatchNorm'}
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


def test_yellow_only_when_every_other_colour_is_taken() -> None:
    """Four runs' series (as several runs drawn together give) never get the faint yellow."""
    labels = [f"lr {lr}: {v}" for lr in ("0.1", "0.05") for v in (BN, STD)]
    for extra in ([], ["a"], ["a", "b"], ["a", "b", "c"]):
        colours = render.colors_for([*labels, *extra])
        assert "#F0E442" not in colours.values()
        assert len(set(colours.values())) == len(colours)
    eight = render.colors_for([*labels, "a", "b", "c", "d"])  # 8 labels: all 8 colours
    assert len(set(eight.values())) == 8
    with_bn = render.colors_for([BN, *labels])  # a fixed label keeps its colour to itself
    assert with_bn[BN] == "#0072B2" and list(with_bn.values()).count("#0072B2") == 1


def test_builders_leave_global_rcparams_alone(rng: np.random.Generator) -> None:
    before = dict(matplotlib.rcParams)
    render.training_curves({"plain": train_run(rng)})
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
    fig = render.training_curves({"plain": train_run(rng), "bn": train_run(rng)})
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
