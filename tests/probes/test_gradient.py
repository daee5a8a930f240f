"""The gradient probe: closed forms, slow references, exact state preservation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from landscape.probes import StepSizes, gradient_probe, ics
from tests.cases import (
    ETAS,
    F64,
    Quadratic,
    assert_same_state,
    bn_net,
    close,
    full_state,
    identity_loss,
    image_batch,
    prepared_bn_net,
    regression_batch,
    spd,
    sq_loss,
    three_layer,
)


def count_cuda_syncs(fn) -> int:
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def test_quadratic_closed_form():
    a, _, _ = spd(6, seed=0)
    theta = torch.randn(6, generator=torch.Generator().manual_seed(3), dtype=F64)
    r = gradient_probe(Quadratic(theta), identity_loss, (a, None), ETAS)

    A, th, etas = a.numpy(), theta.numpy(), np.array(ETAS)
    g = A @ th
    ag = A @ g
    base = 0.5 * th @ A @ th
    close(r.base_loss, base)
    close(r.grad_norm, np.linalg.norm(g))
    close(r.loss, base - etas * (g @ g) + 0.5 * etas**2 * (g @ ag))
    close(r.grad_distance, etas * np.linalg.norm(ag))
    close(r.distance, etas * np.linalg.norm(g))
    close(r.ratio, np.full(len(etas), np.linalg.norm(ag) / np.linalg.norm(g)))
    close(r.beta, np.linalg.norm(ag) / np.linalg.norm(g))
    moved = g[None, :] - etas[:, None] * ag[None, :]
    cos = moved @ g / (np.linalg.norm(moved, axis=1) * np.linalg.norm(g))
    close(r.grad_cosine, cos)
    assert r.direction == "gradient" and r.bn_mode == "train"
    for arr in (r.step_sizes, r.loss, r.grad_distance, r.ratio, r.distance, r.grad_cosine):
        assert arr.dtype == np.float64 and arr.shape == (len(ETAS),)


def test_quadratic_top_eigenvector_gives_lambda_max():
    a, eigs, q = spd(6, seed=1)
    r = gradient_probe(Quadratic(3.0 * q[:, -1]), identity_loss, (a, None), ETAS)
    close(r.beta, eigs[-1].item())


def test_float32_agrees_with_float64_closed_form():
    a, _, _ = spd(6, seed=0)
    theta = torch.randn(6, generator=torch.Generator().manual_seed(3), dtype=F64)
    r64 = gradient_probe(Quadratic(theta), identity_loss, (a, None), ETAS)
    r32 = gradient_probe(Quadratic(theta.float()), identity_loss, (a.float(), None), ETAS)
    assert r32.loss.dtype == np.float64
    close(r32.loss, r64.loss, rtol=1e-5)
    close(r32.ratio, r64.ratio, rtol=1e-5)


def test_zero_gradient_gives_nan_beta():
    a, _, _ = spd(4, seed=0)
    r = gradient_probe(Quadratic(torch.zeros(4, dtype=F64)), identity_loss, (a, None), ETAS)
    assert r.grad_norm == 0.0 and np.all(r.loss == 0.0)
    assert np.all(np.isnan(r.ratio)) and math.isnan(r.beta)


def test_least_squares_against_hand_gradients():
    x, y = regression_batch(n=20, d_in=5, d_out=3)
    torch.manual_seed(4)
    model = nn.Linear(5, 3).to(F64)
    r = gradient_probe(model, sq_loss, (x, y), ETAS)

    X, Y = x.numpy(), y.numpy()
    W, b = model.weight.detach().numpy().copy(), model.bias.detach().numpy().copy()
    n = X.shape[0]

    def loss_grad(W, b):
        res = X @ W.T + b - Y  # (N, 3)
        return (res**2).sum() / n, 2 / n * res.T @ X, 2 / n * res.sum(axis=0)

    base, gW, gb = loss_grad(W, b)
    g = np.concatenate([gW.ravel(), gb])
    close(r.base_loss, base)
    close(r.grad_norm, np.linalg.norm(g))
    for k, eta in enumerate(ETAS):
        loss, gW2, gb2 = loss_grad(W - eta * gW, b - eta * gb)
        g2 = np.concatenate([gW2.ravel(), gb2])
        close(r.loss[k], loss)
        close(r.grad_distance[k], np.linalg.norm(g2 - g))
        close(r.ratio[k], np.linalg.norm(g2 - g) / (eta * np.linalg.norm(g)))
        close(r.grad_cosine[k], g2 @ g / (np.linalg.norm(g2) * np.linalg.norm(g)))


def test_step_sizes_grid():
    close(StepSizes.vgg(0.1).values(), np.linspace(0.05, 0.4, 8))
    dln = StepSizes.dln(1e-6, count=5)
    close(dln.values(), np.geomspace(1e-8, 3e-5, 5))
    assert dln.spacing == "log" and StepSizes(**dln.to_dict()) == dln
    a, _, _ = spd(4, seed=0)
    model = Quadratic(torch.ones(4, dtype=F64))
    r = gradient_probe(model, identity_loss, (a, None), StepSizes.vgg(0.1, count=3))
    close(r.step_sizes, [0.05, 0.225, 0.4])


def test_stochastic_layers_see_the_same_noise_at_every_evaluation():
    """With dropout active, a tiny step changes the gradient only a little (common noise)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.5), nn.Linear(16, 3)).to(F64)
    r = gradient_probe(model, sq_loss, regression_batch(), [1e-8], seed=3)
    assert r.grad_distance[0] < 1e-6 * r.grad_norm
    r2 = gradient_probe(model, sq_loss, regression_batch(), [1e-8], seed=3)
    np.testing.assert_array_equal(r2.to_dict()["loss"], r.to_dict()["loss"])


