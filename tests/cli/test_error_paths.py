"""Every command's error paths: one ``Error:`` line naming the problem and the fix, exit 2,
no traceback, nothing written (README "Bad input ...", docs/reliability.md section 4).

An output path the file system refuses (a part of it is a file: ``--out /dev/null/run``) for
every command that writes; flags that exclude each other; a ``--checkpoint`` file without the
``--out`` it needs; and the command-line checks of probe, hessian and train that no other
test reaches.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import error_line, invoke

TINY = ["--model", "mlp", "--model-option", "depth=1", "--model-option", "width=8",
        "--steps", "4", "--batch-size", "32", "--eval-every", "2", "--device", "cpu",
        "-q"]  # fmt: skip
FAST = ["--device", "cpu", "-q"]
SWEEP = ["sweep", "init-scale", "--scales", "1", "--activation", "relu", "--seeds", "0",
         "--steps", "2", "--grad-steps", "1", "--probe-every", "0", "--no-figures",
         *FAST]  # fmt: skip


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A tiny run with inline probes, its Hessians and a 2x2 slice: every command's input."""
    root = tmp_path_factory.mktemp("errors")
    run = root / "run"
    assert invoke("train", *TINY, "--probe-every", "2", "--out", run).exit_code == 0
    hessian = ["hessian", run, "--examples", "20", "--top-k", "1", "--no-trace", *FAST]
    assert invoke(*hessian).exit_code == 0
    ckpt = run / "checkpoints" / "bn" / "step_0000004.pt"
    slice_file = root / "s.h5"
    args = ["slice", ckpt, "--x", "-1:1:2", "--y", "-1:1:2", "--examples", "20", *FAST]
    assert invoke(*args, "--out", slice_file).exit_code == 0
    sweep_file = root / "sweep.h5"
    assert invoke(*SWEEP, "--out", sweep_file).exit_code == 0
    return {"run": run, "ckpt": ckpt, "slice": slice_file, "sweep": sweep_file}


def _command(name: str, made: dict, out) -> list:
    run, ckpt, s = made["run"], made["ckpt"], made["slice"]
    probe = ["--batches", "1", "--count", "2", *FAST]
    hessian = ["--examples", "20", "--top-k", "1", "--no-trace", *FAST]
    return {
        "train": ["train", *TINY, "--out", out],
        "demo": ["demo", "--steps", "2", "--grid", "2", "-q", "--out", out],
        "slice": ["slice", ckpt, "--x", "-1:1:2", "--examples", "20", *FAST, "--out", out / "s.h5"],
        "probe RUN": ["probe", run, *probe, "--out", out / "p.h5"],
        "probe --checkpoint": ["probe", "--checkpoint", ckpt, *probe, "--out", out / "p.h5"],
        "hessian RUN": ["hessian", run, *hessian, "--out", out / "h.h5"],
        "hessian --checkpoint": ["hessian", "--checkpoint", ckpt, *hessian, "--out", out / "h.h5"],
        "plot training": ["plot", "training", run, "--out", out / "f"],
        "plot santurkar": ["plot", "santurkar", run, "--out", out / "f"],
        "plot hessian": ["plot", "hessian", run, "--out", out / "f"],
        "plot slice": ["plot", "slice", s, "--out", out / "f"],
        "plot compare": ["plot", "compare", s, s, "--out", out / "f"],
        "export vtk": ["export", "vtk", s, "--out", out / "f.vts"],
        "sweep init-scale": [*SWEEP, "--out", out / "sweep.h5"],
        "plot sweep": ["plot", "sweep", made["sweep"], "--out", out / "f"],
    }[name]


WRITERS = ["train", "demo", "slice", "probe RUN", "probe --checkpoint", "hessian RUN",
           "hessian --checkpoint", "plot training", "plot santurkar", "plot hessian",
           "plot slice", "plot compare", "export vtk", "sweep init-scale",
           "plot sweep"]  # fmt: skip


@pytest.mark.parametrize("command", WRITERS)
def test_an_out_path_below_a_file_is_one_line_naming_the_path_and_the_fix(made, tmp_path, command):
    """Before, figures and VTK files said "holds a file, not a figure" (the wrong problem)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    out = notes / "run"
    line = error_line(invoke(*_command(command, made, out)))
    assert f"cannot write {out}" in line, line
    assert "the path is not a usable directory" in line and "choose another path" in line, line
    assert notes.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "command", ["train", "probe RUN", "plot training", "export vtk", "sweep init-scale"]
)
def test_out_below_dev_null_is_one_line(made, command):
    line = error_line(invoke(*_command(command, made, Path("/dev/null/run"))))
    assert "cannot write /dev/null/run" in line and "choose another path" in line, line


@pytest.mark.parametrize("command", ["train", "demo"])
def test_overwrite_and_resume_together_are_refused_before_anything_changes(made, command):
    run = made["run"]
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    args = ["train", *TINY] if command == "train" else ["demo", "--steps", "4", "-q"]
    line = error_line(invoke(*args, "--out", run, "--overwrite", "--resume"))
    assert line == "Error: --overwrite and --resume exclude each other: pick one"
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("command", ["probe", "hessian"])
def test_a_checkpoint_file_without_out_asks_for_out(made, tmp_path, monkeypatch, command):
    """Before (probe): ``None / "probes.h5"``, a TypeError traceback."""
    monkeypatch.chdir(tmp_path)
    line = error_line(invoke(command, "--checkpoint", made["ckpt"], *FAST))
    assert line == "Error: pass --out PATH with --checkpoint files (or a RUN directory)"
    assert list(tmp_path.iterdir()) == []
    assert "required with --checkpoint" in " ".join(invoke(command, "--help").output.split())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["probe", "{run}", "--model", "mymodels:make"],
         "--model goes with --checkpoint FILE (your own weights)"),
        (["probe", "--checkpoint", "{ckpt}", "--variant", "plain", "--out", "{tmp}/p.h5"],
         "none of the --checkpoint files is a plain checkpoint"),
        (["probe", "{tmp}"], "no bn/plain checkpoints in {tmp}: train with checkpoints"),
        (["hessian"], "nothing to compute: pass a RUN directory or --checkpoint FILE"),
        (["hessian", "{run}", "--at", "0,two"], "--at takes steps separated by commas"),
        (["hessian", "{run}", "--at", "3"], "no bn checkpoint of step 3: choose from 0, 4"),
        (["train", *TINY, "--lr-milestones", "2,x", "--out", "{tmp}/r"],
         "--lr-milestones must be comma-separated integers, got '2,x'"),
        (["train", *TINY, "--checkpoint-steps", "1.5", "--out", "{tmp}/r"],
         "--checkpoint-steps must be comma-separated integers"),
    ],
)  # fmt: skip
def test_other_command_line_checks_are_one_line(made, tmp_path, args, needle):
    names = {"run": made["run"], "ckpt": made["ckpt"], "tmp": tmp_path}
    line = error_line(invoke(*[str(a).format(**names) for a in args]))
    assert needle.format(**names) in line, line
    assert list(tmp_path.iterdir()) == []
