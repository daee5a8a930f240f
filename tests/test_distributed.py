"""torchrun: the values of 2 processes (gloo, CPU) equal those of one exactly, for slices and
offline probes; a run whose rank dies resumes, with any number of processes."""

from __future__ import annotations

import os
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


def test_other_commands_refuse_torchrun(tmp_path):
    result = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "r")],
                                env={"WORLD_SIZE": "2"})  # fmt: skip
    assert result.exit_code == 2
    assert "landscape train runs in one process: run it without torchrun" in result.output
