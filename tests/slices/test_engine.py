"""The slice engine against a slow reference: orientation, data forms, BN modes, precision."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.slices import (
    evaluate_grid,
    random_directions,
)
from tests.slices.helpers import CE, assert_same_state, batches, bn_net, reference, state


class Analytic(nn.Module):
    """Loss a*x^2 + b*y with x, y the two scalar parameters; ignores its inputs."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.x = nn.Parameter(torch.tensor(0.0, dtype=torch.float64))
        self.y = nn.Parameter(torch.tensor(0.0, dtype=torch.float64))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.a * self.x**2 + self.b * self.y


def stale_bn_net() -> nn.Module:
    model = bn_net()
    with torch.no_grad():  # running statistics far from the data's
        model[1].running_mean.fill_(2.0)
        model[1].running_var.fill_(9.0)
    return model


def test_grid_matches_slow_reference_and_restores_model():
    model, data = bn_net(), batches()
    model.train()  # the caller's mode must come back too
    with torch.no_grad():  # non-trivial running statistics
        model[1].running_mean.uniform_(-0.3, 0.3)
        model[1].running_var.uniform_(0.5, 2.0)
    before = state(model)
    dirs = random_directions(model, 2, seed=4)
    xs, ys = np.linspace(-1, 1, 4), np.array([-0.5, 0.0, 1.0])
    seen = []
    res = evaluate_grid(model, CE, data, dirs, xs, ys, progress=lambda d, t: seen.append((d, t)))
    loss, acc = reference(model, data, dirs, xs, ys)
    assert res.values["loss"].shape == (3, 4) and res.computed.all()
    np.testing.assert_allclose(res.values["loss"], loss, rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.values["accuracy"], acc, rtol=0, atol=1e-12)
    assert seen == [(k, 12) for k in range(1, 13)]
    assert_same_state(model, before)
    assert all(m.training for m in model.modules())
    assert res.meta["bn_mode"] == "eval" and res.meta["eval_examples"] == 16


