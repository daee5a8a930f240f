"""landscape.studies.init_scale: the init-scale sweep, its cells, and its resume after a kill.

A tiny grid (2 scales x 2 activations x 2 seeds of a 2-layer MLP, 8 steps); a kill is
simulated by a progress callback that raises after the first pair (the pair is written, the
rest is not), and for real in a subprocess (slow).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape import store
from landscape._device import cpu_description
from landscape.comparison import OUTCOMES, classify, read_sweep
from landscape.data.formats import DataError
from landscape.models import create_model
from landscape.studies import (
    DEFAULT_SCALES,
    GRAD_STEPS,
    SweepConfig,
    default_train,
    init_scale_sweep,
    weight_layers,
)
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
    from landscape.data import load_dataset

    got, want = _initial_gradient_norms(whole, load_dataset("digits", seed=1), 4.0, "relu", 1)
    np.testing.assert_allclose(got, want, rtol=1e-6)


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


# --- each cell against its kept run, read here with h5py --------------------------------------


def _run_columns(run: Path, group: str) -> dict[str, np.ndarray]:
    with h5py.File(run, "r") as f:
        return {name: f[group][name][()] for name in f[group]} if group in f else {}


def _expected_cells(run: Path, variant: str, steps: int, probe_steps: list[int]) -> dict:
    """A cell's numbers from its run log, by hand: the series padded with NaN to the grid."""
    train = _run_columns(run, f"train/{variant}")
    evals = _run_columns(run, f"eval/{variant}")
    probes = _run_columns(run, f"probe/{variant}")
    verdict = classify(train["step"], train["loss"], train["accuracy"], num_classes=10)

    def padded(values, at, size):
        out = np.full(size, np.nan)
        for s, value in zip(at, values):
            out[s] = value
        return out

    finished = evals["step"][-1] == steps
    expected = {
        "outcome": verdict.outcome,
        "diverged_step": np.nan if verdict.diverged_step is None else verdict.diverged_step,
        "final_loss": verdict.final_loss,
        "final_accuracy": verdict.final_accuracy,
        "eval_loss": evals["loss"][-1] if finished else np.nan,
        "eval_accuracy": evals["accuracy"][-1] if finished else np.nan,
        "train_loss": padded(train["loss"], train["step"], steps),
        "train_accuracy": padded(train["accuracy"], train["step"], steps),
    }
    at = [probe_steps.index(s) for s in probes.get("step", [])]
    metrics = {"beta": probes["beta"], "grad_pred": probes["grad_distance"].max(axis=1),
               "loss_range": np.ptp(probes["loss"], axis=1)} if probes else {}  # fmt: skip
    for m in ("beta", "grad_pred", "loss_range"):
        series = padded(metrics.get(m, []), at, len(probe_steps))
        expected[f"probe_{m}"] = series
        finite = series[np.isfinite(series)]
        expected[f"median_{m}"] = np.median(finite) if finite.size else np.nan
    expected["probe_base_loss"] = padded(probes.get("base_loss", []), at, len(probe_steps))
    return expected


def _assert_cells_of_runs(sweep, runs: Path) -> None:
    c = sweep.coords
    steps, probe_steps = len(c["train_step"]), c["probe_step"].tolist()
    for i, scale in enumerate(c["scale"]):
        for j, act in enumerate(c["activation"]):
            for k, seed in enumerate(c["seed"]):
                run = runs / f"{act}_scale{scale:g}_seed{seed}" / "run.h5"
                for v, variant in enumerate(c["variant"]):
                    want = _expected_cells(run, variant, steps, probe_steps)
                    for name, value in want.items():
                        got = sweep.cells[name][i, j, v, k]
                        if name == "outcome":
                            assert got == value, (run, variant)
                        else:  # the same numbers, read twice: equal
                            np.testing.assert_array_equal(got, value, err_msg=f"{variant} {name}")


