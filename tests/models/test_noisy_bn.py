"""Noisy BatchNorm (Santurkar et al. Algorithm 1): the noise's distribution, eval mode is BN,
the stream is reproducible, resumable and restored by a snapshot, the global RNG untouched.

Tolerances on sample moments are 5 standard errors of the estimate for the sample size
(a fixed seed: the test is deterministic; 5 sigma leaves room for any seed)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn

from landscape._params import preserved
from landscape.models import ModelSpec, add_bn_noise, santurkar_noise
from landscape.models.noisy_bn import (
    MEAN_HALF_WIDTH,
    MEAN_JITTER,
    SCALE_HIGH,
    SCALE_LOW,
    SCALE_STD,
    NoisyBatchNorm1d,
    NoisyBatchNorm2d,
    stream_seed,
)
from tests.cases import SPLITMIX64_PUBLISHED, splitmix64_stream

SIGMAS = 5.0


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_mean(x: torch.Tensor, mean: float, std: float) -> None:
    """The sample mean of ``x`` is ``mean`` within 5 standard errors (``std`` per value)."""
    x = x.double().flatten()
    assert abs(float(x.mean()) - mean) < SIGMAS * std / math.sqrt(x.numel()), float(x.mean())


def assert_variance(x: torch.Tensor, var: float, fourth: float) -> None:
    """The sample variance of ``x`` (mean known: 0) is ``var`` within 5 standard errors;
    ``fourth`` is E[x^4], so Var(x^2) = fourth - var^2."""
    x = x.double().flatten()
    se = math.sqrt((fourth - var**2) / x.numel())
    assert abs(float((x**2).mean()) - var) < SIGMAS * se, float((x**2).mean())


def test_per_example_noise_follows_algorithm_1():
    """Given a draw's mu_c and sigma_c: m - mu_c ~ U(-0.1, 0.1), s - sigma_c ~ N(0, 0.1), per
    (n, c, h, w), independent of the position."""
    shape = (256, 8, 8, 8)  # 16384 values per channel, 131072 in all
    m, s, mu, sigma = santurkar_noise(shape, generator(0), dtype=torch.float64)
    assert m.shape == s.shape == shape and mu.shape == sigma.shape == (8,)
    dm = m - mu.view(1, -1, 1, 1)
    ds = s - sigma.view(1, -1, 1, 1)
    h = MEAN_JITTER
    assert float(dm.abs().max()) <= h
    assert_mean(dm, 0.0, h / math.sqrt(3))
    assert_variance(dm, h**2 / 3, h**4 / 5)  # U(-h, h): E x^2 = h^2/3, E x^4 = h^4/5
    assert_mean(ds, 0.0, SCALE_STD)
    assert_variance(ds, SCALE_STD**2, 3 * SCALE_STD**4)  # normal: E x^4 = 3 sd^4
    for c in range(8):  # each channel's own mu_c and sigma_c, over examples and positions
        assert_mean(m[:, c], float(mu[c]), h / math.sqrt(3))
        assert_mean(s[:, c], float(sigma[c]), SCALE_STD)
    # the shape of the distributions, not only their moments
    assert stats.kstest((dm / h).flatten().numpy(), stats.uniform(-1, 2).cdf).pvalue > 1e-3
    assert stats.kstest((ds / SCALE_STD).flatten().numpy(), "norm").pvalue > 1e-3
    # noise per position: it varies over h and w within one example and channel
    assert float(m[0, 0].std()) > 0.01 and float(s[0, 0].std()) > 0.01


def test_per_step_draws_follow_algorithm_1():
    """mu_c ~ U(-0.5, 0.5) and sigma_c ~ U(1, 1.25), new at every draw (step)."""
    g = generator(1)
    draws = [santurkar_noise((2, 16), g, dtype=torch.float64) for _ in range(2000)]
    mu = torch.stack([d[2] for d in draws])  # (2000 steps, 16 units)
    sigma = torch.stack([d[3] for d in draws])
    a, b = SCALE_LOW, SCALE_HIGH
    assert float(mu.abs().max()) <= MEAN_HALF_WIDTH
    assert a <= float(sigma.min()) and float(sigma.max()) <= b
    w = 2 * MEAN_HALF_WIDTH
    assert_mean(mu, 0.0, w / math.sqrt(12))
    assert_variance(mu, w**2 / 12, w**4 / 80)
    assert_mean(sigma, (a + b) / 2, (b - a) / math.sqrt(12))
    assert stats.kstest(mu.flatten().numpy(), stats.uniform(-0.5, 1.0).cdf).pvalue > 1e-3
    assert stats.kstest(sigma.flatten().numpy(), stats.uniform(a, b - a).cdf).pvalue > 1e-3
    assert not torch.equal(mu[0], mu[1])  # a new draw every step


def bn_pair(cls: type[nn.Module], plain: type[nn.Module], c: int = 3, seed: int = 7):
    noisy, bn = cls(c, seed=seed), plain(c)
    with torch.no_grad():  # not the defaults, so that the affine part is checked too
        for m in (noisy, bn):
            m.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
            m.bias.copy_(torch.tensor([0.1, -0.3, 0.0]))
    return noisy, bn


@pytest.mark.parametrize(
    "cls, plain, shape",
    [(NoisyBatchNorm2d, nn.BatchNorm2d, (6, 3, 4, 5)), (NoisyBatchNorm1d, nn.BatchNorm1d, (9, 3))],
)
def test_training_mode_adds_the_drawn_noise_to_the_bn_output(cls, plain, shape):
    noisy, bn = bn_pair(cls, plain)
    x = torch.randn(shape, generator=generator(2))
    out = noisy(x)
    g = torch.Generator().manual_seed(stream_seed(7, 0))  # the layer's first draw
    m, s, _, _ = santurkar_noise(shape, g)
    torch.testing.assert_close(out, s * bn(x) + m, rtol=0, atol=1e-6)
    assert int(noisy.noise_draws) == 1
    torch.testing.assert_close(noisy.running_mean, bn.running_mean, rtol=0, atol=0)
    assert not torch.equal(noisy(x), out)  # the next step draws anew


@pytest.mark.parametrize(
    "cls, plain, shape",
    [(NoisyBatchNorm2d, nn.BatchNorm2d, (6, 3, 4, 5)), (NoisyBatchNorm1d, nn.BatchNorm1d, (9, 3))],
)
def test_eval_mode_is_exactly_bn_and_draws_nothing(cls, plain, shape):
    noisy, bn = bn_pair(cls, plain)
    x = torch.randn(shape, generator=generator(3))
    noisy(x), bn(x)  # one training step each: the same running statistics
    noisy.eval(), bn.eval()
    assert torch.equal(noisy(x), bn(x))
    assert int(noisy.noise_draws) == 1


def noisy_vgg(seed: int = 0) -> nn.Module:
    return ModelSpec("vgg_small", bn=True, bn_noise="santurkar").build(seed=seed).train()


def test_the_same_seed_gives_the_same_noise_and_another_seed_other_noise():
    x = torch.randn(16, 1, 8, 8, generator=generator(4))
    a, b, c = noisy_vgg(0), noisy_vgg(0), noisy_vgg(1)
    # the noise does not change the weights: seed 1's noisy network has seed 1's BN weights
    sc, sbn = c.state_dict(), ModelSpec("vgg_small", bn=True).build(seed=1).state_dict()
    assert all(torch.equal(sc[k], t) for k, t in sbn.items())
    assert torch.equal(a(x), b(x)) and torch.equal(a(x), b(x))  # two steps each
    assert not torch.equal(a(x), c(x))


def test_the_stream_survives_a_state_dict_and_a_snapshot_restores_it():
    x = torch.randn(16, 1, 8, 8, generator=generator(5))
    a = noisy_vgg()
    a(x)
    state = {k: t.clone() for k, t in a.state_dict().items()}
    expected = a(x)  # the second step's output
    fresh = ModelSpec("vgg_small", bn=True, bn_noise="santurkar").build(seed=99).train()
    fresh.load_state_dict(state)  # a resumed run: the seed and the draws come back
    assert torch.equal(fresh(x), expected)
    draws = {k: int(t) for k, t in a.state_dict().items() if k.endswith("noise_draws")}
    assert set(draws.values()) == {2}
    with preserved(a):  # what every probe does: the model comes back as found, noise included
        a(x), a(x)
    assert {k: int(t) for k, t in a.state_dict().items() if k.endswith("noise_draws")} == draws


def test_the_global_rng_is_untouched_and_float64_noise_is_float64():
    model = noisy_vgg().double()
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64, generator=generator(6))
    before = torch.get_rng_state()
    out = model(x)
    assert torch.equal(torch.get_rng_state(), before)
    assert out.dtype == torch.float64
    assert all(t.dtype == torch.int64 for k, t in model.state_dict().items() if "noise" in k)


def test_add_bn_noise_keeps_names_settings_and_state():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, eps=1e-3, momentum=0.2))
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
    before = {k: t.clone() for k, t in model.state_dict().items()}
    assert add_bn_noise(model, seed=0) == ["1"]
    layer = model[1]
    assert isinstance(layer, NoisyBatchNorm1d) and isinstance(layer, nn.BatchNorm1d)
    assert (layer.eps, layer.momentum) == (1e-3, 0.2)
    after = model.state_dict()
    assert all(torch.equal(after[k], t) for k, t in before.items())
    assert set(after) - set(before) == {"1.noise_seed", "1.noise_draws"}
    assert add_bn_noise(nn.Linear(2, 2), seed=0) == []


def test_spec_options_are_checked_and_round_trip():
    spec = ModelSpec("vgg_small", bn=True, bn_noise="santurkar")
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert "bn_noise" not in ModelSpec("vgg_small", bn=True).to_dict()  # the default: as before
    with pytest.raises(ValueError, match=r"unknown bn_noise 'loud': choose one of"):
        ModelSpec("vgg_small", bn=True, bn_noise="loud")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"has none: build it with bn=True"):
        ModelSpec("vgg_small", bn=False, bn_noise="santurkar").build(seed=0)


def test_the_noise_streams_rest_on_splitmix64():
    """``_splitmix64`` reproduces SplitMix64's published first outputs for the seed 1234567
    (each call is one step from the state it is given, as in ``tests.cases.splitmix64``);
    ``stream_seed`` spreads seeds and indices over all 63 bits, and no seed or index
    collapses onto another."""
    from landscape.models.noisy_bn import _splitmix64

    seed, published = SPLITMIX64_PUBLISHED
    stream = splitmix64_stream(seed, 3)
    assert [_splitmix64(state) for state, _ in stream] == [out for _, out in stream] == published
    seeds = {stream_seed(s, i) for s in range(20) for i in range(20)}
    assert len(seeds) == 400 and max(seeds) < 2**63 and max(seeds) >= 2**62
    assert stream_seed(0, 0) != stream_seed(1, 0) and stream_seed(-1, 0) != stream_seed(0, 0)


def test_add_bn_noise_keeps_a_bn_without_parameters_and_the_modules_dtype():
    """A BN with neither affine parameters nor running statistics (nothing to take a dtype
    from) becomes noisy with its settings; a float64 BN stays float64."""
    bare = nn.Sequential(nn.BatchNorm2d(3, affine=False, track_running_stats=False))
    assert add_bn_noise(bare, seed=0) == ["0"]
    assert (bare[0].affine, bare[0].track_running_stats) == (False, False)
    assert bare[0].noise_seed.dtype == torch.int64
    bare.train()(torch.randn(4, 3, 2, 2))  # runs
    wide = nn.Sequential(nn.BatchNorm1d(5).double())
    add_bn_noise(wide, seed=0)
    assert wide[0].weight.dtype == torch.float64 and wide[0].running_mean.dtype == torch.float64