def test_grid_orientation_on_non_square_grid():
    a, b = 2.0, -3.0
    model = Analytic(a, b)
    one = torch.tensor(1.0, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    dirs = [{"x": one, "y": zero}, {"x": zero, "y": one}]
    xs, ys = np.linspace(-1.0, 1.0, 5), np.array([-1.0, 0.5, 2.0])
    data = [(torch.zeros(1), torch.zeros(1))]  # float targets: no accuracy
    res = evaluate_grid(model, lambda out, t: out, data, dirs, xs, ys)
    assert set(res.values) == {"loss"} and res.shape == (3, 5)
    expected = a * xs[None, :] ** 2 + b * ys[:, None]  # values[j, i] = f(x_i, y_j)
    np.testing.assert_allclose(res.values["loss"], expected, rtol=0, atol=1e-12)
    line = evaluate_grid(model, lambda out, t: out, data, dirs[:1], xs)
    np.testing.assert_allclose(line.values["loss"], a * xs**2, rtol=0, atol=1e-12)


def test_points_subset_on_point_and_extra_metrics():
    model, data = bn_net(), batches()
    dirs = random_directions(model, 2, seed=0)
    got = {}
    res = evaluate_grid(
        model,
        CE,
        data,
        dirs,
        "-1:1:3",
        "-1:1:2",
        points=[4, 0],
        metrics={"double_loss": lambda out, t: 2 * CE(out, t)},
        on_point=lambda k, v: got.update({k: v}),
    )
    assert sorted(got) == [0, 4] and res.computed.sum() == 2
    assert np.isnan(res.values["loss"][0, 1]) and not np.isnan(res.values["loss"][1, 1])
    assert got[4]["loss"] == res.values["loss"][1, 1]
    np.testing.assert_allclose(res.values["double_loss"], 2 * res.values["loss"], equal_nan=True)


def test_data_forms():
    model, data = bn_net(), batches()
    d = random_directions(model, 1, seed=0)
    ref = evaluate_grid(model, CE, data, d, "0:1:2").values["loss"]
    for form in (lambda: iter(data), tuple(data)):
        np.testing.assert_array_equal(
            evaluate_grid(model, CE, form, d, "0:1:2").values["loss"], ref
        )
    one = evaluate_grid(model, CE, data[0], d, "0:0:1")
    assert one.meta["eval_examples"] == 5
    with pytest.raises(ValueError, match="one-shot"):
        evaluate_grid(model, CE, iter(data), d, "0:1:2")


def test_unknown_options_raise():
    model, data = bn_net(), batches()
    d = random_directions(model, 1, seed=0)
    with pytest.raises(ValueError, match="unknown bn_mode 'test'"):
        evaluate_grid(model, CE, data, d, "0:1:2", bn_mode="test")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        evaluate_grid(model, CE, data, d, "0:1:2", precision="fp8")
    with pytest.raises(ValueError, match="needs 2 directions"):
        evaluate_grid(model, CE, data, d, "0:1:2", "0:1:2")


def test_bn_recalibrate_reestimates_statistics_at_every_point():
    model, data = stale_bn_net(), batches()
    before = state(model)
    d = random_directions(model, 1, seed=2)
    means = []
    res = evaluate_grid(
        model,
        CE,
        data,
        d,
        "-1:1:3",
        bn_mode="recalibrate",
        recalibrate_batches=2,
        on_point=lambda k, v: means.append(model[1].running_mean.clone()),
    )
    ev = evaluate_grid(model, CE, data, d, "-1:1:3", bn_mode="eval")
    assert not np.allclose(res.values["loss"], ev.values["loss"])
    assert not torch.allclose(means[0], means[1]) and not torch.allclose(means[1], means[2])
    assert all(not torch.allclose(m, before["1.running_mean"]) for m in means)
    assert res.meta["bn_mode"] == "recalibrate" and res.meta["recalibrate_batches"] == 2
    assert_same_state(model, before)
    assert model[1].momentum == 0.1
    # reference at the origin: cumulative statistics of the first two batches, then eval
    ref = copy.deepcopy(model)
    ref[1].reset_running_stats()
    ref[1].momentum = None
    ref.train()
    with torch.no_grad():
        for x, _ in data[:2]:
            ref(x)
    ref.eval()
    x_all, y_all = torch.cat([x for x, _ in data]), torch.cat([y for _, y in data])
    with torch.no_grad():
        assert abs(float(CE(ref(x_all), y_all)) - res.values["loss"][1]) < 1e-10


def test_bn_train_uses_batch_statistics_and_leaves_running_stats():
    model, data = stale_bn_net(), batches()
    before = state(model)
    d = random_directions(model, 1, seed=2)
    untouched = []

    def check(k, v):
        untouched.append(all(torch.equal(t, before[n]) for n, t in model.named_buffers()))

    res = evaluate_grid(model, CE, data, d, "-1:1:3", bn_mode="train", on_point=check)
    assert untouched == [True, True, True]
    assert res.meta["bn_mode"] == "train" and res.meta["recalibrate_batches"] is None
    ref = copy.deepcopy(model).train()
    with torch.no_grad():
        total = sum(float(CE(ref(x), y)) * len(y) for x, y in data) / 16
    assert abs(total - res.values["loss"][1]) < 1e-10
    assert_same_state(model, before)
    assert model[1].track_running_stats


def test_bf16_autocast_is_close():
    model, data = bn_net(dtype=torch.float32), batches(torch.float32)
    d = random_directions(model, 1, seed=0)
    native = evaluate_grid(model, CE, data, d, "-1:1:3").values["loss"]
    bf16 = evaluate_grid(model, CE, data, d, "-1:1:3", precision="bf16").values["loss"]
    np.testing.assert_allclose(bf16, native, rtol=5e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_directions_and_grid_match_cpu():
    model, data = bn_net().cuda(), [(x.cuda(), y.cuda()) for x, y in batches()]
    d = random_directions(model, 2, seed=0)
    assert all(v.is_cuda for v in d[0].values())
    res = evaluate_grid(model, CE, data, d, "-1:1:3", "-1:1:2")
    cpu = evaluate_grid(
        model.cpu(),
        CE,
        batches(),
        [{n: v.cpu() for n, v in di.items()} for di in d],
        "-1:1:3",
        "-1:1:2",
    )
    np.testing.assert_allclose(res.values["loss"], cpu.values["loss"], rtol=1e-9)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_autocast_is_close_and_recalibrate_runs():
    model = bn_net(dtype=torch.float32).cuda()
    data = [(x.cuda(), y.cuda()) for x, y in batches(torch.float32)]
    d = random_directions(model, 1, seed=0)
    native = evaluate_grid(model, CE, data, d, "-1:1:3").values["loss"]
    bf16 = evaluate_grid(model, CE, data, d, "-1:1:3", precision="bf16").values["loss"]
    np.testing.assert_allclose(bf16, native, rtol=5e-2)
    before = {n: b.clone() for n, b in model.named_buffers()}
    recal = evaluate_grid(model, CE, data, d, "-1:1:3", bn_mode="recalibrate").values["loss"]
    assert np.all(np.isfinite(recal))
    assert all(torch.equal(b, before[n]) for n, b in model.named_buffers())


def test_accuracy_is_nan_where_the_outputs_are_not_finite():
    """A point whose logits overflow has no prediction: NaN accuracy, not argmax's class 0."""

    class Blowup(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1, dtype=torch.float64))

        def forward(self, x):
            return x * torch.exp(1000.0 * self.w)  # inf for w = 1, finite for w <= 0.5

    x = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    d = {"w": torch.ones(1, dtype=torch.float64)}
    res = evaluate_grid(Blowup(), torch.nn.functional.cross_entropy, [(x, y)], [d], [-1.0, 0.0])
    assert res.values["accuracy"][0] == 1.0
    assert math.isnan(res.values["accuracy"][1])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_one_non_finite_logit_makes_the_accuracy_nan(bad):
    class Poison(nn.Module):  # one logit of the first example becomes `bad` where w != 0
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1, dtype=torch.float64))

        def forward(self, x):
            out = x.clone()
            if self.w.item() != 0.0:
                out[0, 1] = bad
            return out

    x = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    d = {"w": torch.ones(1, dtype=torch.float64)}
    res = evaluate_grid(Poison(), torch.nn.functional.cross_entropy, [(x, torch.tensor([0, 1]))],
                        [d], [0.0, 1.0])  # fmt: skip
    assert res.values["accuracy"][0] == 1.0
    assert math.isnan(res.values["accuracy"][1])


