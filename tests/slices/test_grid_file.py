"""Resumable HDF5 grids: interruption and resume, completion, config mismatch, round trip."""

from __future__ import annotations

import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape.slices import evaluate_grid, random_directions, read_grid, run_grid
from landscape.slices.coords import MAX_POINTS
from tests.cases import locked_elsewhere
from tests.slices.helpers import batches as shared_batches
from tests.slices.helpers import bn_net


def batches():
    return shared_batches(sizes=(6, 5))


class CountingLoss:
    def __init__(self) -> None:
        self.calls = 0
        self.ce = nn.CrossEntropyLoss()

    def __call__(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.ce(out, target)


XS, YS = "-1:1:5", "-0.5:0.5:3"
META = {"kind": "random_plane", "seed": 3, "normalization": "filter", "data": "synthetic"}


@pytest.fixture
def setup():
    model = bn_net()
    return model, batches(), random_directions(model, 2, seed=3)


def test_interrupted_run_resumes_to_identical_values(tmp_path, setup):
    model, data, dirs = setup
    full = run_grid(tmp_path / "full.h5", model, CountingLoss(), data, dirs, XS, YS, meta=META)
    assert full is not None and full.computed.all()
    assert not any(np.isnan(v).any() for v in full.values.values())

    path = tmp_path / "resumed.h5"
    armed = [True]

    def interrupt(done: int, total: int) -> None:
        if armed[0] and done == 5:
            armed[0] = False
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(
            path, model, CountingLoss(), data, dirs, XS, YS, meta=META, chunk=2, progress=interrupt
        )
    partial = read_grid(path)
    assert partial.computed.sum() == 5  # the pending chunk is flushed on the way out
    assert np.isnan(partial.values["loss"][~partial.computed]).all()

    loss = CountingLoss()
    seen = []
    res = run_grid(
        path,
        model,
        loss,
        data,
        dirs,
        XS,
        YS,
        meta=META,
        chunk=2,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert loss.calls == 10 * len(data) and seen[0] == (6, 15) and seen[-1] == (15, 15)
    for name in ("loss", "accuracy"):
        assert np.array_equal(res.values[name], full.values[name])

    raw = path.read_bytes()
    again = CountingLoss()
    assert run_grid(path, model, again, data, dirs, XS, YS, meta=META) is None
    assert again.calls == 0 and path.read_bytes() == raw


def test_different_config_is_refused_and_file_unchanged(tmp_path, setup):
    model, data, dirs = setup
    path = tmp_path / "slice.h5"
    run_grid(path, model, CountingLoss(), data, dirs, XS, YS, meta=META)
    raw = path.read_bytes()
    for change in (
        {"meta": {**META, "seed": 4}},
        {"y": "-1:1:3"},
        {"bn_mode": "train"},
        {"directions": dirs[::-1]},
    ):
        kwargs = {"meta": META, "y": YS, "directions": dirs} | change
        with pytest.raises(ValueError, match=re.escape("different slice: pass overwrite=True (--")):
            run_grid(path, model, CountingLoss(), data, x=XS, **kwargs)
    assert path.read_bytes() == raw
    res = run_grid(
        path, model, CountingLoss(), data, dirs, XS, YS, meta={**META, "seed": 4}, overwrite=True
    )
    assert res.meta["seed"] == 4


def test_file_layout_and_direction_round_trip(tmp_path, setup):
    model, data, dirs = setup
    path = tmp_path / "slice.h5"
    res = run_grid(path, model, CountingLoss(), data, dirs, XS, YS, meta=META)
    with h5py.File(path, "r") as f:
        assert f["values/loss"].shape == (3, 5) and f["coords/x"].shape == (5,)
        assert f["computed"][()].all()
        assert "config_json" in f.attrs and "created" in f.attrs and "config_hash" in f.attrs
        assert f["directions/d1/0.weight"].attrs["name"] == "0.weight"
    direct = evaluate_grid(model, nn.CrossEntropyLoss(), data, dirs, XS, YS)
    assert np.array_equal(res.values["loss"], direct.values["loss"])
    assert res.meta["kind"] == "random_plane" and res.meta["bn_mode"] == "eval"
    for stored, original in zip(res.directions, dirs):
        assert list(stored) == list(original)
        assert all(torch.equal(stored[n], original[n]) for n in original)


class OddNames(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_parameter("a/b%2Fc", nn.Parameter(torch.ones(2, dtype=torch.bfloat16)))
        self.lin = nn.Linear(2, 1, dtype=torch.bfloat16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x * self.get_parameter("a/b%2Fc")).squeeze(1)


def test_names_with_slashes_and_bf16_round_trip(tmp_path):
    model = OddNames()
    dirs = random_directions(model, 1, seed=0, normalization="none")
    data = [(torch.ones(3, 2, dtype=torch.bfloat16), torch.zeros(3, dtype=torch.bfloat16))]
    path = tmp_path / "line.h5"
    res = run_grid(path, model, nn.MSELoss(), data, dirs, "-1:1:3", meta={"kind": "random_line"})
    assert res.y is None and res.values["loss"].shape == (3,) and set(res.values) == {"loss"}
    assert list(res.directions[0]) == ["a/b%2Fc", "lin.weight", "lin.bias"]
    assert all(torch.equal(res.directions[0][n], dirs[0][n]) for n in dirs[0])
    assert res.directions[0]["lin.weight"].dtype == torch.bfloat16


def test_buffer_directions_stored(tmp_path, setup):
    model, data, dirs = setup
    bdir = [{"1.running_mean": torch.full((3,), 0.1, dtype=torch.float64)}]
    res = run_grid(
        tmp_path / "i.h5",
        model,
        CountingLoss(),
        data,
        dirs[:1],
        "0:1:2",
        meta={},
        buffer_directions=bdir,
    )
    assert torch.equal(res.buffer_directions[0]["1.running_mean"], bdir[0]["1.running_mean"])


def test_foreign_file_and_bad_chunk(tmp_path, setup):
    model, data, dirs = setup
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    for overwrite in (False, True):
        with pytest.raises(
            ValueError, match=r"holds an HDF5 file, not a slice file: .* choose another output path"
        ):
            run_grid(
                path, model, CountingLoss(), data, dirs, XS, YS, meta=META, overwrite=overwrite
            )
    with pytest.raises(ValueError, match="not a landscape slice"):
        read_grid(path)
    with pytest.raises(ValueError, match="chunk"):
        run_grid(tmp_path / "x.h5", model, CountingLoss(), data, dirs, XS, YS, meta=META, chunk=0)


class FailingLoss(CountingLoss):
    def __call__(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise ValueError("the loss fails")


def test_a_failed_first_point_leaves_the_path_as_it_was(tmp_path, setup):
    model, data, dirs = setup
    path = tmp_path / "slice.h5"
    run_grid(path, model, CountingLoss(), data, dirs, XS, YS, meta=META)
    raw = path.read_bytes()
    with pytest.raises(ValueError, match="the loss fails"):  # another slice, with overwrite
        run_grid(path, model, FailingLoss(), data, dirs, "-1:1:3", YS, meta=META, overwrite=True)
    assert path.read_bytes() == raw
    new = tmp_path / "new.h5"
    with pytest.raises(ValueError, match="the loss fails"):
        run_grid(new, model, FailingLoss(), data, dirs, XS, YS, meta=META)
    assert list(tmp_path.iterdir()) == [path]  # no new file, no temporary file left


def test_only_slice_files_are_replaced(tmp_path, setup):
    model, data, dirs = setup
    ckpt, empty = tmp_path / "step_0000001.pt", tmp_path / "empty.h5"
    torch.save(model.state_dict(), ckpt)
    raw = ckpt.read_bytes()
    for overwrite in (False, True):
        with pytest.raises(
            ValueError, match=r"step_0000001\.pt holds a checkpoint, not a slice file"
        ):
            run_grid(ckpt, model, CountingLoss(), data, dirs[:1], XS, meta={}, overwrite=overwrite)
    assert ckpt.read_bytes() == raw
    empty.touch()  # an empty file holds nothing to lose
    assert run_grid(empty, model, CountingLoss(), data, dirs, XS, YS, meta=META).computed.all()


def test_a_file_being_written_by_another_process_is_refused(tmp_path, setup):
    model, data, dirs = setup
    path = tmp_path / "slice.h5"
    run_grid(path, model, CountingLoss(), data, dirs[:1], XS, meta=META)
    hold = "import h5py, sys, time; f = h5py.File(sys.argv[1], 'r+'); print(1, flush=True); "
    writer = subprocess.Popen(
        [sys.executable, "-c", hold + "time.sleep(60)", str(path)], stdout=subprocess.PIPE
    )
    try:
        assert writer.stdout.readline().strip() == b"1"
        for overwrite in (False, True):
            with pytest.raises(ValueError, match="open for writing by another process"):
                run_grid(path, model, CountingLoss(), data, dirs, XS, YS, meta=META,
                         overwrite=overwrite)  # fmt: skip
    finally:
        writer.kill()
        writer.wait()
    assert read_grid(path).y is None  # still the 1-D slice


def test_values_start_as_fill_values_and_the_grid_size_is_capped(tmp_path, setup):
    model, data, dirs = setup
    path = tmp_path / "slice.h5"
    interrupt = KeyboardInterrupt()

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise interrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(path, model, CountingLoss(), data, dirs, XS, YS, meta=META, progress=stop)
    with h5py.File(path, "r") as f:  # stored as fill values, not as a written NaN array
        assert np.isnan(f["values/loss"].fillvalue) and f["computed"].fillvalue == 0
        assert f["computed"][()].tolist()[0] == [1, 1, 0, 0, 0] and f["computed"][()].sum() == 2
        assert np.isfinite(f["values/loss"][0, :2]).all() and np.isnan(f["values/loss"][0, 2])
    n = int(MAX_POINTS**0.5) + 1
    with pytest.raises(ValueError, match=f"a {n}×{n} grid has {n * n} points, at most"):
        evaluate_grid(model, CountingLoss(), data, dirs, f"0:1:{n}", f"0:1:{n}")


def test_metric_names_with_a_slash_are_refused(tmp_path, setup):
    model, data, dirs = setup
    top = {"top/2": lambda out, t: (out.topk(2, 1).indices == t[:, None]).any(1).double().mean()}
    with pytest.raises(ValueError, match=r"metric name 'top/2' .* rename it without '/'"):
        run_grid(tmp_path / "m.h5", model, CountingLoss(), data, dirs[:1], XS, meta={}, metrics=top)
    assert not (tmp_path / "m.h5").exists()


def _drop(key):
    def edit(f):
        del f[key]

    return edit


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (_drop("values"), "complete slice file (missing values/loss)"),
        (_drop("values/accuracy"), "complete slice file (missing values/accuracy)"),
        (_drop("computed"), "complete slice file (missing computed)"),
        (_drop("directions"), "complete slice file (missing directions/d1)"),
        (lambda f: f.attrs.__delitem__("meta"), "complete slice file (missing meta)"),
        (lambda f: f.attrs.__setitem__("meta", "{not json"), "complete slice file (missing meta)"),
        (_drop("coords/y"), "computed has shape (3, 5), the coordinates give (5,)"),
    ],
)
def test_incomplete_files_name_the_missing_part(tmp_path, setup, edit, needle):
    model, data, dirs = setup
    path = tmp_path / "slice.h5"
    run_grid(path, model, CountingLoss(), data, dirs, XS, YS, meta=META)
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(ValueError, match=re.escape(f"{path} is not a") + ".*" + re.escape(needle)):
        read_grid(path)


def test_a_second_writer_is_refused_and_the_file_kept(tmp_path, setup):
    """Two runs on one path: the second is refused up front (the writer lock), whatever
    overwrite says; once the first process is gone (here: killed), the lock is free."""
    model, data, dirs = setup
    path = tmp_path / "slice.h5"
    run_grid(path, model, CountingLoss(), data, dirs[:1], XS, meta=META)
    raw = path.read_bytes()
    with locked_elsewhere(path):
        for overwrite in (False, True):
            with pytest.raises(ValueError, match="is being written by another process"):
                run_grid(path, model, CountingLoss(), data, dirs, XS, YS, meta=META,
                         overwrite=overwrite)  # fmt: skip
        assert path.read_bytes() == raw
    res = run_grid(path, model, CountingLoss(), data, dirs, XS, YS, meta=META, overwrite=True)
    assert res.computed.all() and list(tmp_path.glob(".*")) == []  # no lock file left


def test_temporaries_of_killed_runs_are_removed(tmp_path, setup):
    """A temporary of this file can only be a killed run's: the writer lock proves no other
    run is making it. Other files' temporaries are left alone."""
    model, data, dirs = setup
    out = tmp_path / "t.h5"
    stale = [tmp_path / ".t.h5.host.123.tmp", tmp_path / ".t.h5.a8bx0.tmp"]
    other = tmp_path / ".u.h5.a8bx0.tmp"
    for f in (*stale, other):
        f.write_bytes(b"partial")
    run_grid(out, model, nn.CrossEntropyLoss(), data, dirs, XS, YS, meta=META)
    assert not any(f.exists() for f in stale) and other.exists()


def test_a_full_disk_when_the_file_is_made_keeps_the_old_file(tmp_path, setup, monkeypatch):
    import errno
    import os
    from pathlib import Path

    from landscape._files import WriteError

    model, data, dirs = setup
    path = tmp_path / "slice.h5"
    run_grid(path, model, CountingLoss(), data, dirs[:1], XS, meta=META)
    raw, write_bytes = path.read_bytes(), Path.write_bytes

    def no_space(self, data):
        if self.name.startswith(".slice.h5."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", no_space)
    with pytest.raises(WriteError, match=r"cannot write .*slice\.h5: No space left on device"):
        run_grid(path, model, CountingLoss(), data, dirs, XS, YS, meta=META, overwrite=True)
    assert path.read_bytes() == raw and list(tmp_path.glob(".*")) == []


GROWING = """
import sys, time, torch
from torch import nn
sys.path.insert(0, sys.argv[2])
from tests.slices.test_grid_file import META, XS, batches, bn_net
from landscape.slices import random_directions, run_grid

class SlowLoss(nn.CrossEntropyLoss):
    def forward(self, out, target):
        time.sleep(0.02)
        return super().forward(out, target)

model = bn_net()
dirs = random_directions(model, 2, seed=3)
run_grid(sys.argv[1], model, SlowLoss(), batches(), dirs, XS, "-1:1:6", meta=META, chunk=2)
"""


def test_a_growing_file_is_readable_from_another_process(tmp_path, setup):
    """While a run writes a slice, other processes open it with plain h5py (file locking on
    or off) and see the finished cells; a reader holding it open does not stop the writer."""
    import time
    from pathlib import Path

    path, root = tmp_path / "growing.h5", str(Path(__file__).parents[2])
    writer = subprocess.Popen([sys.executable, "-c", GROWING, str(path), root])
    view = "import h5py, sys, time; f = h5py.File(sys.argv[1], 'r'); print(1, flush=True); "
    seen, viewer = [], None
    try:
        while writer.poll() is None:
            if path.exists():
                for locking in (True, False):
                    with h5py.File(path, "r", locking=locking) as f:
                        done = f["computed"][()].astype(bool)
                        loss = f["values/loss"][()]
                    assert np.isfinite(loss[done]).all()
                    seen.append((int(done.sum()), loss.copy(), done))
                if viewer is None and seen[-1][0] > 2:  # a viewer left open while the run goes on
                    viewer = subprocess.Popen([sys.executable, "-c", view + "time.sleep(60)",
                                               str(path)], stdout=subprocess.PIPE)  # fmt: skip
                    assert viewer.stdout.readline().strip() == b"1"
            time.sleep(0.01)
    finally:
        writer.wait(timeout=120)
        if viewer is not None:
            viewer.kill()
            viewer.wait()
    assert writer.returncode == 0 and viewer is not None
    final = read_grid(path)
    assert final.computed.all()
    counts = [n for n, _, _ in seen]
    assert counts == sorted(counts) and any(0 < n < final.computed.size for n in counts)
    for _, loss, done in seen:  # what a reader saw is what the run finished with
        np.testing.assert_array_equal(loss[done], final.values["loss"][done])
