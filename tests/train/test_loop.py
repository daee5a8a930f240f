"""Paired training: fairness, determinism, resume, divergence, logs, inline probes."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch

from landscape import store
from landscape.train import TrainConfig, train_pair
from tests.train.helpers import TINY


def _final_state(run, variant, step):
    ckpt = store.load_checkpoint(store.checkpoint_path(run / "checkpoints" / variant, step))
    return ckpt.model_state


@pytest.fixture
def dropout_model():
    from landscape.models import MODELS, register_model

    @register_model("test_dropout_mlp")
    def factory(*, bn, activation, init, init_scale, input_shape, num_classes):
        layers = [torch.nn.Flatten(), torch.nn.Linear(64, 32)]
        layers += [torch.nn.BatchNorm1d(32)] if bn else []
        layers += [torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(32, num_classes)]
        return torch.nn.Sequential(*layers)

    yield "test_dropout_mlp"
    MODELS.pop("test_dropout_mlp")


def test_pair_starts_equal_and_logs(tmp_path, digits):
    result = train_pair(TrainConfig(**TINY), tmp_path / "run", dataset=digits)
    assert {v.status for v in result.variants.values()} == {"finished"}
    bn0 = _final_state(tmp_path / "run", "bn", 0)
    plain0 = _final_state(tmp_path / "run", "plain", 0)
    assert set(plain0) < set(bn0)
    for name, tensor in plain0.items():
        assert torch.equal(tensor, bn0[name]), name
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        assert f.attrs["schema_version"] == store.SCHEMA_VERSION
        for v in ("bn", "plain"):
            train = store.read_series(f[f"train/{v}"])
            np.testing.assert_array_equal(train["step"], np.arange(30))
            assert np.all(np.isfinite(train["loss"])) and np.all(train["grad_norm"] > 0)
            np.testing.assert_array_equal(
                store.read_series(f[f"eval/{v}"])["step"], [0, 10, 20, 30]
            )
            assert f[f"train/{v}"].attrs["status"] == "finished"


@pytest.fixture
def rng_hungry_bn_model():
    """A family (shared layers named alike, as the built-in ones) whose BN variant draws
    random numbers before building the shared layers, with torch's default init."""
    from landscape.models import MODELS, register_model
    from landscape.models.blocks import LinearBlock

    @register_model("test_rng_hungry_bn")
    def factory(*, bn, activation, init, init_scale, input_shape, num_classes):
        if bn:
            torch.randn(17)  # e.g. a noise buffer drawn first: the layers after it differ
        hidden = LinearBlock(64, 16, bn, torch.nn.ReLU())
        return torch.nn.Sequential(torch.nn.Flatten(), hidden, torch.nn.Linear(16, num_classes))

    yield "test_rng_hungry_bn"
    MODELS.pop("test_rng_hungry_bn")


def test_pair_shares_initial_weights_whatever_the_bn_variant_draws(
    tmp_path, digits, rng_hungry_bn_model
):
    options = {"model": rng_hungry_bn_model, "model_options": {}, "steps": 2}
    config = TrainConfig(**{**TINY, **options})
    train_pair(config, tmp_path / "pair", dataset=digits)
    train_pair(replace(config, bn="plain"), tmp_path / "plain", dataset=digits)
    bn0 = _final_state(tmp_path / "pair", "bn", 0)
    plain0 = _final_state(tmp_path / "pair", "plain", 0)
    alone0 = _final_state(tmp_path / "plain", "plain", 0)  # a plain run alone starts the same
    assert set(plain0) == {"1.linear.weight", "1.linear.bias", "2.weight", "2.bias"}
    assert "1.bn.weight" in bn0
    for name, tensor in plain0.items():
        assert torch.equal(tensor, bn0[name]), name
        assert torch.equal(tensor, alone0[name]), name