CUDA = pytest.param(
    "cuda",
    marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")],
)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_an_empty_batch_adds_no_prediction_and_no_example(device):
    torch.manual_seed(0)
    model = nn.Linear(3, 4).double().to(device)
    x = torch.randn(6, 3, dtype=torch.float64, device=device)
    y = torch.randint(0, 4, (6,), device=device)
    empty = (x[:0], y[:0])
    d = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    got = evaluate_grid(model, torch.nn.functional.cross_entropy, [(x, y), empty], [d], [0.0])
    with torch.no_grad():
        want = (model(x).argmax(1) == y).double().mean().item()
    assert got.values["accuracy"][0] == pytest.approx(want, rel=1e-15)


def test_meta_records_the_recalibration_batches_used():
    model, data = stale_bn_net(), batches()
    d = random_directions(model, 1, seed=2)
    many = evaluate_grid(
        model, CE, data, d, "0:0:1", bn_mode="recalibrate", recalibrate_batches=10**20
    )
    assert many.meta["recalibrate_batches"] == len(data)
    every = evaluate_grid(model, CE, data, d, "0:0:1", bn_mode="recalibrate", recalibrate_batches=3)
    assert many.values["loss"][0] == every.values["loss"][0]


class CountingBatches:
    """Re-iterable batches that count the passes made over them (``__iter__`` calls)."""

    def __init__(self, data) -> None:
        self.data, self.passes = data, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.data)


