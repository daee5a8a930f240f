"""Offline probes of saved checkpoints: values vs a direct probe, resume, settings guard, CLI."""

from __future__ import annotations

import functools
import json
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape.cli import main
from landscape.data import batch_indices, load_dataset
from landscape.models import ModelSpec
from landscape.probes import (
    OfflineProbeConfig,
    StepSizes,
    gradient_probe,
    ics,
    probe_checkpoints,
    read_offline_probes,
)
from landscape.store import VARIANTS, checkpoint_sha256, list_checkpoints, load_checkpoint
from landscape.train import TrainConfig, train_pair
from tests.cli.helpers import error_line

TINY = TrainConfig(
    model="mlp",
    model_options={"depth": 1, "width": 16},
    steps=6,
    batch_size=32,
    eval_every=3,
    checkpoint_every=3,
    device="cpu",
)
CONFIG = OfflineProbeConfig(count=3, num_batches=2)  # small: the suite must stay fast
STEPS = [0, 3, 6]
# The file holds the same float32 computation as the direct probe, converted to float64.
RTOL, ATOL = 1e-12, 0.0


#: One intra-op thread for the module (tests/conftest.py), the previous count restored.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("offline") / "run"
    train_pair(TINY, out)
    return out


def files_of(run):
    return {v: [p for _, p in list_checkpoints(run / "checkpoints" / v)] for v in VARIANTS}


def rebuilt(path):
    ckpt = load_checkpoint(path)
    model = ModelSpec.from_dict(ckpt.spec).build()
    model.load_state_dict(ckpt.model_state)
    return model


@functools.cache
def digits():
    return load_dataset("digits", seed=TINY.seed)


def batch(b, batch_size=TINY.batch_size, seed=CONFIG.batch_seed):
    data = digits()
    idx = batch_indices(len(data.x_train), batch_size, b, seed)
    return data.x_train[idx], data.y_train[idx]


