"""landscape.figures.from_run: figures of any run, any variant names, several runs at once.

Runs are real: ``landscape train`` on the bundled digits (a few steps of a tiny MLP) and
``ProbeCallback`` + ``H5Sink`` in a plain loop; figures are checked on their artists.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import landscape as L
from landscape.cli import main
from landscape.figures import santurkar_figures, training_figure
from landscape.render.style import FigureOptions, figure_options, overflow, save_figure
from tests.cli.helpers import error_line, invoke

TINY = ["--model", "mlp", "--model-option", "depth=1", "--model-option", "width=16", "--steps",
        "6", "--batch-size", "32", "--eval-every", "3", "--device", "cpu", "-q",
        "--probe-every", "3", "--ics-every", "3"]  # fmt: skip


def _train(path, *extra):
    result = CliRunner().invoke(main, ["train", *TINY, *extra, "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two paired runs that differ in their learning rate only."""
    root = tmp_path_factory.mktemp("runs")
    return [_train(root / "a", "--lr", "0.05"), _train(root / "b", "--lr", "0.2")]


@pytest.fixture
def sink_file(tmp_path):
    """A probe log of the README's ProbeCallback with H5Sink's default variant ("model")."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    path = tmp_path / "mine.h5"
    cb = L.ProbeCallback(every=2, step_sizes=L.StepSizes.vgg(0.1), sink=L.H5Sink(path))
    for step in range(6):
        x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
        cb(step, model, loss_fn, (x, y))
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return path


def _legend(fig) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def test_any_variant_name_and_beside_the_file(sink_file) -> None:
    result = invoke("plot", "santurkar", sink_file)
    assert result.exit_code == 0, result.output
    fig4 = sink_file.with_name("mine_fig4_gradient_landscape.png")
    assert str(fig4) in result.output and fig4.stat().st_size > 1000
    assert sink_file.with_name("mine_fig10_gradient_distance.pdf").exists()
    assert _legend(santurkar_figures(sink_file)["fig4_gradient_landscape"]) == ["model"]


def test_variants_choose_and_unknown_is_named(runs) -> None:
    figs = santurkar_figures(runs[0], variants=["bn"])
    assert _legend(figs["fig4_gradient_landscape"]) == ["Standard + BatchNorm"]
    assert _legend(figs["fig3_ics"]) == ["Standard + BatchNorm"]
    assert _legend(training_figure(runs[0])) == ["Standard + BatchNorm", "Standard"]
    line = error_line(invoke("plot", "training", runs[0], "--variants", "bn,nope"))
    assert "no variant 'nope'" in line and "bn, plain" in line


def test_several_runs_labelled_by_what_differs(runs, tmp_path) -> None:
    fig = training_figure(runs)
    assert _legend(fig) == [
        "lr 0.05: Standard + BatchNorm", "lr 0.05: Standard",
        "lr 0.2: Standard + BatchNorm", "lr 0.2: Standard",
    ]  # fmt: skip
    title = fig._suptitle.get_text()
    assert "mlp" in title and "lr" not in title and "seed 0" in title
    colours = {ln.get_color() for ln in fig.axes[0].get_lines()}
    assert len(colours) == 4  # one colour per series
    figs = santurkar_figures(runs, variants=["plain"])
    assert _legend(figs["fig4_gradient_landscape"]) == ["lr 0.05: Standard", "lr 0.2: Standard"]
    assert "lr 0.05: Standard" in _texts(figs["fig10_gradient_distance"])
    assert "--out" in error_line(invoke("plot", "santurkar", *runs))
    result = invoke("plot", "santurkar", *runs, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "cmp").iterdir()} == {
        f"fig{n}.{ext}" for n in ("4_gradient_landscape", "10_gradient_distance", "3_ics")
        for ext in ("png", "pdf")
    }  # fmt: skip


def test_same_config_falls_back_to_names(runs, tmp_path) -> None:
    copy = _train(tmp_path / "again", "--lr", "0.05")
    assert _legend(training_figure([runs[0], copy], variants=["bn"])) == [
        "a: Standard + BatchNorm", "again: Standard + BatchNorm",
    ]  # fmt: skip


def test_paper_options_size_dpi_formats_font_style(runs, tmp_path) -> None:
    style = tmp_path / "paper.mplstyle"
    style.write_text("axes.facecolor: eeeeee\n")
    out = tmp_path / "fig"
    args = ["--format", "svg,png", "--size", "8,3.5", "--dpi", "80", "--font-size", "12",
            "--style", style, "--out", out]  # fmt: skip
    result = invoke("plot", "training", runs[0], *args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("fig.*")) == ["fig.png", "fig.svg"]
    png = matplotlib.image.imread(tmp_path / "fig.png")
    assert png.shape[:2] == (280, 640)  # 3.5 x 80 by 8 x 80 pixels
    with figure_options(FigureOptions(size=(8, 3.5), font_size=12, style=str(style))):
        fig = training_figure(runs[0])
    assert tuple(fig.get_size_inches()) == (8, 3.5) and overflow(fig) is None
    assert fig.axes[0].xaxis.label.get_fontsize() == 12
    assert matplotlib.colors.to_hex(fig.axes[0].get_facecolor()) == "#eeeeee"
    assert matplotlib.rcParams["axes.facecolor"] != "#eeeeee"  # the global rc is untouched


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--size", "5x3"], "W,H"),
        (["--size", "0,3"], "size"),
        (["--format", "bmpx"], "unknown figure format"),
        (["--font-size", "200"], "font size"),
        (["--style", "no-such-style"], "neither a file nor a matplotlib style"),
    ],
)
def test_bad_figure_options_are_one_line(runs, tmp_path, args, needle) -> None:
    line = error_line(invoke("plot", "training", runs[0], *args, "--out", tmp_path / "x"))
    assert needle in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("size", [(6.5, 3.2), (12.0, 3.8)])
def test_labels_stay_inside_the_figure(runs, size) -> None:
    """What is drawn (titles, labels, ticks, a four-entry legend) lies within the figure."""
    with figure_options(FigureOptions(size=size, font_size=10)):
        figs = [training_figure(runs), *santurkar_figures(runs).values()]
    for fig in figs:
        assert overflow(fig) is None  # all that is drawn lies on the canvas
        box = fig.bbox
        for artist in [*fig.legends, *(t for t in [fig._suptitle] if t is not None)]:
            ext = artist.get_window_extent()
            inside = (ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1
                      and ext.y0 >= box.y0 - 1 and ext.y1 <= box.y1 + 1)  # fmt: skip
            assert inside, (size, artist, ext, box)


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")  # matplotlib's own note
def test_too_small_a_size_grows_the_file_not_clips_it(runs, tmp_path, caplog) -> None:
    with figure_options(FigureOptions(size=(4.0, 2.6), font_size=14, dpi=50, formats=("png",))):
        fig = training_figure(runs)
        (png,) = save_figure(fig, tmp_path / "small")
    drawn = overflow(fig, draw=False)  # the extent of what the last save drew
    assert drawn is not None  # three panels, a title and a legend do not fit 4 x 2.6 in
    height, width = matplotlib.image.imread(png).shape[:2]
    # grown to hold what is drawn (give or take a pixel), never cropped below 4 x 2.6 in
    assert width >= 50 * drawn.width - 2 and height >= 50 * drawn.height - 2
    assert width > 200 and height >= 130
    assert "do not fit 4 x 2.6 in" in caplog.text and "--size" in caplog.text


def test_offline_probe_files_as_runs(runs, tmp_path) -> None:
    run = _train(tmp_path / "c", "--checkpoint-every", "3")
    assert invoke("probe", run, "--batches", "1", "--device", "cpu", "-q").exit_code == 0
    figs = santurkar_figures(run / "probes.h5")
    assert set(figs) == {"fig4_gradient_landscape", "fig10_gradient_distance"}
    steps = figs["fig4_gradient_landscape"].axes[2].get_lines()[0].get_xdata()
    np.testing.assert_array_equal(steps, [0, 3, 6])
