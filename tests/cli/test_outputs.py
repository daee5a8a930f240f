"""No command replaces a file it did not write: ``--overwrite`` replaces an output of the
command's own kind, never a run's log, a checkpoint or a text file (before: ``landscape probe
RUN --out RUN/run.h5 --overwrite`` replaced the run's log and exited 0)."""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from tests.cases import locked_elsewhere
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


def _slice(checkpoint, out):
    args = ["slice", checkpoint, "--x", "-1:1:2", "--examples", "20", "--device", "cpu", "-q"]
    assert invoke(*args, "--out", out).exit_code == 0


def test_train_overwrite_never_deletes_through_a_link(tmp_path):
    """run/checkpoints linked to another run's: before, --overwrite emptied the other run's
    folder, then failed (and failed again on every later try)."""
    run, keep = tmp_path / "run", tmp_path / "keep"
    for out in (run, keep):
        assert invoke("train", *TINY, "--out", out).exit_code == 0
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").symlink_to(keep / "checkpoints")
    kept = sorted(p.name for p in (keep / "checkpoints" / "bn").iterdir())
    line = error_line(invoke("train", *TINY, "--out", run, "--overwrite"))
    assert f"{run / 'checkpoints'} is a symbolic link: train --overwrite never deletes" in line
    assert sorted(p.name for p in (keep / "checkpoints" / "bn").iterdir()) == kept
    assert (run / "run.h5").exists()


def test_train_overwrite_removes_what_the_run_wrote_and_nothing_else(tmp_path):
    """Before, any ZIP was a checkpoint, an empty file nothing, any PDF a figure, and every
    slice file went (also one of another run's checkpoint). A slice is the run's when the
    checkpoints it records (variant, name, SHA-256) are the run's: here the other run has
    another seed (a bit-identical copy of the run's checkpoint would count as the run's)."""
    run, other = tmp_path / "run", tmp_path / "other"
    assert invoke("train", *TINY, "--out", run).exit_code == 0
    assert invoke("train", *TINY, "--seed", "1", "--out", other).exit_code == 0
    (run / "figures").mkdir()
    (run / "checkpoints" / "my_analysis.npz").write_bytes(b"PK\x03\x04 my arrays")
    (run / "checkpoints" / "bn" / "notes.zip").write_bytes(b"PK\x03\x04 my notes")
    (run / "checkpoints" / "KEEP_empty_marker").touch()
    (run / "figures" / "my_paper.pdf").write_bytes(b"%PDF-1.5\nthesis\n")
    _slice(other / "checkpoints" / "bn" / "step_0000004.pt", run / "slices" / "theirs.h5")
    _slice(run / "checkpoints" / "bn" / "step_0000004.pt", run / "slices" / "own.h5")
    assert invoke("plot", "training", run).exit_code == 0
    assert invoke("probe", run, "--batches", "1", "--count", "2", "--device", "cpu", "-q",
                  ).exit_code == 0  # fmt: skip
    yours = ["checkpoints/KEEP_empty_marker", "checkpoints/bn/notes.zip",
             "checkpoints/my_analysis.npz", "figures/my_paper.pdf", "slices/theirs.h5"]  # fmt: skip
    before = {name: (run / name).read_bytes() for name in yours}
    result = invoke("train", *TINY, "--out", run, "--overwrite")
    assert result.exit_code == 0, result.output
    assert {name: (run / name).read_bytes() for name in yours} == before
    gone = ["slices/own.h5", "probes.h5", "figures/fig1_training.png", "figures/fig1_training.pdf"]
    assert not any((run / name).exists() for name in gone)


def test_plots_never_replace_an_image_landscape_did_not_draw(run, tmp_path):
    """Before, any PDF or PNG counted as a figure: `plot ... --out thesis.pdf` replaced it."""
    thesis = tmp_path / "thesis.pdf"
    thesis.write_bytes(b"%PDF-1.5\nthesis\n")
    line = error_line(invoke("plot", "training", run, "--out", thesis))
    assert f"{thesis} holds an image landscape did not draw, not a figure" in line
    assert "delete it yourself to redraw it" in line  # figures drawn before the stamp
    assert thesis.read_bytes() == b"%PDF-1.5\nthesis\n"
    assert not (tmp_path / "thesis.png").exists()
    ours = tmp_path / "ours"
    for _ in range(2):  # a figure landscape drew is drawn again
        assert invoke("plot", "training", run, "--out", ours).exit_code == 0


def test_train_overwrite_leaves_an_output_another_process_is_writing(tmp_path):
    """`landscape probe RUN` holds the writer lock of RUN/probes.h5: --overwrite is refused
    and deletes nothing (before, it deleted the probe file under the running probe)."""
    run = tmp_path / "run"
    assert invoke("train", *TINY, "--out", run).exit_code == 0
    assert invoke("probe", run, "--batches", "1", "--count", "2", "--device", "cpu", "-q",
                  ).exit_code == 0  # fmt: skip
    with locked_elsewhere(run / "probes.h5"):
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        line = error_line(invoke("train", *TINY, "--out", run, "--overwrite"))
        assert "probes.h5 is being written by another process" in line
        assert "nothing was deleted" in line
        assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize("command", ["slice", "probe", "plot"])
def test_a_fifo_as_output_is_refused_not_waited_on(run, tmp_path, command):
    """Before, the guard opened the FIFO to read its kind and the command hung."""
    fifo = tmp_path / ("f.png" if command == "plot" else "f.h5")
    os.mkfifo(fifo)
    origin = run / "checkpoints" / "plain" / "step_0000000.pt"
    args = {
        "slice": ["slice", origin, "--x", "-1:1:2", "--examples", "20", "--device", "cpu", "-q",
                  "--out", fifo],
        "probe": ["probe", run, "--batches", "1", "--count", "2", "--device", "cpu", "-q",
                  "--out", fifo],
        "plot": ["plot", "training", run, "--out", tmp_path / "f"],
    }[command]  # fmt: skip
    done = {}
    thread = threading.Thread(target=lambda: done.update(r=invoke(*args)), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # frees the blocked reader
        pytest.fail(f"landscape {command} hung on a FIFO")
    line = error_line(done["r"])
    assert f"{fifo} is a FIFO, not a regular file" in line
