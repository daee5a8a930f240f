"""torchrun: the values of 2 processes (gloo, CPU) equal those of one exactly, for slices and
offline probes; a run whose rank dies resumes, with any number of processes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape import distributed
from landscape.cli import main
from landscape.probes import read_offline_probes
from landscape.slices import read_grid, run_grid
from landscape.train import TrainConfig, train_pair
from tests.cli.helpers import error_line
from tests.torchrun_slice import GRID, META, model_and_data

HERE = Path(__file__).parent
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same arithmetic in every process
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]


def torchrun(n: int, *args, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*TORCHRUN, str(n), *map(str, args)], env=ONE_THREAD,
                            capture_output=True, text=True, cwd=HERE.parent)  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def one_process(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "landscape", *map(str, args)],
                            env=ONE_THREAD, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("torchrun") / "run"
    config = TrainConfig(model="mlp", model_options={"depth": 1, "width": 16}, steps=12,
                         batch_size=32, eval_every=6, checkpoint_every=4, device="cpu")  # fmt: skip
    train_pair(config, out)
    return out


def test_a_slice_on_two_processes_equals_one(run, tmp_path):
    ckpt = run / "checkpoints" / "bn" / "step_0000012.pt"
    args = ["slice", ckpt, "--x", "-1:1:9", "--y", "-1:1:7", "--examples", "100",
            "--device", "cpu", "-q"]  # fmt: skip
    one_process(*args, "--out", tmp_path / "one.h5")
    two = torchrun(2, "-m", "landscape", *args, "--out", tmp_path / "two.h5")
    assert two.stdout.count("two.h5: 9×7 grid") == 1  # rank 0 reports, once
    a, b = read_grid(tmp_path / "one.h5"), read_grid(tmp_path / "two.h5")
    assert a.computed.all() and b.computed.all() and a.values.keys() == b.values.keys()
    for name in a.values:
        assert np.array_equal(a.values[name], b.values[name]), name


def test_offline_probes_on_two_processes_equal_one(run, tmp_path):
    args = ["probe", run, "--batches", "2", "--count", "3", "--ics", "--device", "cpu", "-q"]
    one_process(*args, "--out", tmp_path / "one.h5")
    torchrun(2, "-m", "landscape", *args, "--out", tmp_path / "two.h5")
    a, b = read_offline_probes(tmp_path / "one.h5"), read_offline_probes(tmp_path / "two.h5")
    assert a.keys() == b.keys() == {"bn", "plain"}
    for v in a:
        assert a[v].keys() == b[v].keys()
        assert [k for k in a[v] if not np.array_equal(a[v][k], b[v][k])] == [], v
    with h5py.File(tmp_path / "one.h5") as f, h5py.File(tmp_path / "two.h5") as g:
        for v in ("bn", "plain"):
            ics_a, ics_b = f[f"offline_ics/{v}"], g[f"offline_ics/{v}"]
            assert all(np.array_equal(ics_a[k][()], ics_b[k][()]) for k in ics_a), v


def test_a_rank_dies_and_any_number_of_processes_resume(tmp_path):
    model, data, dirs = model_and_data()
    full = run_grid(tmp_path / "full.h5", model, torch.nn.CrossEntropyLoss(), data, dirs, *GRID,
                    meta=META, chunk=4)  # fmt: skip
    died = torchrun(2, HERE / "torchrun_slice.py", tmp_path / "cut.h5", 10, check=False)
    assert died.returncode != 0
    part = read_grid(tmp_path / "cut.h5")
    assert 0 < part.computed.sum() < part.computed.size  # the finished blocks are kept
    done = part.computed
    assert np.array_equal(part.values["loss"][done], full.values["loss"][done])
    resumed = run_grid(tmp_path / "cut.h5", model, torch.nn.CrossEntropyLoss(), data, dirs,
                       *GRID, meta=META, chunk=4)  # one process finishes it  # fmt: skip
    assert np.array_equal(resumed.values["loss"], full.values["loss"])

    class Stop(Exception):
        pass

    def stop(done, total):
        if done >= 20:
            raise Stop

    with pytest.raises(Stop):  # one process stops; two finish it
        run_grid(tmp_path / "half.h5", model, torch.nn.CrossEntropyLoss(), data, dirs, *GRID,
                 meta=META, chunk=4, progress=stop)  # fmt: skip
    torchrun(2, HERE / "torchrun_slice.py", tmp_path / "half.h5")
    assert np.array_equal(read_grid(tmp_path / "half.h5").values["loss"], full.values["loss"])


def test_shards_cover_every_item_once():
    items = list(range(11))
    parts = [distributed.shard(items, distributed.Ranks(r, 3)) for r in range(3)]
    assert sorted(i for p in parts for i in p) == items and [len(p) for p in parts] == [4, 4, 3]
    assert distributed.ranks() == distributed.Ranks(0, 1) and distributed.Ranks().main


@pytest.mark.parametrize("command", ["train", "hessian", "demo"])
def test_other_commands_refuse_torchrun(tmp_path, command):
    result = CliRunner().invoke(main, [command, "--out", str(tmp_path / "r")],
                                env={"WORLD_SIZE": "2"})  # fmt: skip
    line = error_line(result)
    assert f"landscape {command} runs in one process: run it without torchrun" in line
    assert list(tmp_path.iterdir()) == []


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    """Rank 0's one ``Error:`` line; every rank ended with exit code 2, none with a traceback
    (torchrun's own report of the failed ranks is all the rest)."""
    lines = (result.stdout + result.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert set(re.findall(r"exitcode\s*: (-?\d+)", result.stderr)) == {"2"}, result.stderr[-3000:]
    assert result.stderr.count("Traceback") == result.stderr.count("ChildFailedError:") == 1
    assert "[rank" not in result.stderr and "RuntimeError" not in result.stderr
    return errors[0]


def _probe_or_slice(command: str, run: Path, out: Path, *extra: str) -> list:
    if command == "probe":
        return ["probe", run, "--batches", "2", "--count", "2", "-q", "--out", out, *extra]
    ckpt = run / "checkpoints" / "bn" / "step_0000012.pt"
    return ["slice", ckpt, "--x", "-1:1:5", "--examples", "50", "-q", "--out", out, *extra]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["slice", "probe"])
def test_cuda_without_cuda_under_torchrun_is_one_line_from_rank_0(run, tmp_path, command):
    args = _probe_or_slice(command, run, tmp_path / "out.h5", "--device", "cuda")
    line = _one_error_line(torchrun(2, "-m", "landscape", *args, check=False))
    assert line == "Error: device cuda requested but no CUDA device is available: use --device cpu"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["slice", "probe"])