def test_every_cell_equals_its_kept_runs_log(tmp_path):
    """One pair trained 20 steps (relu, scale 1): both variants learn past chance + 0.1.
    (One test, no shared fixture: mutmut credits a fixture's reach to its first test.)"""
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0],
                    train=replace(TINY.train, steps=20, probe_every=5))  # fmt: skip
    t0 = time.perf_counter()
    sweep = read_sweep(tiny_sweep(tmp_path / "sweep.h5", small, keep_runs=tmp_path / "runs"))
    elapsed = time.perf_counter() - t0
    _assert_cells_of_runs(sweep, tmp_path / "runs")
    assert set(sweep.cells["outcome"].ravel()) == {"trained"}
    assert np.isfinite(sweep.cells["eval_loss"]).all()
    # by the accuracy rule (10 classes); the loss rule alone would call 20 steps stalled
    train = _run_columns(tmp_path / "runs" / "relu_scale1_seed0" / "run.h5", "train/plain")
    assert classify(train["step"], train["loss"], train["accuracy"]).outcome == "stalled"
    with h5py.File(sweep.path, "r") as f:
        assert f.attrs["device"] == "cpu" and f.attrs["cpu"] == cpu_description()
    assert 0 < sweep.pairs["wall_s"].sum() <= elapsed


def test_a_diverged_network_is_nan_from_its_divergence_on(tmp_path):
    """Scale 30, lr 1e6: the plain ReLU net overflows at step 2; the BN net does not."""
    small = replace(TINY, scales=[30.0], activations=["relu"], seeds=[0],
                    train=replace(TINY.train, lr=1e6))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sweep = read_sweep(tiny_sweep(tmp_path / "sweep.h5", small, keep_runs=tmp_path / "runs"))
    _assert_cells_of_runs(sweep, tmp_path / "runs")
    cells, (bn, plain) = sweep.cells, (0, 1)
    assert cells["outcome"][0, 0, plain, 0] == "diverged"
    assert cells["diverged_step"][0, 0, plain, 0] == 2
    assert np.isnan(cells["eval_loss"][0, 0, plain, 0])
    assert np.isnan(cells["train_loss"][0, 0, plain, 0, 2:]).all()
    assert np.isfinite(cells["train_loss"][0, 0, plain, 0, :2]).all()
    assert np.isnan(cells["probe_base_loss"][0, 0, plain, 0, 2:]).all()  # no probe after
    assert cells["outcome"][0, 0, bn, 0] != "diverged"
    assert np.isnan(cells["diverged_step"][0, 0, bn, 0])
    assert np.isfinite(cells["eval_loss"][0, 0, bn, 0])


def test_a_float64_sweep_trains_in_float64(tmp_path):
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0],
                    train=replace(TINY.train, dtype="float64"))  # fmt: skip
    sweep = read_sweep(tiny_sweep(tmp_path / "sweep.h5", small, keep_runs=tmp_path / "runs"))
    assert sweep.computed.all() and sweep.coords["feeds_bn"].tolist() == [1, 1, 0]
    ckpt = tmp_path / "runs" / "relu_scale1_seed0" / "checkpoints" / "bn"
    state = store.load_checkpoint(sorted(ckpt.glob("*.pt"))[-1]).model_state
    assert {t.dtype for t in state.values() if t.is_floating_point()} == {torch.float64}


def test_a_regression_sweep_is_judged_by_its_loss(tmp_path):
    """Linear-regression data: no accuracy anywhere, each outcome by the loss rule."""
    small = replace(TINY, scales=[1.0], activations=["tanh"], seeds=[0],
                    train=replace(TINY.train, dataset="synthetic", steps=30, lr=0.05,
                                  data_options={"kind": "linear-regression"}))  # fmt: skip
    sweep = read_sweep(tiny_sweep(tmp_path / "sweep.h5", small, keep_runs=tmp_path / "runs"))
    _assert_cells_of_runs(sweep, tmp_path / "runs")
    for name in ("final_accuracy", "eval_accuracy", "train_accuracy"):
        assert np.isnan(sweep.cells[name]).all(), name
    assert np.isfinite(sweep.cells["final_loss"]).all()
    assert set(sweep.cells["outcome"].ravel()) <= {"trained", "stalled"}


def test_a_sweep_without_probes_has_no_probe_steps(tmp_path):
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0],
                    train=replace(TINY.train, probe_every=0))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        sweep = read_sweep(tiny_sweep(tmp_path / "sweep.h5", small))
    assert sweep.coords["probe_step"].size == 0 and sweep.computed.all()
    for m in ("beta", "grad_pred", "loss_range"):
        assert sweep.cells[f"probe_{m}"].shape == (1, 1, 2, 1, 0)
        assert np.isnan(sweep.cells[f"median_{m}"]).all()
    assert sweep.cells["probe_base_loss"].shape == (1, 1, 2, 1, 0)


# --- the data each pair trains on -------------------------------------------------------------