def test_probe_works_inside_no_grad():
    model, batch = three_layer(), regression_batch()
    expected = gradient_probe(model, sq_loss, batch, ETAS)
    with torch.no_grad():
        r = gradient_probe(model, sq_loss, batch, ETAS)
        s = ics(model, sq_loss, batch, lr=0.1)
    np.testing.assert_array_equal(r.grad_distance, expected.grad_distance)
    assert np.all(np.isfinite(s.l2))
    outside = ics(model, sq_loss, batch, lr=0.1)
    for key in ("l2", "cos", "grad_norm"):
        np.testing.assert_array_equal(getattr(s, key), getattr(outside, key))


def test_random_direction_is_reproducible_and_has_gradient_norm():
    x, y = regression_batch()
    model = three_layer()
    r1 = gradient_probe(model, sq_loss, (x, y), ETAS, direction="random", seed=7)
    r2 = gradient_probe(model, sq_loss, (x, y), ETAS, direction="random", seed=7)
    r3 = gradient_probe(model, sq_loss, (x, y), ETAS, direction="random", seed=8)
    assert r1.direction == "random"
    for key in ("loss", "grad_distance", "ratio", "grad_cosine"):
        np.testing.assert_array_equal(getattr(r1, key), getattr(r2, key))
    assert not np.array_equal(r1.loss, r3.loss)
    close(r1.direction_norm, r1.grad_norm, rtol=1e-12)


def test_custom_direction_closed_form():
    a, _, _ = spd(5, seed=2)
    theta = torch.randn(5, generator=torch.Generator().manual_seed(5), dtype=F64)
    d = torch.randn(5, generator=torch.Generator().manual_seed(6), dtype=F64)
    r = gradient_probe(Quadratic(theta), identity_loss, (a, None), ETAS, direction={"theta": d})
    A, th, dn, etas = a.numpy(), theta.numpy(), d.numpy(), np.array(ETAS)
    g = A @ th
    close(r.loss, 0.5 * th @ A @ th - etas * (g @ dn) + 0.5 * etas**2 * (dn @ A @ dn))
    close(r.grad_distance, etas * np.linalg.norm(A @ dn))
    close(r.distance, etas * np.linalg.norm(dn))
    assert r.direction == "custom"


def test_custom_direction_cosine_compares_the_two_gradients():
    """cos(grad L(theta - eta d), g) involves ||g||, not ||d||: here ||d|| = 10 ||g||."""
    a, _, _ = spd(5, seed=2)
    theta = torch.randn(5, generator=torch.Generator().manual_seed(5), dtype=F64)
    A, th, etas = a.numpy(), theta.numpy(), np.array(ETAS)
    g = A @ th
    dn = np.random.default_rng(6).standard_normal(5)
    dn *= 10 * np.linalg.norm(g) / np.linalg.norm(dn)
    d = {"theta": torch.from_numpy(dn)}
    r = gradient_probe(Quadratic(theta), identity_loss, (a, None), ETAS, direction=d)
    moved = g[None, :] - etas[:, None] * (A @ dn)[None, :]  # grad L(theta - eta d)
    cos = moved @ g / (np.linalg.norm(moved, axis=1) * np.linalg.norm(g))
    close(r.grad_cosine, cos)
    close(r.direction_norm, 10 * r.grad_norm)
    close(r.ratio, np.linalg.norm(A @ dn) / np.linalg.norm(dn) * np.ones(len(etas)))


