"""``landscape sweep init-scale`` and ``landscape plot sweep``: a tiny sweep end to end."""

from __future__ import annotations

import pytest

from landscape.comparison import read_sweep
from tests.cli.helpers import error_line, invoke
from tests.studies.helpers import TINY_ARGS

pytestmark = pytest.mark.usefixtures("one_thread")

ONE = ["--scales", "1,4", "--activation", "relu", "--seeds", "0"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("cli") / "sweep.h5"
    result = invoke("sweep", "init-scale", *TINY_ARGS, *ONE, "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_sweep_writes_its_file_tables_and_figures(swept):
    out, text = swept
    s = read_sweep(out)
    assert s.computed.all() and s.coords["scale"].tolist() == [1.0, 4.0]
    assert "| activation | layer | feeds BN | BN slope | plain slope |" in text
    assert "| relu | `layers.0.linear.weight` | yes |" in text
    assert "| activation | variant | a = 1 | a = 4 |" in text
    assert "Probes, BN vs plain: beta" in text and "relu, init scale 4:" in text
    assert "threads" in text and f"sweep written to {out}" in text
    for name in ("sweep_gradient_scaling.png", "sweep_trainability.png"):
        assert (out.parent / name).is_file()


def test_a_rerun_has_nothing_to_do_and_other_settings_are_refused(swept):
    out, _ = swept
    before = out.read_bytes()
    again = invoke("sweep", "init-scale", *TINY_ARGS, *ONE, "--out", out, "--no-figures")
    assert again.exit_code == 0 and "sweep written to" in again.output
    assert out.read_bytes() == before  # nothing trained, nothing written
    other = invoke("sweep", "init-scale", *TINY_ARGS, *ONE, "--out", out, "--lr", "0.05")
    assert "other settings (train.lr)" in error_line(other)


def test_plot_sweep(swept, tmp_path):
    out, _ = swept
    result = invoke("plot", "sweep", out, "--out", tmp_path, "--format", "png")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep_gradient_scaling.png",
                                                         "sweep_trainability.png"]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--scales", "1,big"], "--scales takes floats"),
        (["--activation", "gelu"], "unknown activation 'gelu'"),
        (["--seeds", "0,0"], "names a value twice"),
        (["--threads", "-1"], "--threads must be >= 0"),
        (["--steps", "0"], "steps"),
    ],
)
def test_bad_options_are_one_error_line(tmp_path, args, match):
    result = invoke("sweep", "init-scale", *args, "--out", tmp_path / "s.h5", "-q")
    assert match in error_line(result)
    assert not (tmp_path / "s.h5").exists()