class CountingLoader(torch.utils.data.DataLoader):
    """A DataLoader counting the iterators it makes: each one starts its own workers."""

    iterators = 0

    def _get_iterator(self):
        CountingLoader.iterators += 1
        return super()._get_iterator()


@pytest.mark.parametrize("bn_mode", ["eval", "train", "recalibrate"])
def test_one_pass_over_the_data_per_point(bn_mode):
    # one pass describes the data (examples, batches, labels; its first batch checks the BN
    # fold), then one pass per point; "recalibrate" adds its own pass per point
    model, data = bn_net(), CountingBatches(batches())
    evaluate_grid(model, CE, data, random_directions(model, 2, seed=0), "-1:1:3", "-1:1:3",
                  bn_mode=bn_mode)  # fmt: skip
    assert data.passes == 1 + 9 * (2 if bn_mode == "recalibrate" else 1)


def test_a_dataloader_with_workers_starts_them_once_per_point():
    model, data = bn_net(), batches()
    x, y = torch.cat([x for x, _ in data]), torch.cat([y for _, y in data])
    loader = CountingLoader(torch.utils.data.TensorDataset(x, y), batch_size=6, num_workers=1)
    CountingLoader.iterators = 0
    res = evaluate_grid(model, CE, loader, random_directions(model, 2, seed=0), "-1:1:3",
                        "-1:1:3")  # fmt: skip
    assert CountingLoader.iterators == 1 + 9
    ref = evaluate_grid(model, CE, [(x, y)], res.directions, "-1:1:3", "-1:1:3")
    np.testing.assert_allclose(res.values["loss"], ref.values["loss"], rtol=1e-12)


def test_only_the_requested_metrics_are_computed(monkeypatch):
    model, data = bn_net(), batches()
    calls = {"metric": 0, "argmax": 0}

    def metric(out, t):
        calls["metric"] += 1
        return CE(out, t)

    argmax = torch.Tensor.argmax

    def counting_argmax(self, *args, **kwargs):
        calls["argmax"] += 1
        return argmax(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "argmax", counting_argmax)
    d = random_directions(model, 2, seed=0)
    res = evaluate_grid(model, CE, data, d, "-1:1:3", "-1:1:3", accuracy=False)
    assert list(res.values) == ["loss"] and calls == {"metric": 0, "argmax": 0}
    res = evaluate_grid(model, CE, data, d, "-1:1:3", "-1:1:3", accuracy=False,
                        metrics={"m": metric})  # fmt: skip
    assert list(res.values) == ["loss", "m"] and calls == {"metric": 9 * 3, "argmax": 0}
    res = evaluate_grid(model, CE, data, d, "-1:1:3", "-1:1:3")  # default: labels -> accuracy
    assert list(res.values) == ["loss", "accuracy"] and calls["argmax"] == 9 * 3


def test_origin_sets_the_tensors_no_direction_moves():
    # biases and BN get zero directions (ignore="biasbn"): they are set once, from the origin
    model, other, data = bn_net(0), bn_net(1), batches()
    d = random_directions(model, 2, seed=0, ignore="biasbn")
    before = state(model)
    res = evaluate_grid(model, CE, data, d, "-1:1:3", "-1:1:2",
                        origin=dict(other.named_parameters()))  # fmt: skip
    other.load_state_dict({**state(other), **{k: v for k, v in before.items() if "running" in k}})
    ref = evaluate_grid(other, CE, data, d, "-1:1:3", "-1:1:2")
    np.testing.assert_array_equal(res.values["loss"], ref.values["loss"])
    assert_same_state(model, before)


def test_zero_directions_give_the_origin_everywhere():
    model, data = bn_net(0), batches()
    zero = [{n: torch.zeros_like(p) for n, p in model.named_parameters()} for _ in range(2)]
    before = state(model)
    res = evaluate_grid(model, CE, data, zero, "-1:1:3", "-1:1:2")
    want = reference(model, data, zero, [0.0])[0][0]
    np.testing.assert_allclose(res.values["loss"], np.full((2, 3), want), rtol=0, atol=1e-12)
    assert_same_state(model, before)