def _initial_gradient_norms(sweep, data, scale, act, seed) -> tuple[np.ndarray, list[float]]:
    """The BN cell's step-0 layer gradient norms, and the same computed here from scratch."""
    from landscape.data import batch_indices

    cfg = SweepConfig.from_dict(sweep.settings).cell_config(scale, act, seed)
    model = cfg.spec(data, bn=True).build(seed=seed)
    idx = batch_indices(len(data.x_train), cfg.batch_size, 0, seed)
    torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
    params = dict(model.named_parameters())
    i, j, v, k = sweep.index(scale, act, "bn", seed)
    got = sweep.cells["grad_norm"][i, j, v, k, 0]
    return got, [float(params[n].grad.double().norm()) for n in sweep.coords["layer"]]


def test_each_seed_loads_its_split_once_with_the_configured_options(tmp_path, monkeypatch):
    import landscape.studies.init_scale as init_scale
    from landscape.data import load_dataset

    calls = []

    def spy(name, **kwargs):
        calls.append((name, kwargs))
        return load_dataset(name, **kwargs)

    monkeypatch.setattr(init_scale, "load_dataset", spy)
    cfg = replace(TINY, scales=[0.5, 4.0], activations=["relu"], seeds=[1, 2],
                  train=replace(TINY.train, data_options={"subset": 300}))  # fmt: skip
    sweep = read_sweep(tiny_sweep(tmp_path / "sweep.h5", cfg))
    options = {"data_dir": None, "download": False, "subset": 300}
    assert calls == [("digits", {**options, "seed": 1}), ("digits", {**options, "seed": 2})]
    got, want = _initial_gradient_norms(sweep, load_dataset("digits", seed=2, subset=300),
                                        4.0, "relu", 2)  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_the_data_dir_is_where_the_data_is_read(tmp_path):
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0],
                    train=replace(TINY.train, data_dir=str(tmp_path / "empty")))  # fmt: skip
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="digits file not found"):
        tiny_sweep(tmp_path / "sweep.h5", small)


def test_a_dataset_passed_in_is_the_one_every_pair_trains_on(tmp_path, digits):
    x, y = digits.x_train[:200].flip(0), digits.y_train[:200].flip(0)
    mine = replace(digits, x_train=x, y_train=y)
    small = replace(TINY, scales=[4.0], activations=["relu"], seeds=[1])
    sweep = read_sweep(tiny_sweep(tmp_path / "sweep.h5", small, dataset=mine))
    got, want = _initial_gradient_norms(sweep, mine, 4.0, "relu", 1)
    np.testing.assert_allclose(got, want, rtol=1e-6)


# --- the file and the scratch runs ----------------------------------------------------------


def test_the_default_output_is_under_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0])
    out = init_scale_sweep(small)
    assert out == Path("runs/init_scale/sweep.h5") and read_sweep(out).computed.all()


def test_a_killed_sweeps_scratch_runs_are_cleared_before_the_first_pair(tmp_path):
    work = tmp_path / ".sweep.h5.work"
    (work / "relu_scale1_seed0").mkdir(parents=True)
    (work / "stale.txt").write_text("from a killed sweep")
    seen = []
    small = replace(TINY, scales=[1.0, 2.0], activations=["relu"], seeds=[0])
    tiny_sweep(tmp_path / "sweep.h5", small,
               progress=lambda d, t: seen.append((work / "stale.txt").exists()))  # fmt: skip
    assert seen == [False, False] and not work.exists()


def test_a_linked_scratch_directory_is_not_followed_into(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    (tmp_path / ".sweep.h5.work").symlink_to(mine)
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0])
    assert read_sweep(tiny_sweep(tmp_path / "sweep.h5", small)).computed.all()
    assert (mine / "notes.txt").read_text() == "keep"


def test_kept_runs_are_replaced_when_their_pairs_train_again(tmp_path):
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0])
    tiny_sweep(tmp_path / "sweep.h5", small, keep_runs=tmp_path / "runs")
    other = replace(small, train=replace(small.train, lr=0.05))
    tiny_sweep(tmp_path / "sweep.h5", other, keep_runs=tmp_path / "runs", overwrite=True)
    with h5py.File(tmp_path / "runs" / "relu_scale1_seed0" / "run.h5", "r") as f:
        assert json.loads(f.attrs["config_json"])["lr"] == 0.05


def test_other_outcome_rules_are_refused(tmp_path):
    out = tmp_path / "sweep.h5"
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0])
    tiny_sweep(out, small)
    with h5py.File(out, "r+") as f:
        rules = json.loads(f.attrs["outcome_rules"])
        f.attrs["outcome_rules"] = json.dumps({**rules, "stall_margin": 0.2})
    with pytest.raises(ValueError, match=r"other settings \(outcome_rules\)"):
        tiny_sweep(out, small)