def test_a_pair_whose_layers_are_named_apart_is_warned_about(tmp_path, digits, caplog):
    """nn.Sequential indices shift when the BN variant inserts a layer: the plain variant's
    later layers find no counterpart, start from other draws, and the log says which."""
    from landscape.models import MODELS, register_model

    @register_model("test_shifted_bn")
    def factory(*, bn, activation, init, init_scale, input_shape, num_classes):
        norm = [torch.nn.BatchNorm1d(16)] if bn else []
        layers = [torch.nn.Flatten(), torch.nn.Linear(64, 16), *norm, torch.nn.ReLU()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(16, num_classes))

    try:
        config = TrainConfig(**{**TINY, "model": "test_shifted_bn", "model_options": {}})
        with caplog.at_level("WARNING", logger="landscape.train.loop"):
            train_pair(replace(config, steps=1), tmp_path / "pair", dataset=digits)
    finally:
        MODELS.pop("test_shifted_bn")
    warned = [r.getMessage() for r in caplog.records if "not fair" in r.getMessage()]
    assert len(warned) == 1 and "'3.weight'" in warned[0] and "'1.weight'" not in warned[0]


def test_same_seed_same_weights_and_different_seed_differs(tmp_path, digits):
    a = train_pair(TrainConfig(**TINY, bn="plain"), tmp_path / "a", dataset=digits)
    b = train_pair(TrainConfig(**TINY, bn="plain"), tmp_path / "b", dataset=digits)
    c = train_pair(TrainConfig(**{**TINY, "seed": 1}, bn="plain"), tmp_path / "c", dataset=digits)
    sa, sb, sc = (_final_state(r.out_dir, "plain", 30) for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_resume_reaches_same_weights_bit_for_bit(tmp_path, digits):
    config = TrainConfig(**{**TINY, "optimizer": "momentum"})
    train_pair(config, tmp_path / "full", dataset=digits)
    # An interrupted run: the same configuration, stopped after step 20's checkpoint.
    train_pair(config, tmp_path / "cut", dataset=digits)
    for v in ("bn", "plain"):
        store.checkpoint_path(tmp_path / "cut" / "checkpoints" / v, 30).unlink()
    result = train_pair(config, tmp_path / "cut", resume=True, dataset=digits)
    assert all(r.status == "finished" for r in result.variants.values())
    for v in ("bn", "plain"):
        full, cut = _final_state(tmp_path / "full", v, 30), _final_state(tmp_path / "cut", v, 30)
        assert all(torch.equal(full[k], cut[k]) for k in full), v
        with (
            h5py.File(tmp_path / "full" / "run.h5") as f,
            h5py.File(tmp_path / "cut" / "run.h5") as g,
        ):
            for group in (f"train/{v}", f"eval/{v}"):
                a, b = store.read_series(f[group]), store.read_series(g[group])
                for k in a:
                    np.testing.assert_array_equal(a[k], b[k], err_msg=f"{group}/{k}")


def test_diverging_variant_stops_other_finishes(tmp_path, digits):
    # A huge learning rate with large weights: the plain network blows up, BN survives.
    config = TrainConfig(**{**TINY, "lr": 1e6, "init_scale": 10.0})
    result = train_pair(config, tmp_path / "run", dataset=digits)
    statuses = {v: r.status for v, r in result.variants.items()}
    assert statuses == {"bn": "finished", "plain": "diverged"}
    assert result.variants["bn"].steps_done == 30
    diverged = ["plain"]
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        for v in diverged:
            loss = store.read_series(f[f"train/{v}"])["loss"]
            assert not np.isfinite(loss[-1]) and np.all(np.isfinite(loss[:-1]))
            assert "diverged" in f[f"train/{v}"].attrs["message"]


def test_refuses_existing_run_without_flags(tmp_path, digits):
    config = TrainConfig(**{**TINY, "steps": 2, "bn": "plain"})
    train_pair(config, tmp_path / "run", dataset=digits)
    before = (tmp_path / "run" / "run.h5").read_bytes()
    with pytest.raises(ValueError, match="already holds a run"):
        train_pair(config, tmp_path / "run", dataset=digits)
    assert (tmp_path / "run" / "run.h5").read_bytes() == before


def test_inline_probe_matches_direct_probe_on_checkpoint(tmp_path, digits):
    """The row written at step 10 is the probe of checkpoint 10 on step 10's batch."""
    from landscape.data import batch_indices
    from landscape.models import ModelSpec
    from landscape.probes import gradient_probe, ics

    config = TrainConfig(**{**TINY, "dtype": "float64", "probe_every": 10, "ics_every": 10})
    train_pair(config, tmp_path / "run", dataset=digits)
    for v in ("bn", "plain"):
        ckpt = store.load_checkpoint(
            store.checkpoint_path(tmp_path / "run" / "checkpoints" / v, 10)
        )
        model = ModelSpec.from_dict(ckpt.spec).build().double()
        model.load_state_dict(ckpt.model_state)
        idx = batch_indices(len(digits.x_train), config.batch_size, 10, config.seed)
        batch = (digits.x_train[idx].double(), digits.y_train[idx])
        loss_fn = torch.nn.functional.cross_entropy
        direct = gradient_probe(model, loss_fn, batch, config.step_sizes().values())
        shift = ics(model, loss_fn, batch, config.lr)
        with h5py.File(tmp_path / "run" / "run.h5") as f:
            rows = store.read_series(f[f"probe/{v}"])
            ics_rows = store.read_series(f[f"ics/{v}"])
        np.testing.assert_array_equal(rows["step"], [0, 10, 20])
        np.testing.assert_allclose(rows["grad_distance"][1], direct.grad_distance, rtol=1e-9)
        np.testing.assert_allclose(rows["loss"][1], direct.loss, rtol=1e-9)
        assert rows["beta"][1] == pytest.approx(direct.beta, rel=1e-9)
        np.testing.assert_allclose(ics_rows["l2"][1], shift.l2, rtol=1e-9, atol=1e-15)


def test_inline_ics_uses_the_optimizers_update_and_probes_follow_the_schedule(tmp_path, digits):
    """With momentum, ICS of step 10 moves the earlier layers to checkpoint 11's values (the
    update the optimizer made), not by -lr * g; probe step sizes scale with the step's lr."""
    from landscape.data import batch_indices
    from landscape.models import ModelSpec
    from landscape.probes import ics

    config = TrainConfig(
        **{**TINY, "dtype": "float64", "optimizer": "momentum", "lr": 0.05},
        probe_every=10,
        ics_every=10,
        checkpoint_steps=[11],
        lr_milestones=[15],
        lr_gamma=0.5,
    )
    train_pair(config, tmp_path / "run", dataset=digits)
    loss_fn = torch.nn.functional.cross_entropy
    idx = batch_indices(len(digits.x_train), config.batch_size, 10, config.seed)
    batch = (digits.x_train[idx].double(), digits.y_train[idx])
    for v in ("bn", "plain"):
        ckpt_dir = tmp_path / "run" / "checkpoints" / v
        c10, c11 = (store.load_checkpoint(store.checkpoint_path(ckpt_dir, s)) for s in (10, 11))
        model = ModelSpec.from_dict(c10.spec).build().double()
        model.load_state_dict(c10.model_state)
        update = {n: c11.model_state[n] - c10.model_state[n] for n, _ in model.named_parameters()}
        expected = ics(model, loss_fn, batch, update=update)
        sgd = ics(model, loss_fn, batch, lr=config.lr)
        with h5py.File(tmp_path / "run" / "run.h5") as f:
            rows = store.read_series(f[f"ics/{v}"])
            probes = store.read_series(f[f"probe/{v}"])
            assert f[f"ics/{v}"].attrs["update"] == "given"  # text, natively (schema 1.1)
        np.testing.assert_array_equal(rows["step"], [0, 10, 20])
        np.testing.assert_allclose(rows["l2"][1], expected.l2, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(rows["cos"][1], expected.cos, rtol=1e-9)
        assert np.max(np.abs(rows["l2"][1] - sgd.l2)) > 1e-6  # momentum: not the SGD step
        multipliers = config.step_sizes().values() / config.lr
        np.testing.assert_allclose(probes["step_sizes"][1], 0.05 * multipliers, rtol=1e-12)
        np.testing.assert_allclose(probes["step_sizes"][2], 0.025 * multipliers, rtol=1e-12)


def test_lr_schedule_sets_the_optimizers_step(tmp_path, digits):
    """Plain SGD with a milestone at step 3 (gamma 0.5): the update of step 1 is -lr * g,
    that of step 4 (between checkpoints 4 and 5, after the milestone) is -lr * gamma * g."""
    from landscape.data import batch_indices
    from landscape.models import ModelSpec

    options = {
        "dtype": "float64",
        "bn": "plain",
        "steps": 6,
        "eval_every": 3,
        "checkpoint_every": 1,
    }
    config = TrainConfig(**{**TINY, **options}, lr=0.1, lr_milestones=[3], lr_gamma=0.5)
    train_pair(config, tmp_path / "run", dataset=digits)
    ckpt_dir = tmp_path / "run" / "checkpoints" / "plain"
    for step, lr in ((1, 0.1), (4, 0.05)):
        before, after = (
            store.load_checkpoint(store.checkpoint_path(ckpt_dir, s)) for s in (step, step + 1)
        )
        model = ModelSpec.from_dict(before.spec).build().double()
        model.load_state_dict(before.model_state)
        idx = batch_indices(len(digits.x_train), config.batch_size, step, config.seed)
        loss = torch.nn.functional.cross_entropy(
            model(digits.x_train[idx].double()), digits.y_train[idx]
        )
        loss.backward()
        for name, p in model.named_parameters():
            moved = after.model_state[name] - before.model_state[name]
            torch.testing.assert_close(
                moved, -lr * p.grad, rtol=1e-9, atol=1e-15, msg=f"step {step}: {name}"
            )
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        logged = store.read_series(f["train/plain"])["lr"]
    np.testing.assert_allclose(logged, [0.1, 0.1, 0.1, 0.05, 0.05, 0.05], rtol=1e-15)


def _fields(result) -> dict:
    """A VariantResult's reported numbers, NaN written as the string "nan" (NaN != NaN)."""
    out = dataclasses.asdict(result)
    out.pop("already_ended")
    return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in out.items()}


def test_resume_keeps_a_diverged_variant_as_it_ended(tmp_path, digits):
    config = TrainConfig(**{**TINY, "lr": 1e6, "init_scale": 10.0})
    first = train_pair(config, tmp_path / "run", dataset=digits)
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        before = store.read_series(f["train/plain"])["loss"]
    result = train_pair(config, tmp_path / "run", resume=True, dataset=digits)
    for v in ("bn", "plain"):  # reported from the log as the first run reported it
        assert result.variants[v].already_ended and not first.variants[v].already_ended
        assert _fields(result.variants[v]) == _fields(first.variants[v])
    assert result.variants["plain"].status == "diverged"
    assert "diverged" in result.variants["plain"].message
    assert result.variants["bn"].status == "finished"
    for p in (tmp_path / "run" / "checkpoints" / "plain").glob("*.pt"):
        p.unlink()  # its log alone says how it ended
    again = train_pair(config, tmp_path / "run", resume=True, dataset=digits)
    assert _fields(again.variants["plain"]) == _fields(result.variants["plain"])
    assert again.variants["plain"].already_ended
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        after = store.read_series(f["train/plain"])["loss"]
    np.testing.assert_array_equal(before, after)  # the non-finite row is still there
    assert not np.isfinite(after[-1])


def test_eval_mode_inline_probe_is_an_eval_mode_probe(tmp_path, digits):
    """The step's train-mode gradient must not stand in for an eval-mode probe's g."""
    from landscape.data import batch_indices
    from landscape.models import ModelSpec
    from landscape.probes import gradient_probe

    config = TrainConfig(
        **{**TINY, "dtype": "float64", "bn": "bn", "probe_every": 10, "probe_bn_mode": "eval"}
    )
    train_pair(config, tmp_path / "run", dataset=digits)
    ckpt = store.load_checkpoint(store.checkpoint_path(tmp_path / "run" / "checkpoints" / "bn", 10))
    model = ModelSpec.from_dict(ckpt.spec).build().double()
    model.load_state_dict(ckpt.model_state)
    idx = batch_indices(len(digits.x_train), config.batch_size, 10, config.seed)
    batch = (digits.x_train[idx].double(), digits.y_train[idx])
    direct = gradient_probe(
        model, torch.nn.functional.cross_entropy, batch, config.step_sizes(), bn_mode="eval"
    )
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        row = {k: v[1] for k, v in store.read_series(f["probe/bn"]).items()}
    assert row["grad_norm"] == pytest.approx(direct.grad_norm, rel=1e-9)
    np.testing.assert_allclose(row["grad_distance"], direct.grad_distance, rtol=1e-9)


def test_inline_probe_with_a_frozen_parameter(tmp_path, digits, monkeypatch):
    (tmp_path / "frozenmod.py").write_text(
        "from landscape.models import create_model\n"
        "def frozen(**spec):\n"
        "    m = create_model('mlp', depth=1, width=16, **spec)\n"
        "    m.layers[0].linear.bias.requires_grad_(False)\n"
        "    return m\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = TrainConfig(**{**TINY, "model": "frozenmod:frozen", "model_options": {}})
    config.probe_every = 5
    result = train_pair(config, tmp_path / "run", dataset=digits)
    assert {r.status for r in result.variants.values()} == {"finished"}
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        rows = store.read_series(f["probe/bn"])
        assert len(rows["step"]) == 6
        assert np.all(np.isfinite(rows["beta"])) and np.all(np.isfinite(rows["grad_norm"]))
    for v in ("bn", "plain"):
        first, last = (_final_state(tmp_path / "run", v, s) for s in (0, 30))
        name = "layers.0.linear.bias"
        assert torch.equal(first[name], last[name])  # frozen: never updated
        assert not torch.equal(first["layers.0.linear.weight"], last["layers.0.linear.weight"])


@pytest.mark.parametrize("probe_bn_mode", ["train", "eval"])
def test_inline_probes_and_ics_leave_training_unchanged(tmp_path, digits, probe_bn_mode):
    """Probes and ICS (which writes theta_t back and restores theta_{t+1}) are evaluations:
    the final weights, buffers and logged losses equal those of an unprobed run bit for bit."""
    base = dict(TINY, optimizer="momentum")
    plain = train_pair(TrainConfig(**base), tmp_path / "a", dataset=digits)
    probed = TrainConfig(**base, probe_every=5, ics_every=5, probe_bn_mode=probe_bn_mode)
    train_pair(probed, tmp_path / "b", dataset=digits)
    for v in ("bn", "plain"):
        a, b = (_final_state(tmp_path / r, v, 30) for r in ("a", "b"))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (v, k)
        with h5py.File(tmp_path / "a" / "run.h5") as fa, h5py.File(tmp_path / "b" / "run.h5") as fb:
            assert "probe" not in fa and len(fb[f"probe/{v}/step"]) == 6
            assert len(fb[f"ics/{v}/step"]) == 6
            la, lb = (store.read_series(f[f"train/{v}"]) for f in (fa, fb))
            for k in ("loss", "accuracy", "grad_norm"):
                np.testing.assert_array_equal(la[k], lb[k])
    assert plain.variants["bn"].status == "finished"


def test_step_hooks_run_after_backward_with_the_steps_gradient(tmp_path, digits):
    """Whatever the probe settings, a user hook sees the step's own (loss, gradient)."""
    seen = []

    def hook(variant, step, model, loss_fn, batch, base):
        loss, grads = base
        grads_now = {n: p.grad for n, p in model.named_parameters()}
        assert all(grads[n] is grads_now[n] for n in grads)
        seen.append((variant, step, float(loss)))

    config = TrainConfig(**{**TINY, "bn": "bn", "probe_every": 10, "probe_bn_mode": "eval"})
    train_pair(config, tmp_path / "run", hooks=[hook], dataset=digits)
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        losses = store.read_series(f["train/bn"])["loss"]
    assert [s for _, s, _ in seen] == list(range(30))
    np.testing.assert_array_equal([loss for _, _, loss in seen], losses)


def test_resume_without_checkpoints_starts_over_without_duplicate_rows(tmp_path, digits):
    import shutil

    config = TrainConfig(**{**TINY, "probe_every": 10})
    train_pair(config, tmp_path / "run", dataset=digits)
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    train_pair(config, tmp_path / "run", resume=True, dataset=digits)
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        np.testing.assert_array_equal(store.read_series(f["train/bn"])["step"], np.arange(30))
        np.testing.assert_array_equal(store.read_series(f["probe/bn"])["step"], [0, 10, 20])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_pair_on_cuda_with_inline_probes(tmp_path, digits):
    config = TrainConfig(
        **{**TINY, "device": "cuda", "optimizer": "momentum"}, probe_every=10, ics_every=10
    )
    result = train_pair(config, tmp_path / "run", dataset=digits)
    assert {v.status for v in result.variants.values()} == {"finished"}
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        for v in ("bn", "plain"):
            np.testing.assert_array_equal(store.read_series(f[f"ics/{v}"])["step"], [0, 10, 20])
            assert np.all(np.isfinite(store.read_series(f[f"probe/{v}"])["beta"]))


def test_dropout_runs_repeat_and_leave_the_callers_rng(tmp_path, digits, dropout_model):
    config = TrainConfig(**{**TINY, "model": dropout_model, "model_options": {}})
    before = torch.get_rng_state()
    for name in ("a", "b"):
        train_pair(config, tmp_path / name, dataset=digits)
        torch.rand(3)  # the caller's own draws between runs change nothing
    torch.set_rng_state(before)
    train_pair(config, tmp_path / "c", dataset=digits)
    assert torch.equal(torch.get_rng_state(), before)
    for v in ("bn", "plain"):
        a, b = (_final_state(tmp_path / n, v, 30) for n in ("a", "b"))
        for name, t in a.items():
            assert torch.equal(t, b[name]), (v, name)


def test_a_killed_checkpoint_save_leaves_no_temporary_after_resume(tmp_path, digits):
    """A kill during a checkpoint save leaves a checkpoint-sized ``.step_*.pt.*.tmp``: the
    next train (here: --resume) removes it, and no other file."""
    config = TrainConfig(**TINY)
    train_pair(config, tmp_path / "run", dataset=digits)
    folder = tmp_path / "run" / "checkpoints" / "bn"
    stale = folder / ".step_0000030.pt.u7d1w2ka.tmp"
    stale.write_bytes(store.checkpoint_path(folder, 30).read_bytes())
    other = folder / ".notes.txt.u7d1w2ka.tmp"
    other.write_bytes(b"not a checkpoint's")
    train_pair(config, tmp_path / "run", resume=True, dataset=digits)
    assert not stale.exists() and other.exists()


def test_evaluate_is_the_mean_over_every_example_in_uneven_batches(digits):
    from landscape.train import evaluate

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).double()
    x, y = digits.x_test[:103].double(), digits.y_test[:103]
    model.train()
    loss, acc = evaluate(model, torch.nn.functional.cross_entropy, x, y, batch_size=10)
    with torch.no_grad():
        out = model(x)
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(out, y)), rel=1e-12)
    assert acc == pytest.approx(float((out.argmax(1) == y).double().mean()), rel=1e-12)
    assert model.training  # left as found
    targets = torch.randn(103, 10, dtype=torch.float64)
    mse, none = evaluate(model.eval(), torch.nn.functional.mse_loss, x, targets, batch_size=10)
    assert mse == pytest.approx(float(torch.nn.functional.mse_loss(out, targets)), rel=1e-12)
    assert math.isnan(none) and not model.training