def test_values_read_one_point_late_are_the_same(monkeypatch):
    """The GPU's deferred read-back (the host waits for point k while k + 1 runs), here on
    the CPU: same values, every point reported once and in order, progress complete."""
    import landscape.slices.engine as engine

    model, data = bn_net(0), batches()
    d = random_directions(model, 2, seed=0)
    want = evaluate_grid(model, CE, data, d, "-1:1:3", "-1:1:2", bn_mode="recalibrate")
    monkeypatch.setattr(engine, "DEFERRED_READBACK", ("cpu",))
    seen, progress = [], []
    got = evaluate_grid(model, CE, data, d, "-1:1:3", "-1:1:2", bn_mode="recalibrate",
                        points=[4, 0, 5, 1], on_point=lambda k, v: seen.append((k, v["loss"])),
                        progress=lambda done, total: progress.append((done, total)))  # fmt: skip
    assert [k for k, _ in seen] == [4, 0, 5, 1]
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    flat = want.values["loss"].reshape(-1)
    np.testing.assert_array_equal([v for _, v in seen], flat[[4, 0, 5, 1]])
    np.testing.assert_array_equal(got.computed.reshape(-1), np.isin(np.arange(6), [4, 0, 5, 1]))


# --- batch_loss batches, metrics of both forms, argument checks, metadata, buffers ----------


def dict_batches(data):
    return [{"x": x, "y": y} for x, y in data]


def frac_correct(out, y):
    return (out.argmax(1) == y).double().mean()


@pytest.mark.parametrize("bn_mode", ["eval", "recalibrate"])
def test_batch_loss_batches_give_the_values_of_plain_batches(bn_mode):
    """Dict batches with batch_loss loss, metric and accuracy: the plain run's values (every
    batch weighted by its count; recalibration runs the loss's own forward passes)."""
    from landscape import batch_loss

    model, data = stale_bn_net(), batches()
    d = random_directions(model, 1, seed=2)
    opts = {"bn_mode": bn_mode, "recalibrate_batches": 2}
    want = evaluate_grid(model, CE, data, d, "-1:1:3", metrics={"m": lambda o, t: 3 * CE(o, t)},
                         **opts)  # fmt: skip
    got = evaluate_grid(
        model,
        batch_loss(lambda m, b: CE(m(b["x"]), b["y"])),
        dict_batches(data),
        d,
        "-1:1:3",
        metrics={"m": batch_loss(lambda m, b: 3 * CE(m(b["x"]), b["y"]))},
        accuracy=batch_loss(lambda m, b: frac_correct(m(b["x"]), b["y"])),
        **opts,
    )
    assert list(got.values) == ["loss", "accuracy", "m"] and got.computed.all()
    for name in want.values:
        np.testing.assert_allclose(got.values[name], want.values[name], rtol=1e-12, atol=0)
    assert got.meta["eval_examples"] == 16 and got.meta["eval_batches"] == 3


def test_plain_batches_take_batch_loss_metrics_and_accuracy():
    from landscape import batch_loss

    model, data = bn_net(), batches()
    d = random_directions(model, 1, seed=0)
    want = evaluate_grid(model, CE, data, d, "-1:1:3")
    got = evaluate_grid(
        model,
        CE,
        data,
        d,
        "-1:1:3",
        metrics={"twice": batch_loss(lambda m, b: 2 * CE(m(b[0]), b[1]))},
        accuracy=batch_loss(lambda m, b: frac_correct(m(b[0]), b[1])),
    )
    assert list(got.values) == ["loss", "accuracy", "twice"]
    np.testing.assert_allclose(got.values["loss"], want.values["loss"], rtol=1e-12)
    np.testing.assert_allclose(got.values["accuracy"], want.values["accuracy"], rtol=1e-12)
    np.testing.assert_allclose(got.values["twice"], 2 * want.values["loss"], rtol=1e-12)