def test_another_network_is_refused_naming_its_layers(tmp_path):
    out = tmp_path / "sweep.h5"
    small = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0])
    tiny_sweep(out, small)
    deeper = replace(small, train=replace(small.train, model_options={"depth": 3, "width": 16}))
    with pytest.raises(ValueError, match=r"other settings \(train.model_options.depth, layer, "
                                         r"feeds_bn\)"):  # fmt: skip
        tiny_sweep(out, deeper)


# --- the configuration ------------------------------------------------------------------------


def test_the_default_sweep_is_the_papers_vgg_on_digits():
    t = default_train()
    assert (t.model, t.dataset, t.lr, t.batch_size, t.steps, t.probe_every) == \
        ("vgg_small", "digits", 0.1, 128, 200, 10)  # fmt: skip
    d = SweepConfig()
    assert d.scales == list(DEFAULT_SCALES) and d.activations == ["sigmoid", "tanh", "relu"]
    assert d.seeds == [0, 1, 2] and d.grad_steps == GRAD_STEPS == 20 and d.train == t


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"scales": []}, r"scales \(--scales\)"),
        ({"activations": []}, r"activations \(--activation\)"),
        ({"seeds": []}, r"seeds \(--seeds\)"),
        ({"scales": [1.0, 0.0]}, "finite and > 0"),
        ({"scales": [float("inf")]}, "finite and > 0"),
        ({"scales": [True]}, "must hold floats"),
        ({"grad_steps": 2.5}, "grad_steps"),
        ({"grad_steps": True}, "grad_steps"),
    ],
)
def test_each_bad_setting_names_its_option(change, match):
    with pytest.raises(ValueError, match=match):
        replace(TINY, **change).validate()


def test_integer_scales_and_one_gradient_step_are_accepted():
    replace(TINY, scales=[1, 3], grad_steps=1).validate()


def test_a_cell_sets_its_scale_activation_seed_and_one_evaluation():
    cell = TINY.cell_config(4, "tanh", 1)
    assert (cell.init_scale, cell.activation, cell.seed) == (4.0, "tanh", 1)
    assert isinstance(cell.init_scale, float) and cell.eval_every == TINY.train.steps == 8
    t = TINY.train
    back = replace(cell, init_scale=t.init_scale, activation=t.activation, seed=t.seed,
                   eval_every=t.eval_every)  # fmt: skip
    assert back == t


def test_training_settings_left_out_take_the_sweeps_defaults():
    assert SweepConfig.from_dict({"scales": [1.0]}).train == default_train()
    assert SweepConfig.from_dict({"train": {"lr": 0.05}}).train == replace(default_train(), lr=0.05)


# --- which layers feed BatchNorm, and the gradient hook ------------------------------------


#: A layer whose BN comes first in the next container; BN the very last module.
NESTED = (nn.Sequential(nn.Linear(4, 4)), nn.Sequential(nn.BatchNorm1d(4), nn.ReLU()))
LAST = (nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2), nn.BatchNorm1d(2))


@pytest.mark.parametrize(
    ("model", "feeds"),
    [
        (nn.Sequential(*NESTED, nn.Linear(4, 2)), [True, False]),
        (nn.Sequential(*LAST), [False, True]),
    ],
)
def test_which_layers_feed_batchnorm_by_the_order_modules_run(model, feeds):
    assert weight_layers(model, torch.zeros(3, 4))[1] == feeds


def test_a_layer_that_never_runs_feeds_nothing():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare, self.bn = nn.Linear(4, 4), nn.Linear(4, 4), nn.BatchNorm1d(4)

        def forward(self, x):
            return self.bn(self.used(x))

    names, feeds = weight_layers(Unused(), torch.zeros(3, 4))
    assert names == ["used.weight", "spare.weight"] and feeds == [True, False]


def test_the_gradient_hook_keeps_the_first_steps_and_nan_for_a_missing_gradient():
    from landscape.studies.init_scale import _Gradients

    hook = _Gradients(["a", "b"], steps=2)
    g = torch.tensor([3.0, 4.0])
    for step in range(3):
        hook("bn", step, None, None, None, (torch.tensor(1.0), {"a": g * (step + 1), "b": None}))
    np.testing.assert_array_equal(hook.norms["bn"], [[5.0, np.nan], [10.0, np.nan]])
    assert hook.norms["bn"].dtype == np.float64 and set(hook.norms) == {"bn"}
