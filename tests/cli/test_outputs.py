"""No command replaces a file it did not write: ``--overwrite`` replaces an output of the
command's own kind, never a run's log, a checkpoint or a text file (before: ``landscape probe
RUN --out RUN/run.h5 --overwrite`` replaced the run's log and exited 0)."""

from __future__ import annotations

import pytest

from tests.cli.helpers import error_line, invoke

TINY = ["--model", "mlp", "--model-option", "depth=1", "--model-option", "width=8",
        "--steps", "4", "--batch-size", "32", "--eval-every", "2", "--device", "cpu",
        "-q"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs") / "run"
    assert invoke("train", *TINY, "--out", out).exit_code == 0
    (out / "notes.txt").write_text("my notes")
    return out


TARGETS = {
    "the run's log": ("run.h5", "holds a run log"),
    "a checkpoint": ("checkpoints/bn/step_0000004.pt", "holds a checkpoint"),
    "a text file": ("notes.txt", "holds a file"),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("command", ["probe", "slice"])
def test_overwrite_never_replaces_a_file_of_another_kind(run, command, target):
    path, needle = run / TARGETS[target][0], TARGETS[target][1]
    before = path.read_bytes()
    origin = run / "checkpoints" / "plain" / "step_0000000.pt"
    args = {
        "probe": ["probe", run, "--batches", "1", "--count", "2", "--device", "cpu", "-q"],
        "slice": ["slice", origin, "--x", "-1:1:2", "--examples", "20", "--device", "cpu", "-q"],
    }[command]
    line = error_line(invoke(*args, "--out", path, "--overwrite"))
    assert needle in line and "never replaced" in line, line
    assert path.read_bytes() == before


def test_plots_replace_figures_only(run):
    """A figure's path that holds something else (a paper draft named like a figure) stays."""
    draft = run / "figures" / "fig1_training.png"
    draft.parent.mkdir(exist_ok=True)
    draft.write_text("my draft")
    line = error_line(invoke("plot", "training", run))
    assert "fig1_training.png holds a file, not a figure" in line
    assert draft.read_text() == "my draft"
    (run / "paper.pdf").write_text("my paper")
    line = error_line(invoke("plot", "training", run, "--out", run / "paper"))
    assert "paper.pdf holds a file, not a figure" in line
    assert (run / "paper.pdf").read_text() == "my paper"
    assert not (run / "paper.png").exists()  # checked before anything is written
    draft.unlink()


def test_train_overwrite_replaces_a_run_and_nothing_else(tmp_path):
    home = tmp_path / "home"
    (home / "checkpoints").mkdir(parents=True)
    (home / "checkpoints" / "thesis.pt").write_text("two years of work")
    line = error_line(invoke("train", *TINY, "--out", home, "--overwrite"))
    assert "holds no run.h5: it is not a run of landscape train" in line
    assert (home / "checkpoints" / "thesis.pt").read_text() == "two years of work"
    (home / "run.h5").write_text("not a log")
    assert "holds a file, not a run log" in error_line(invoke("train", *TINY, "--out", home))
    assert "is a file" in error_line(invoke("train", *TINY, "--out", home / "run.h5"))
    run = tmp_path / "run"
    assert invoke("train", *TINY, "--out", run).exit_code == 0
    (run / "figures").mkdir(exist_ok=True)
    (run / "figures" / "draft.txt").write_text("keep")
    result = invoke("train", *TINY, "--out", run, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (run / "figures" / "draft.txt").read_text() == "keep"
    assert sorted(p.name for p in (run / "checkpoints" / "bn").iterdir()) == [
        "step_0000000.pt",
        "step_0000004.pt",
    ]