def test_an_output_refused_under_torchrun_is_one_line_from_rank_0(run, tmp_path, command):
    """Rank 0 cannot take the writer lock (the output's folder would be a file): it says so
    once, the other ranks end quietly with the same code (before: a gloo traceback on
    every other rank)."""
    (tmp_path / "notes.txt").write_text("mine")
    args = _probe_or_slice(command, run, tmp_path / "notes.txt" / "x.h5", "--device", "cpu")
    line = _one_error_line(torchrun(2, "-m", "landscape", *args, check=False))
    assert "notes.txt/x.h5: File exists; " in line and "is not a usable directory" in line
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to refuse a write")
def test_a_write_refused_on_rank_0_mid_run_is_one_line_and_resumes(run, tmp_path):
    """The kernel refuses rank 0's last write of cells (the mask of the last block, strace),
    when the other rank has no collective left: one Error line, exit 2 on every rank; the
    file keeps its finished blocks and two processes complete it to the values of one."""
    ckpt = run / "checkpoints" / "bn" / "step_0000012.pt"
    args = ["slice", ckpt, "--x", "-1:1:11", "--y", "-1:1:9", "--examples", "50", "--device",
            "cpu", "-q"]  # fmt: skip
    one_process(*args, "--out", tmp_path / "one.h5")
    strace = ["strace", "-f", "--seccomp-bpf", "-o", "/dev/null", "-e", "trace=pwrite64",
              "-e", "inject=pwrite64:error=ENOSPC:when=6"]  # fmt: skip
    cut = subprocess.run([*strace, *TORCHRUN, "2", "-m", "landscape", *map(str, args), "--out",
                          str(tmp_path / "two.h5")], env=ONE_THREAD, capture_output=True,
                         text=True, cwd=HERE.parent)  # fmt: skip
    assert "two.h5: No space left on device; what was written before" in _one_error_line(cut)
    part, full = read_grid(tmp_path / "two.h5"), read_grid(tmp_path / "one.h5")
    done = part.computed
    assert 0 < done.sum() < done.size
    assert np.array_equal(part.values["loss"][done], full.values["loss"][done])
    torchrun(2, "-m", "landscape", *args, "--out", tmp_path / "two.h5")
    part = read_grid(tmp_path / "two.h5")
    assert all(np.array_equal(part.values[n], full.values[n]) for n in full.values)


def test_bad_torchrun_variables_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["slice", "x.pt", "--out", str(tmp_path / "s.h5")],
                                env={"WORLD_SIZE": "abc"})  # fmt: skip
    assert result.exit_code == 2 and result.output.startswith("Error: WORLD_SIZE='abc' is not")
    assert len(result.output.splitlines()) == 1


def test_a_rank_other_than_0_ends_quietly_with_the_same_code(monkeypatch, tmp_path):
    """Bad input on rank 1 (rank 0 reports the same): no output, exit 2; stopped by torchrun
    while it waits for rank 0 to write its message, it ends with exit 2 too."""
    from landscape.cli import common

    monkeypatch.setattr(common, "QUIET_GRACE_S", 0.0)
    handler = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(main, ["slice", str(tmp_path / "nope.pt"), "--out",
                                           str(tmp_path / "s.h5")],
                                    env={"WORLD_SIZE": "2", "RANK": "1"})  # fmt: skip
        assert result.exit_code == 2 and result.output == ""
        assert signal.getsignal(signal.SIGTERM) is not handler
    finally:
        signal.signal(signal.SIGTERM, handler)