def test_batch_loss_refuses_plain_metrics_and_accuracy_true():
    from landscape import batch_loss

    model, data = bn_net(), dict_batches(batches())
    d = random_directions(model, 1, seed=0)
    loss = batch_loss(lambda m, b: CE(m(b["x"]), b["y"]))
    with pytest.raises(ValueError, match="metrics take the same form"):
        evaluate_grid(model, loss, data, d, "0:1:2", metrics={"m": CE})
    with pytest.raises(ValueError, match="accuracy=batch_loss"):
        evaluate_grid(model, loss, data, d, "0:1:2", accuracy=True)
    res = evaluate_grid(model, loss, data, d, "0:1:2", accuracy=False)  # no accuracy: fine
    assert list(res.values) == ["loss"] and res.computed.all()


def test_argument_checks(monkeypatch):
    import landscape.slices.engine as engine

    model, data = bn_net(), batches()
    d1 = random_directions(model, 1, seed=0)
    own = dict(model.named_parameters())

    def grid(*args, **kwargs):
        return evaluate_grid(model, CE, data, *args, **kwargs)

    with pytest.raises(ValueError, match="x coordinates"):
        grid(d1, [])
    with pytest.raises(ValueError, match="y coordinates"):
        grid(d1 * 2, "0:1:2", [np.nan])
    bad = {**own, "4.weight": torch.zeros(4, 4, dtype=torch.float64)}
    with pytest.raises(ValueError, match=r"origin entry '4\.weight'"):
        grid(d1, "0:1:2", origin=bad)
    with pytest.raises(ValueError, match="origin entry 'nope'"):
        grid(d1, "0:1:2", origin={**own, "nope": own["4.bias"]})
    with pytest.raises(ValueError, match=r"direction entry '4\.bias'"):
        grid([{"4.bias": torch.zeros(5, dtype=torch.float64)}], "0:1:2")
    with pytest.raises(ValueError, match="direction entry 'nope'"):
        grid([{"nope": torch.zeros(4, dtype=torch.float64)}], "0:1:2")
    for name, t in [
        ("nope", torch.zeros(3)),
        ("1.num_batches_tracked", torch.zeros((), dtype=torch.long)),  # not floating
        ("1.running_mean", torch.zeros(4, dtype=torch.float64)),  # shape
    ]:
        with pytest.raises(ValueError, match=f"buffer direction '{name}'"):
            grid(d1, "0:1:2", buffer_directions=[{name: t}])
    with pytest.raises(ValueError, match="one buffer direction per direction"):
        grid(d1, "0:1:2", buffer_directions=[{}, {}])
    with pytest.raises(ValueError, match=r"point indices must lie in \[0, 2\)"):
        grid(d1, "0:1:2", points=[2])
    with pytest.raises(ValueError, match="recalibrate_batches must be >= 1"):
        grid(d1, "0:1:2", bn_mode="recalibrate", recalibrate_batches=0)
    assert grid(d1, "0:1:2", recalibrate_batches=0).computed.all()  # not read under "eval"
    for name in ("loss", "accuracy"):
        with pytest.raises(ValueError, match="may not be named"):
            grid(d1, "0:1:2", metrics={name: CE})
    regression = [(x, torch.randn(len(x), 4, dtype=torch.float64)) for x, _ in data]
    mse = torch.nn.functional.mse_loss
    with pytest.raises(ValueError, match="accuracy needs 1-D integer class labels"):
        evaluate_grid(model, mse, regression, d1, "0:1:2", accuracy=True)
    assert list(evaluate_grid(model, mse, regression, d1, "0:1:2", accuracy=False).values) == [
        "loss"
    ]
    labelled = evaluate_grid(model, CE, data, d1, "0:1:2", accuracy=True)
    assert list(labelled.values) == ["loss", "accuracy"]
    monkeypatch.setattr(engine, "MAX_POINTS", 8)  # a grid of exactly MAX_POINTS is allowed
    d2 = random_directions(model, 2, seed=0)
    assert grid(d2, "0:1:4", "0:1:2", points=[]).shape == (2, 4)
    with pytest.raises(ValueError, match="a 4×3 grid has 12 points, at most 8"):
        grid(d2, "0:1:4", "0:1:3", points=[])


