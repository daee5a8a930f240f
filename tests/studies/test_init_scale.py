"""landscape.studies.init_scale: the init-scale sweep, its cells, and its resume after a kill.

A tiny grid (2 scales x 2 activations x 2 seeds of a 2-layer MLP, 8 steps); a kill is
simulated by a progress callback that raises after the first pair (the pair is written, the
rest is not), and for real in a subprocess (slow).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from landscape.comparison import OUTCOMES, read_sweep
from landscape.models import create_model
from landscape.studies import SweepConfig, init_scale_sweep, weight_layers
from tests.studies.helpers import TINY, tiny_sweep

pytestmark = pytest.mark.usefixtures("one_thread")


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def whole(tmp_path_factory, one_thread):
    return read_sweep(tiny_sweep(tmp_path_factory.mktemp("whole") / "sweep.h5"))


def test_every_cell_is_computed_with_its_numbers(whole):
    c, cells = whole.coords, whole.cells
    assert c["scale"].tolist() == [0.5, 4.0] and c["activation"].tolist() == ["tanh", "relu"]
    assert c["variant"].tolist() == ["bn", "plain"] and c["seed"].tolist() == [0, 1]
    assert c["layer"].tolist() == ["layers.0.linear.weight", "layers.1.linear.weight",
                                   "layers.2.weight"]  # fmt: skip
    assert c["feeds_bn"].tolist() == [1, 1, 0]
    assert c["grad_step"].tolist() == [0, 1, 2] and c["probe_step"].tolist() == [0, 2, 4, 6]
    assert whole.computed.all()
    assert set(cells["outcome"].ravel()) <= set(OUTCOMES)
    assert cells["grad_norm"].shape == (2, 2, 2, 2, 3, 3)
    g = cells["grad_norm"]
    assert np.isfinite(g[:, :, :, :, 0]).all() and (g[:, :, :, :, 0] > 0).all()
    np.testing.assert_allclose(cells["grad_ratio"], g.max(axis=-1) / g.min(axis=-1))
    assert np.isfinite(cells["train_loss"]).all() and np.isfinite(cells["probe_beta"]).all()
    np.testing.assert_allclose(cells["median_beta"], np.median(cells["probe_beta"], axis=-1))
    assert np.isfinite(whole.pairs["wall_s"]).all() and (whole.pairs["threads"] == 1).all()
    assert whole.settings["train"]["model"] == "mlp" and "activation" not in whole.settings["train"]
    assert whole.rules["final_window"] == 20


def test_the_gradients_at_initialisation_are_the_models_own(whole):
    """Cell (scale 4, relu, bn, seed 1), step 0: the gradient of its initial model on the
    first batch, computed here from scratch."""
    from landscape.data import batch_indices, load_dataset

    data = load_dataset("digits", seed=1)
    cfg = TINY.cell_config(4.0, "relu", 1)
    model = cfg.spec(data, bn=True).build(seed=1)
    idx = batch_indices(len(data.x_train), cfg.batch_size, 0, cfg.seed)
    torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
    params = dict(model.named_parameters())
    expected = [float(params[n].grad.double().norm()) for n in whole.coords["layer"]]
    i, j, v, k = whole.index(4.0, "relu", "bn", 1)
    np.testing.assert_allclose(whole.cells["grad_norm"][i, j, v, k, 0], expected, rtol=1e-6)


def test_a_killed_sweep_continues_to_the_same_file(tmp_path, whole):
    out = tmp_path / "sweep.h5"

    def kill_after_first(done, total):
        raise Killed

    with pytest.raises(Killed):
        tiny_sweep(out, progress=kill_after_first)
    part = read_sweep(out)
    assert part.computed.sum() == 2  # one pair: its BN and plain cells
    assert (tmp_path / ".sweep.h5.lock").exists() is False
    assert not (tmp_path / ".sweep.h5.work").exists()
    calls = []
    tiny_sweep(out, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (7, 7)  # only the missing pairs
    _assert_same(read_sweep(out), whole)
    calls.clear()
    tiny_sweep(out, progress=lambda d, t: calls.append((d, t)))
    assert calls == []  # nothing left to do


def _assert_same(a, b):
    for name in b.coords:
        np.testing.assert_array_equal(a.coords[name], b.coords[name])
    for name in b.cells:
        np.testing.assert_array_equal(a.cells[name], b.cells[name], err_msg=name)
    assert a.settings == b.settings and a.rules == b.rules


def test_other_settings_are_refused_and_overwrite_replaces(tmp_path):
    out = tmp_path / "sweep.h5"
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0])
    tiny_sweep(out, small)
    other = replace(small, train=replace(small.train, lr=0.05))
    with pytest.raises(ValueError, match=r"other settings \(train.lr\)"):
        tiny_sweep(out, other)
    tiny_sweep(out, other, overwrite=True)
    assert read_sweep(out).settings["train"]["lr"] == 0.05


def test_a_file_of_another_kind_is_never_replaced(tmp_path):
    out = tmp_path / "sweep.h5"
    out.write_text("my notes")
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0])
    with pytest.raises(ValueError, match="never replaced"):
        tiny_sweep(out, small, overwrite=True)
    assert out.read_text() == "my notes"


def test_keep_runs_keeps_each_pairs_run(tmp_path):
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0])
    tiny_sweep(tmp_path / "sweep.h5", small, keep_runs=tmp_path / "runs")
    assert (tmp_path / "runs" / "relu_scale1_seed0" / "run.h5").is_file()


def test_one_variant_only(tmp_path):
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0],
                    train=replace(TINY.train, bn="plain"))  # fmt: skip
    s = read_sweep(tiny_sweep(tmp_path / "sweep.h5", small))
    assert s.coords["variant"].tolist() == ["plain"] and s.computed.all()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"scales": [1.0, -1.0]}, "finite and > 0"),
        ({"scales": [1.0, 1.0]}, "names a value twice"),
        ({"scales": []}, "at least one"),
        ({"activations": ["gelu"]}, "unknown activation 'gelu'"),
        ({"seeds": [0.5]}, "must hold ints"),
        ({"grad_steps": 0}, "grad_steps"),
        ({"train": replace(TINY.train, lr=-1.0)}, "learning rate"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        init_scale_sweep(replace(TINY, **change), tmp_path / "sweep.h5")
    assert not list(tmp_path.iterdir())


def test_settings_round_trip():
    d = TINY.to_dict()
    again = SweepConfig.from_dict(d)
    assert again.to_dict() == d
    with pytest.raises(ValueError, match="unknown sweep settings"):
        SweepConfig.from_dict({**d, "colour": 1})


@pytest.mark.parametrize(("model", "feeds"), [("vgg_small", [1, 1, 1, 1, 1, 0]),
                                              ("resnet20", None)])  # fmt: skip
def test_which_layers_feed_batchnorm(model, feeds):
    net = create_model(model, bn=True, input_shape=(1, 8, 8), num_classes=10)
    names, found = weight_layers(net, torch.zeros(2, 1, 8, 8))
    assert names == [n for n, p in net.named_parameters() if p.ndim >= 2]
    if feeds is not None:
        assert [int(f) for f in found] == feeds
    else:  # every conv of a ResNet feeds its BN; the last layer (fc) does not
        assert all(found[:-1]) and not found[-1]
    assert net.training  # left as found


@pytest.mark.slow
def test_a_sweep_killed_for_real_continues_to_the_same_file(tmp_path, whole):
    """SIGKILL a ``landscape sweep init-scale`` once its file holds a pair, run it again."""
    from tests.studies.helpers import TINY_ARGS

    out = tmp_path / "sweep.h5"
    cmd = [sys.executable, "-m", "landscape", "sweep", "init-scale", *TINY_ARGS,
           "--threads", "1", "--no-figures", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists():
            with h5py.File(out, "r", locking=False) as f:
                if f["cells/computed"][()].sum() >= 2:
                    break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = read_sweep(out).computed.sum()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    again = read_sweep(out)
    assert again.computed.all() and done < again.computed.size
    tiny = read_sweep(tiny_sweep(tmp_path / "whole.h5", replace(TINY, train=replace(
        TINY.train, probe_count=8))))  # the CLI's probe grid  # fmt: skip
    _assert_same(again, tiny)


def test_ioffe_and_szegedy_one_over_a_and_why_the_sweep_sees_a_flat_gradient(digits):
    """Scaling only the layers that feed BN by a scales their weight gradients by 1/a
    (slope -1, science.md s. 2); the sweep scales the output layer too, whose a multiplies
    the gradient reaching every hidden layer: together about a^0."""
    from landscape.comparison import loglog_slope

    x, y = digits.x_train[:64].double(), digits.y_train[:64]
    cfg = TINY.cell_config(1.0, "tanh", 0)
    scales = [0.1, 1.0, 10.0]

    def norms(which: str) -> np.ndarray:
        rows = []
        for a in scales:
            model = cfg.spec(digits, bn=True).build(seed=0).double()
            layers, feeds = weight_layers(model, x[:2])
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, feeds_bn in zip(layers, feeds):
                    if which == "all" or feeds_bn:
                        params[name].mul_(a)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            rows.append([float(params[n].grad.norm()) for n in layers])
        return np.array(rows)  # (S, L)

    hidden, every = norms("feeding BN"), norms("all")
    for layer in range(2):  # the two layers feeding BN
        assert loglog_slope(scales, hidden[:, layer]) == pytest.approx(-1.0, abs=1e-3)
        assert abs(loglog_slope(scales, every[:, layer])) < 0.2