def test_rows_equal_a_direct_probe_of_each_checkpoint(run, tmp_path):
    out = probe_checkpoints(files_of(run), tmp_path / "p.h5", CONFIG)
    rows = read_offline_probes(out)
    grid = StepSizes.vgg(TINY.lr, count=CONFIG.count)  # the default grid for an MLP run
    assert sorted(rows) == ["bn", "plain"]
    for variant, paths in files_of(run).items():
        r = rows[variant]
        assert r["step"].tolist() == STEPS
        assert r["sha256"].tolist() == [checkpoint_sha256(p) for p in paths]
        assert r["loss"].shape == (len(STEPS), CONFIG.num_batches, CONFIG.count)
        assert r["beta"].shape == (len(STEPS), CONFIG.num_batches)
        for k, path in enumerate(paths):
            for b in range(CONFIG.num_batches):
                direct = gradient_probe(
                    rebuilt(path), torch.nn.functional.cross_entropy, batch(b), grid
                )
                for name in ("loss", "grad_distance", "ratio", "grad_cosine", "beta", "base_loss"):
                    got, want = r[name][k, b], np.float64(getattr(direct, name))
                    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)
        np.testing.assert_allclose(r["step_sizes"][0], grid.values(), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(r["beta_mean"], r["beta"].mean(axis=1), rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(r["beta_std"], r["beta"].std(axis=1, ddof=1), rtol=RTOL)
        want = r["grad_distance"].max(axis=2).mean(axis=1)
        np.testing.assert_allclose(r["grad_distance_max_mean"], want, rtol=RTOL, atol=ATOL)
    with h5py.File(out, "r") as f:
        n = len(digits().x_train)
        index = np.stack([batch_indices(n, TINY.batch_size, b, 0).numpy() for b in range(2)])
        assert np.array_equal(f["offline_probe_batches"][()], index)
        prov = json.loads(f.attrs["config_json"])
        assert prov["probe"]["lr"] == TINY.lr and prov["probe"]["batch_size"] == TINY.batch_size
        assert prov["checkpoints"]["bn"]["3"] == checkpoint_sha256(files_of(run)["bn"][1])


def test_interrupted_run_resumes_to_identical_values(run, tmp_path):
    full = read_offline_probes(probe_checkpoints(files_of(run), tmp_path / "full.h5", CONFIG))

    class Stop(Exception):
        pass

    def stop_after_first(done, total):
        if done >= 1:
            raise Stop

    part = tmp_path / "part.h5"
    with pytest.raises(Stop):
        probe_checkpoints(files_of(run), part, CONFIG, progress=stop_after_first)
    assert read_offline_probes(part)["bn"]["step"].tolist() == [0]
    with h5py.File(part, "a") as f:  # rows whose commit never happened: dropped on resume
        for ds in f["offline_probe/bn"].values():
            ds.resize(2, axis=0)
        f.copy(f["offline_probe/bn"], "offline_probe/plain")
        f.require_group("offline_checkpoints/plain")
    assert list(read_offline_probes(part)) == ["bn"]
    calls = []
    probe_checkpoints(files_of(run), part, CONFIG, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(k, 5) for k in range(1, 6)]
    resumed = read_offline_probes(part)
    for variant in VARIANTS:
        assert resumed[variant].keys() == full[variant].keys()
        for name, values in full[variant].items():
            assert np.array_equal(resumed[variant][name], values), (variant, name)

    before, calls = part.read_bytes(), []
    probe_checkpoints(files_of(run), part, CONFIG, progress=lambda d, t: calls.append((d, t)))
    assert calls == [] and part.read_bytes() == before  # finished: nothing to do


def test_different_settings_are_refused_and_leave_the_file_alone(run, tmp_path):
    files = {"bn": files_of(run)["bn"][:1]}
    out = probe_checkpoints(files, tmp_path / "p.h5", CONFIG)
    before = out.read_bytes()
    for changed in (replace(CONFIG, count=4), replace(CONFIG, lr=0.05), replace(CONFIG, ics=True)):
        with pytest.raises(ValueError, match=r"different probe settings \(.*\); pass --overwrite"):
            probe_checkpoints(files, out, changed)
        assert out.read_bytes() == before
    probe_checkpoints(files, out, replace(CONFIG, count=4), overwrite=True)
    assert read_offline_probes(out)["bn"]["loss"].shape == (1, CONFIG.num_batches, 4)
    other = {"bn": [tmp_path / "step_0000000.pt"]}  # same step, different weights
    other["bn"][0].write_bytes(files_of(run)["plain"][0].read_bytes())
    with pytest.raises(ValueError, match="changed since it was probed"):
        probe_checkpoints(other, out, replace(CONFIG, count=4))


def test_ics_rows(run, tmp_path):
    path = files_of(run)["plain"][-1]
    out = probe_checkpoints({"plain": [path]}, tmp_path / "i.h5", replace(CONFIG, ics=True))
    with h5py.File(out, "r") as f:
        group = f["offline_ics/plain"]
        layers = json.loads(group.attrs["layers"])
        direct = ics(rebuilt(path), torch.nn.functional.cross_entropy, batch(1), TINY.lr)
        assert layers == direct.layers and group["step"][()].tolist() == [6]
        np.testing.assert_allclose(group["l2"][0, 1], direct.l2, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(group["l2_mean"][0], group["l2"][0].mean(axis=0), rtol=RTOL)


def test_bad_config_is_refused_before_writing(run, tmp_path):
    with pytest.raises(ValueError, match="direction"):
        probe_checkpoints(files_of(run), tmp_path / "x.h5", replace(CONFIG, direction="up"))
    with pytest.raises(ValueError, match="num_batches"):
        probe_checkpoints(files_of(run), tmp_path / "x.h5", replace(CONFIG, num_batches=0))
    assert not (tmp_path / "x.h5").exists()


# --- CLI ----------------------------------------------------------------------------------

FAST = ["--count", "3", "--batches", "2", "--device", "cpu", "-q"]


def test_cli_probe_and_rerun(run, tmp_path):
    out = tmp_path / "cli.h5"
    result = CliRunner().invoke(main, ["probe", str(run), *FAST, "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["variant", "step", "beta", "median"]
    assert [ln.split()[:2] for ln in lines[1:7]] == [[v, str(s)] for v in VARIANTS for s in STEPS]
    assert lines[-1] == f"probes written to {out}"
    again = CliRunner().invoke(main, ["probe", str(run), *FAST, "--out", str(out)])
    assert again.exit_code == 0 and again.output.startswith("nothing to do"), again.output
    one = [
        "probe",
        "--checkpoint",
        str(files_of(run)["bn"][0]),
        *FAST,
        "--out",
        str(tmp_path / "one.h5"),
    ]
    result = CliRunner().invoke(main, one)
    assert result.exit_code == 0 and len(result.output.splitlines()) == 3, result.output


def test_cli_bad_input(run, tmp_path):
    runner = CliRunner()
    assert "no run directory" in error_line(
        runner.invoke(main, ["probe", str(tmp_path / "nope"), *FAST])
    )
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    args = ["probe", "--checkpoint", str(bad), "--out", str(tmp_path / "o.h5"), *FAST]
    assert str(bad) in error_line(runner.invoke(main, args))
    assert "nothing to probe" in error_line(runner.invoke(main, ["probe", *FAST]))
    out = tmp_path / "p.h5"
    assert runner.invoke(main, ["probe", str(run), *FAST, "--out", str(out)]).exit_code == 0
    args = ["probe", str(run), *FAST, "--count", "4", "--out", str(out)]
    assert "different probe settings" in error_line(runner.invoke(main, args))


def test_a_config_without_an_lr_asks_for_one(tmp_path):
    """A checkpoint from another loop: the settings its config lacks are asked for by name."""
    from landscape.models import ModelSpec
    from landscape.store import save_checkpoint

    spec = ModelSpec("mlp", input_shape=(1, 8, 8), options={"depth": 1, "width": 8})
    path = tmp_path / "mine.pt"
    save_checkpoint(path, model=spec.build(seed=0), step=0, spec=spec, config={"batch_size": 8})
    with pytest.raises(ValueError, match=r"records no training lr: pass lr= \(--lr\)"):
        probe_checkpoints({"mine": [path]}, tmp_path / "p.h5", OfflineProbeConfig(num_batches=1))
    with pytest.raises(ValueError, match=r"records no training dataset: pass dataset= \(--data\)"):
        probe_checkpoints({"mine": [path]}, tmp_path / "p.h5", replace(CONFIG, lr=0.1))
    assert not (tmp_path / "p.h5").exists()


def test_a_full_disk_keeps_the_probed_checkpoints(run, tmp_path, monkeypatch):
    """The third checkpoint's rows cannot be written: a WriteError naming the file, the two
    before stay readable, and a rerun finishes with the values of an uninterrupted run."""
    import errno
    import os
    from pathlib import Path

    from landscape._files import WriteError

    full = read_offline_probes(probe_checkpoints(files_of(run), tmp_path / "full.h5", CONFIG))
    out, writes, write_bytes = tmp_path / "p.h5", [0], Path.write_bytes

    def no_space(self, data):
        if self.name.startswith(".p.h5."):
            writes[0] += 1
            if writes[0] >= 4:  # the file, two checkpoints, then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_bytes(self, data)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_bytes", no_space)
        with pytest.raises(WriteError, match=r"cannot write .*p\.h5: No space left on device"):
            probe_checkpoints(files_of(run), out, CONFIG)
    assert read_offline_probes(out)["bn"]["step"].tolist() == [0, 3]
    resumed = read_offline_probes(probe_checkpoints(files_of(run), out, CONFIG))
    for variant in VARIANTS:
        for name, values in full[variant].items():
            assert np.array_equal(resumed[variant][name], values), (variant, name)