def test_each_logged_step_is_its_batchs_loss_and_accuracy(tmp_path, digits):
    from landscape.data import batch_indices

    cfg = TrainConfig(**TINY)
    calls = []
    train_pair(cfg, tmp_path / "run", dataset=digits, progress=lambda *a: calls.append(a))
    assert calls == [(v, s, 30) for v in ("bn", "plain") for s in range(1, 31)]
    with h5py.File(tmp_path / "run" / "run.h5", "r") as f:
        assert f.attrs["device"] == "cpu"
        meta = json.loads(json.dumps(digits.meta, default=str))
        assert json.loads(f.attrs["dataset_meta"]) == meta
        rows = {v: store.read_series(f[f"train/{v}"]) for v in ("bn", "plain")}
        assert {f[f"train/{v}"].attrs["message"] for v in ("bn", "plain")} == {""}
    for v in ("bn", "plain"):
        ckpt = store.load_checkpoint(store.checkpoint_path(tmp_path / "run/checkpoints" / v, 10))
        model = store.build_model(ckpt)
        model.train()
        idx = batch_indices(len(digits.x_train), cfg.batch_size, 10, cfg.seed)
        with torch.no_grad():
            out = model(digits.x_train[idx])
        loss = float(torch.nn.functional.cross_entropy(out, digits.y_train[idx]))
        acc = float((out.argmax(1) == digits.y_train[idx]).double().mean())
        assert rows[v]["loss"][10] == pytest.approx(loss, rel=1e-5)
        assert rows[v]["accuracy"][10] == acc