class Quartic(nn.Module):
    """L(theta) = sum(theta^4) / 4, so grad L = theta^3: not quadratic, the ratio varies."""

    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, _inputs) -> torch.Tensor:
        return (self.theta**4).sum() / 4


def test_beta_is_the_largest_finite_ratio_of_a_non_quadratic_loss():
    """Santurkar's beta is max_eta ||grad L(theta - eta g) - g|| / ||eta g|| (science.md 1.1),
    the largest of the finite ratios; a step whose gradient overflows is recorded as such."""
    theta = np.array([0.3, -1.2, 0.8, 1.5])
    etas = [0.01, 0.05, 0.1, 0.2, 0.3, 1e200]  # the last one overflows: ratio inf
    r = gradient_probe(Quartic(torch.from_numpy(theta)), identity_loss, (None, None), etas)
    g = theta**3
    ratios = [np.linalg.norm((theta - e * g) ** 3 - g) / (e * np.linalg.norm(g)) for e in etas[:-1]]
    close(r.ratio[:-1], ratios)
    assert not np.isfinite(r.ratio[-1])
    close(r.beta, max(ratios))
    assert abs(max(ratios) - np.mean(ratios)) > 0.1 * max(ratios)  # max and mean differ here


def test_custom_gradient_dict_matches_gradient_direction():
    x, y = regression_batch()
    model = three_layer()
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad(sq_loss(model(x), y), params)
    d = {n: gr for (n, _), gr in zip(model.named_parameters(), grads)}
    r_dict = gradient_probe(model, sq_loss, (x, y), ETAS, direction=d)
    r_grad = gradient_probe(model, sq_loss, (x, y), ETAS)
    close(r_dict.loss, r_grad.loss, rtol=1e-12)
    close(r_dict.grad_distance, r_grad.grad_distance, rtol=1e-12)


@pytest.mark.parametrize(
    ("direction", "match"),
    [
        ({}, "direction keys do not match"),
        ({"theta": torch.zeros(4, dtype=F64), "extra": torch.zeros(1)}, "extra"),
        ({"theta": torch.zeros(3, dtype=F64)}, "shape"),
        ("gradiant", "unknown direction"),
        (3, "direction must be"),
    ],
)
def test_bad_direction(direction, match):
    a, _, _ = spd(4, seed=0)
    model = Quadratic(torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match=match):
        gradient_probe(model, identity_loss, (a, None), ETAS, direction=direction)
    assert torch.equal(model.theta, torch.ones(4, dtype=F64))


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
@pytest.mark.parametrize("direction", ["gradient", "random"])
def test_probe_leaves_model_untouched(bn_mode, direction):
    model, batch = prepared_bn_net()
    assert model[1].num_batches_tracked.item() > 0
    before = full_state(model)
    r = gradient_probe(
        model, nn.functional.cross_entropy, batch, ETAS, direction=direction, bn_mode=bn_mode
    )
    assert_same_state(before, full_state(model))
    assert np.all(np.isfinite(r.loss)) and np.isfinite(r.beta)