def test_metadata_of_a_slice():
    from landscape.data import Batches

    model = bn_net()
    source = {"dataset": "toy", "split": "train", "examples": 16, "subset_seed": 0}
    data = Batches(batches(), source)
    d = random_directions(model, 2, seed=0)
    res = evaluate_grid(model, CE, data, d, "-1:1:3", "0:1:2", points=[1],
                        metrics={"m": CE})  # fmt: skip
    assert res.meta == {
        "kind": "grid",
        "bn_mode": "eval",
        "recalibrate_batches": None,
        "precision": "native",
        "metrics": ["loss", "accuracy", "m"],
        "eval_examples": 16,
        "eval_batches": 3,
        "dtype": "torch.float64",
        "moves_buffers": False,
        "data": source,
    }
    assert res.computed.dtype == bool and res.computed.sum() == 1
    assert res.buffer_directions is None
    assert "data" not in evaluate_grid(model, CE, batches(), d, "0:1:2", "0:1:2").meta

    class Fixed(nn.Module):  # no parameter at all: a constant loss, no dtype to record
        def forward(self, x):
            return x.sum(dim=(1, 2, 3))[:, None] * torch.ones(4, dtype=x.dtype)

    const = evaluate_grid(Fixed(), CE, batches(), [{}], "-1:1:2")
    assert const.meta["dtype"] is None and const.values["loss"][0] == const.values["loss"][1]


def test_buffer_directions_move_the_running_statistics():
    model, data = stale_bn_net(), batches()
    d = random_directions(model, 2, seed=1)
    g = torch.Generator().manual_seed(3)
    bdirs = [
        {"1.running_mean": torch.randn(3, generator=g, dtype=torch.float64)},
        {"1.running_var": torch.rand(3, generator=g, dtype=torch.float64)},
    ]
    before = state(model)
    xs, ys = np.array([-1.0, 0.5]), np.array([0.0, 2.0])
    res = evaluate_grid(model, CE, data, d, xs, ys, buffer_directions=bdirs)
    assert res.meta["moves_buffers"] is True
    assert res.buffer_directions is not None and len(res.buffer_directions) == 2
    assert torch.equal(res.buffer_directions[1]["1.running_var"], bdirs[1]["1.running_var"])
    want = reference(model, data, d, xs, ys, buffer_directions=bdirs)[0]
    np.testing.assert_allclose(res.values["loss"], want, rtol=0, atol=1e-10)
    assert_same_state(model, before)


def test_a_direction_on_a_subset_of_the_parameters():
    model, data = bn_net(), batches()
    g = torch.Generator().manual_seed(5)
    d = [{"4.weight": torch.randn(4, 48, generator=g, dtype=torch.float64)}]  # one tensor
    xs = np.array([-1.0, 0.0, 2.0])
    res = evaluate_grid(model, CE, data, d, xs)
    full = [{n: d[0].get(n, torch.zeros_like(p)) for n, p in model.named_parameters()}]
    np.testing.assert_allclose(res.values["loss"], reference(model, data, full, xs)[0],
                               rtol=1e-10)  # fmt: skip


def toy_factory():
    """Float32 batches for a float64 model: ``data="module:factory"`` puts them in its dtype."""
    return [(x.float(), y) for x, y in batches()]


def test_data_named_by_an_import_path_is_loaded_once_in_the_model_dtype():
    model = bn_net()
    d = random_directions(model, 1, seed=0)
    res = evaluate_grid(model, CE, "tests.slices.test_engine:toy_factory", d, "-1:1:3")
    want = evaluate_grid(model, CE, [(x.double(), y) for x, y in toy_factory()], d, "-1:1:3")
    np.testing.assert_array_equal(res.values["loss"], want.values["loss"])
    assert res.meta["data"]["dataset"] == "tests.slices.test_engine:toy_factory"
    assert res.meta["data"]["examples"] == 16


