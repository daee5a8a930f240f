"""A write the file system refuses (a full disk, a file-size limit) during training: one
``Error:`` line naming the file, exit 2, everything written before still readable, and
``--resume`` reaching the uninterrupted run bit for bit once space is back.

Before: a full disk during training ended in a segfault (exit 139) with h5py tracebacks and a
run.h5 that could no longer be opened.
"""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape import store
from landscape._files import WriteError
from landscape.cli import main
from landscape.train import TrainConfig, train_pair

CONFIG = TrainConfig(model="mlp", model_options={"depth": 1, "width": 16}, steps=240,
                     batch_size=32, eval_every=40, checkpoint_every=40, probe_every=20,
                     device="cpu")  # fmt: skip
CLI = ["--model", "mlp", "--model-option", "depth=1", "--model-option", "width=16",
       "--steps", "240", "--batch-size", "32", "--eval-every", "40", "--checkpoint-every", "40",
       "--probe-every", "20", "--device", "cpu", "-q"]  # fmt: skip
GROUPS = ("train", "eval", "probe")
#: The environment of the CLI subprocesses: one intra-op thread, as the in-process reference.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


#: One intra-op thread for the module (tests/conftest.py), the previous count restored.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, digits, one_thread):
    """The same run, never interrupted."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train_pair(CONFIG, out, dataset=digits)
    return out


def no_space_at(monkeypatch, name: str, call: int) -> list[int]:
    """Make the ``call``-th write of a temporary of the file ``name`` fail with ENOSPC."""
    calls, write_bytes = [0], Path.write_bytes

    def failing(self, data):
        if self.name.startswith(f".{name}."):
            calls[0] += 1
            if calls[0] == call:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing)
    return calls


def assert_same_run(run: Path, reference: Path) -> None:
    for v in ("bn", "plain"):
        a = store.load_checkpoint(store.checkpoint_path(run / "checkpoints" / v, 240))
        b = store.load_checkpoint(store.checkpoint_path(reference / "checkpoints" / v, 240))
        assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in b.model_state), v
    with store.open_run(run / "run.h5") as f, store.open_run(reference / "run.h5") as g:
        for group in (f"{k}/{v}" for k in GROUPS for v in ("bn", "plain")):
            a, b = store.read_series(f[group]), store.read_series(g[group])
            assert a.keys() == b.keys() and len(a["step"]) == len(b["step"]), group
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{group}/{k}")


@pytest.mark.parametrize(("name", "call"), [("run.h5", 5), ("step_0000120.pt", 1)])
def test_a_full_disk_stops_cleanly_and_resume_continues(
    tmp_path, monkeypatch, digits, reference, name, call
):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        no_space_at(patch, name, call)
        with pytest.raises(WriteError, match=f"cannot write .*{name}: No space left on device"):
            train_pair(CONFIG, run, dataset=digits)
    with store.open_run(run / "run.h5") as f:  # what was written before is readable
        steps = store.read_series(f["train/bn"])["step"]
        assert len(steps) > 0 and np.array_equal(steps, np.arange(len(steps)))
    assert list(run.rglob(".*.tmp")) == []  # no temporary left behind
    train_pair(CONFIG, run, resume=True, dataset=digits)
    assert_same_run(run, reference)


def test_the_cli_says_which_file_in_one_line(tmp_path, monkeypatch):
    no_space_at(monkeypatch, "run.h5", 4)
    result = CliRunner().invoke(main, ["train", *CLI, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot write "), result.output
    assert "run.h5: No space left on device; what was written before is intact" in lines[0]


def test_a_real_file_size_limit_in_another_process(tmp_path, reference):
    """The operating system refuses the writes (RLIMIT_FSIZE: EFBIG) inside a real
    ``landscape train``: no crash, one line, and --resume finishes the run exactly."""
    limit = (reference / "run.h5").stat().st_size - 1  # the last commits cannot be written
    run = tmp_path / "run"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [sys.executable, "-m", "landscape", "train", *CLI, "--out", str(run)]
    result = subprocess.run(
        cmd, preexec_fn=small_files, capture_output=True, text=True, env=ONE_THREAD
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot write "), lines
    assert "run.h5: File too large" in lines[0]
    assert lines[0].endswith("run the same command again with --resume"), lines[0]
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=ONE_THREAD)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(run, reference)


def test_a_new_run_that_failed_before_its_first_checkpoint_is_rerun_as_it_was(tmp_path, reference):
    """Before: the message said to rerun "with --resume", which then answered "nothing to
    resume ...; drop --resume" (the new run had left nothing behind)."""
    run = tmp_path / "run"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # not even a checkpoint

    cmd = [sys.executable, "-m", "landscape", "train", *CLI, "--out", str(run)]
    result = subprocess.run(
        cmd, preexec_fn=small_files, capture_output=True, text=True, env=ONE_THREAD
    )
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1, lines
    assert lines[0].endswith("run the same command again (the new run left nothing behind)")
    assert "--resume" not in lines[0] and not (run / "run.h5").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=ONE_THREAD)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_same_run(run, reference)