def test_train_and_eval_modes_differ():
    model, batch = prepared_bn_net()
    r_train = gradient_probe(model, nn.functional.cross_entropy, batch, ETAS, bn_mode="train")
    r_eval = gradient_probe(model, nn.functional.cross_entropy, batch, ETAS, bn_mode="eval")
    assert r_train.bn_mode == "train" and r_eval.bn_mode == "eval"
    assert r_train.base_loss != r_eval.base_loss
    model.eval()
    expected = nn.functional.cross_entropy(model(batch[0]), batch[1]).item()
    close(r_eval.base_loss, expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step_sizes": []}, "no step sizes"),
        ({"step_sizes": [0.1, -0.2]}, "positive.*-0.2"),
        ({"step_sizes": [0.1, 0.0]}, "positive.*0.0"),
        ({"step_sizes": [float("nan")]}, "nan"),
        ({"batch": (torch.randn(10, 7, dtype=F64), torch.randn(10, 3, dtype=F64))}, "batch does"),
        ({"loss_fn": lambda out, y: (out - y) ** 2}, "scalar"),
        ({"direction": "sideways"}, "unknown direction"),
        ({"bn_mode": "training"}, "unknown bn_mode"),
        ({"batch": (torch.randn(3, 4, dtype=F64),)}, "pair"),
        ({"batch": (torch.randn(16, 4, dtype=F64), torch.randn(16, 5, dtype=F64))}, "targets"),
    ],
)
def test_bad_inputs(kwargs, match):
    model = three_layer()
    before = full_state(model)
    args = {"loss_fn": sq_loss, "batch": regression_batch(), "step_sizes": ETAS} | kwargs
    step_sizes = args.pop("step_sizes")
    with pytest.raises(ValueError, match=match):
        gradient_probe(model, step_sizes=step_sizes, **args)
    assert_same_state(before, full_state(model))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, "lr must be positive"),
        ({"lr": 0.1, "low": 2.0, "high": 1.0}, "larger than"),
        ({"lr": 0.1, "count": 0}, "count"),
        ({"lr": 0.1, "spacing": "cubic"}, "unknown spacing"),
    ],
)
def test_bad_step_size_grid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StepSizes(**kwargs)


def test_a_step_beyond_the_dtype_range_is_recorded_not_raised():
    """eta = 1e39 has no float32 value: that point's loss is non-finite, the others stand."""
    model, batch = bn_net(), image_batch()
    r = gradient_probe(model, F.cross_entropy, batch, [0.1, 1e39])
    assert np.isfinite(r.loss[0]) and not np.isfinite(r.loss[1])
    assert np.isfinite(r.beta) and r.beta == pytest.approx(r.ratio[0])


@pytest.mark.gpu
def test_probe_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model, batch = prepared_bn_net("cuda")
    before = full_state(model)
    r = gradient_probe(model, nn.functional.cross_entropy, batch, ETAS, direction="random")
    result = ics(model, nn.functional.cross_entropy, batch, lr=0.1)
    assert_same_state(before, full_state(model))
    assert np.all(np.isfinite(r.loss)) and np.all(np.isfinite(result.l2))
    a, _, q = spd(6, seed=1)
    cpu = gradient_probe(Quadratic(q[:, 0]), identity_loss, (a, None), ETAS)
    gpu = gradient_probe(Quadratic(q[:, 0].cuda()), identity_loss, (a.cuda(), None), ETAS)
    close(gpu.loss, cpu.loss, rtol=1e-9)


@pytest.mark.gpu
def test_probe_host_syncs_do_not_grow_with_step_count():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model, batch = prepared_bn_net("cuda")
    loss_fn = nn.functional.cross_entropy
    few = count_cuda_syncs(lambda: gradient_probe(model, loss_fn, batch, ETAS[:2]))
    many = count_cuda_syncs(lambda: gradient_probe(model, loss_fn, batch, ETAS * 4))
    assert many == few