def test_float32_batch_means_are_averaged_in_float64():
    """The example-weighted mean of float32 batch losses is taken in float64, not float32."""
    g = torch.Generator().manual_seed(0)
    sizes = [3, 7, 5, 11, 2, 9]
    data = [(torch.zeros(n, 1), torch.full((n,), float(v))) for n, v in
            zip(sizes, torch.rand(len(sizes), generator=g) * 1e3 + 1)]  # fmt: skip
    model = nn.Linear(1, 1)  # float32, its output ignored

    def loss(out, t):
        return t[0] + 0 * out.sum()  # the batch's own float32 value

    res = evaluate_grid(model, loss, data, [{"bias": torch.ones(1)}], "0:0:1", accuracy=False)
    want = sum(float(t[0]) * len(t) for _, t in data) / sum(sizes)  # float64 from float32 values
    assert abs(res.values["loss"][0] - want) <= 1e-13 * want


def test_batch_statistics_evaluate_the_model_without_a_warning(caplog):
    """bn_mode="train" does not fold or block (BN on batch statistics): no failed check."""
    from tests.slices.test_fold import trained_like

    torch.manual_seed(0)
    model = trained_like(
        nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 4)
        )
    )
    data = batches(torch.float32)
    d = random_directions(model, 1, seed=0)
    with caplog.at_level("WARNING", logger="landscape.slices.fold"):
        res = evaluate_grid(model, CE, data, d, [1.0, 0.0], bn_mode="train")
    assert not caplog.records
    ref = copy.deepcopy(model).train()
    with torch.no_grad():
        want = sum(float(CE(ref(x), y)) * len(y) for x, y in data) / 16
    assert abs(res.values["loss"][1] - want) < 1e-5 * want


def test_bf16_runs_the_conv_trunk_in_bf16():
    """A float32 conv -> ReLU model: under precision="bf16" its values move by bf16 rounding
    (the blocked trunk switched to bf16), not only by float32 rounding."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten())
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(6, 1, 8, 8, generator=g), torch.randn(6, 128, generator=g))]
    mse = torch.nn.functional.mse_loss  # autocast runs it in float32
    d = random_directions(model, 1, seed=0)
    native = evaluate_grid(model, mse, data, d, "-1:1:3").values["loss"]
    bf16 = evaluate_grid(model, mse, data, d, "-1:1:3", precision="bf16").values["loss"]
    assert np.all(np.abs(bf16 - native) > 1e-5 * native)  # float32 rounding is ~1e-7
    np.testing.assert_allclose(bf16, native, rtol=3e-2)


def test_4d_weights_are_channels_last_during_the_slice_only(monkeypatch):
    """On the CPU the 4-D weights (the model's and the folded copies) are held in
    channels_last during the slice; the caller's tensors come back as they were."""
    import landscape.slices.fold as fold

    torch.manual_seed(0)  # two input channels: a (3, 1, 3, 3) weight is both layouts at once
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(48, 4))
    model = model.double()
    data = [(torch.cat([x, x.flip(0)], 1), y) for x, y in batches()]
    d = random_directions(model, 1, seed=0)
    conv, cl = model[0].weight, torch.channels_last
    layout, seen, built = (conv.data_ptr(), conv.stride()), [], []
    real_build = fold.Vehicle.build

    def spy(*args, **kwargs):
        built.append(real_build(*args, **kwargs))
        return built[-1]

    def look(k, v):
        seen.append(model[0].weight.is_contiguous(memory_format=cl))

    monkeypatch.setattr(fold.Vehicle, "build", spy)
    evaluate_grid(model, CE, data, d, "-1:1:2", on_point=look)
    assert seen == [True, True] and (conv.data_ptr(), conv.stride()) == layout
    assert built[0] is not None and built[0].folds[0][2].weight.is_contiguous(memory_format=cl)
    seen.clear()
    monkeypatch.setattr(fold, "CHANNELS_LAST", False)
    evaluate_grid(model, CE, data, d, "-1:1:2", on_point=look)
    assert seen == [False, False]
    assert not built[1].folds[0][2].weight.is_contiguous(memory_format=cl)