def test_given_base_gradient_equals_recomputed_and_saves_a_pass():
    """base=(loss, grads) from the caller's own pass gives the same probe with k passes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Tanh(), nn.Linear(7, 3)).double()
    x, y = torch.randn(16, 5, dtype=torch.float64), torch.randint(0, 3, (16,))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    base = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    full = gradient_probe(model, F.cross_entropy, (x, y), [0.1, 0.3])
    n_full = len(calls)
    quick = gradient_probe(model, F.cross_entropy, (x, y), [0.1, 0.3], base=base)
    assert n_full == 3 and len(calls) - n_full == 2
    for field in ("loss", "grad_distance", "ratio", "grad_cosine"):
        np.testing.assert_allclose(getattr(quick, field), getattr(full, field), rtol=1e-12)
    assert quick.beta == pytest.approx(full.beta, rel=1e-12)
    with pytest.raises(ValueError, match="not trainable parameters"):
        gradient_probe(model, F.cross_entropy, (x, y), [0.1], base=(loss, {"nope": x}))


def test_step_sizes_for_model_is_the_papers_grid_with_overrides():
    assert StepSizes.for_model("vgg_small", 0.1) == StepSizes.vgg(0.1)
    assert StepSizes.for_model("dln", 1e-6, 5) == StepSizes.dln(1e-6, 5)
    mine = StepSizes.for_model("dln", 1e-6, low=1.0, spacing="linear")
    assert (mine.low, mine.high, mine.spacing) == (1.0, 30.0, "linear")
    with pytest.raises(ValueError, match="larger than"):
        StepSizes.for_model("mlp", 0.1, low=5.0)


def test_a_grid_of_one_step_size_and_its_bad_counts():
    """low == high with count 1 is one step size; a count that is not an int >= 1 (a bool,
    a float) is refused."""
    np.testing.assert_array_equal(StepSizes(0.1, 2.0, 2.0, count=1).values(), [0.2])
    np.testing.assert_array_equal(StepSizes(0.1, count=1).values(), [0.05])
    for count in (True, 2.0, 0):
        with pytest.raises(ValueError, match="count must be an integer >= 1"):
            StepSizes(0.1, count=count)


def test_step_sizes_for_model_keeps_the_count_and_each_override():
    grid = StepSizes.for_model("vgg_small", 0.1, count=3, high=2.0)
    assert (grid.count, grid.low, grid.high, grid.spacing) == (3, 0.5, 2.0, "linear")
    close(grid.values(), [0.05, 0.125, 0.2])


def test_integer_step_sizes_come_back_as_float64():
    a, _, _ = spd(4, seed=0)
    r = gradient_probe(Quadratic(torch.ones(4, dtype=F64)), identity_loss, (a, None), [1, 2])
    assert r.step_sizes.dtype == np.float64 and r.step_sizes.tolist() == [1.0, 2.0]


def test_the_default_seed_is_zero():
    model, batch = three_layer(), regression_batch()
    default = gradient_probe(model, sq_loss, batch, ETAS, direction="random")
    np.testing.assert_array_equal(
        default.loss, gradient_probe(model, sq_loss, batch, ETAS, direction="random", seed=0).loss
    )
    assert default.seed == 0
    other = gradient_probe(model, sq_loss, batch, ETAS, direction="random", seed=1)
    assert not np.array_equal(default.loss, other.loss)


def test_a_random_direction_is_drawn_from_its_seed_alone():
    """With base given (no pass at theta first) the draw is the same as without: from the
    probe's own generator, not from whatever state the global one is in."""
    x, y = regression_batch()
    model = three_layer()
    loss = sq_loss(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    base = (loss.detach(), {n: g for (n, _), g in zip(model.named_parameters(), grads)})
    torch.manual_seed(123)
    given = gradient_probe(model, sq_loss, (x, y), ETAS, direction="random", seed=7, base=base)
    fresh = gradient_probe(model, sq_loss, (x, y), ETAS, direction="random", seed=7)
    for key in ("loss", "grad_distance", "distance"):
        np.testing.assert_allclose(getattr(given, key), getattr(fresh, key), rtol=1e-12)


def test_a_random_direction_of_a_one_tensor_model():
    """d ~ N(0, I) rescaled to |g|: on L = theta^T A theta / 2 the ratio is |A d| / |d|,
    the same at every step size and between the extreme eigenvalues of A."""
    a, eigs, _ = spd(6, seed=1)
    theta = torch.randn(6, generator=torch.Generator().manual_seed(3), dtype=F64)
    r = gradient_probe(Quadratic(theta), identity_loss, (a, None), ETAS, direction="random")
    close(r.direction_norm, r.grad_norm, rtol=1e-12)
    close(r.ratio, np.full(len(ETAS), r.ratio[0]), rtol=1e-10)
    assert eigs[0] <= r.ratio[0] <= eigs[-1]


def test_a_bad_base_gradient_is_named_as_such():
    model, batch = three_layer(), regression_batch()
    base = (torch.tensor(1.0, dtype=F64), {"nope": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"^base gradient has names that are not trainable"):
        gradient_probe(model, sq_loss, batch, ETAS, base=base)


def test_a_float64_loss_of_a_float32_model_is_reported_in_the_parameters_dtype():
    """Computed in the parameters' dtype, returned as float64: a loss_fn that works in
    float64 on a float32 model gives losses rounded to float32, like every other column."""
    model, batch = three_layer(torch.float32), regression_batch(dtype=torch.float32)
    r = gradient_probe(model, lambda out, y: sq_loss(out.double(), y.double()), batch, ETAS)
    np.testing.assert_array_equal(r.loss, r.loss.astype(np.float32))
    assert r.base_loss == float(np.float32(r.base_loss))
