"""Noisy BatchNorm (Santurkar et al. 2018, Algorithm 1): BN followed by a random affine map.

After each BatchNorm layer, in training mode only, every forward pass (one training step)
draws for each unit (channel) c

    mu_c ~ U(-0.5, 0.5),    sigma_c ~ U(1, 1.25),

and for each example and unit (for convolutions every position (n, h, w) counts as an
example, "height and width count as batch")

    m ~ U(mu_c - 0.1, mu_c + 0.1),    s ~ N(sigma_c, 0.1),

and returns ``a <- s * a + m`` where ``a`` is the BN output. The activations' distribution
thus shifts from step to step ("covariate shift" put back in on purpose), while BN's own
normalisation is untouched. In eval mode the layer is plain BN.

The noise comes from a ``torch.Generator`` seeded, at every draw, from two int64 buffers
of the layer, ``noise_seed`` and ``noise_draws`` (the draws made so far): a state_dict, a
checkpoint and a probe's snapshot (:class:`landscape._params.ModelSnapshot`) carry the
stream, so training resumes bit for bit and an evaluation that restores the model restores
the noise too. The global RNG is never touched, so the noise perturbs neither the data order
nor the initial weights the BN/plain twins share. The same seed gives different numbers on
the CPU and on CUDA (different generators), each reproducible.

Every forward in training mode draws new noise: a probe or a Hessian of a noisy model in
``bn_mode="train"`` would measure a different function at every evaluation, so the trainer
refuses its inline ones in training mode (``TrainConfig.validate``); eval mode is plain BN.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

__all__ = [
    "MEAN_HALF_WIDTH",
    "MEAN_JITTER",
    "SCALE_HIGH",
    "SCALE_LOW",
    "SCALE_STD",
    "BNNoise",
    "NoisyBatchNorm1d",
    "NoisyBatchNorm2d",
    "NoisyBatchNorm3d",
    "add_bn_noise",
    "check_bn_noise",
    "santurkar_noise",
    "stream_seed",
]

#: What follows each BN layer: nothing, or Santurkar et al.'s Algorithm 1.
BNNoise = Literal["none", "santurkar"]

MEAN_HALF_WIDTH = 0.5  # mu ~ U(-0.5, 0.5) per step and unit
SCALE_LOW, SCALE_HIGH = 1.0, 1.25  # sigma ~ U(1, 1.25) per step and unit
MEAN_JITTER = 0.1  # m ~ U(mu - 0.1, mu + 0.1) per example and unit
SCALE_STD = 0.1  # s ~ N(sigma, 0.1) per example and unit

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One step of SplitMix64 (Steele et al. 2014): a well-mixed 64-bit function of ``x``."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def stream_seed(seed: int, index: int) -> int:
    """A seed in [0, 2^63) for sub-stream ``index`` of ``seed``, well mixed in both.

    Example:
        >>> stream_seed(0, 1) != stream_seed(1, 0) and 0 <= stream_seed(0, 0) < 2**63
        True
    """
    return _splitmix64(_splitmix64(seed & _MASK64) ^ (index & _MASK64)) >> 1


def santurkar_noise(
    shape: torch.Size | tuple[int, ...],
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One draw of Algorithm 1's noise for activations of ``shape`` (N, C, *spatial).

    mu_c ~ U(-0.5, 0.5) and sigma_c ~ U(1, 1.25) per unit c; per entry (n, c, *spatial)
    m ~ U(mu_c - 0.1, mu_c + 0.1) and s ~ N(sigma_c, 0.1).

    Returns:
        ``(m, s, mu, sigma)``: ``m`` and ``s`` of ``shape``, ``mu`` and ``sigma`` of (C,).
    """
    if len(shape) < 2:
        raise ValueError(f"noisy BN needs activations (N, C, ...), got shape {tuple(shape)}")
    c = shape[1]
    kw = {"generator": generator, "dtype": dtype, "device": device}
    mu = (2 * torch.rand(c, **kw) - 1) * MEAN_HALF_WIDTH
    sigma = SCALE_LOW + (SCALE_HIGH - SCALE_LOW) * torch.rand(c, **kw)
    unit = (1, c) + (1,) * (len(shape) - 2)  # broadcast (C,) over (N, C, *spatial)
    m = mu.view(unit) + (2 * torch.rand(shape, **kw) - 1) * MEAN_JITTER
    s = sigma.view(unit) + SCALE_STD * torch.randn(shape, **kw)
    return m, s, mu, sigma


class _Noise:
    """What the three noisy BN classes add to BatchNorm: the buffers, the draw, the forward."""

    noise_seed: Tensor
    noise_draws: Tensor

    def _init_noise(self, seed: int, device: object) -> None:
        assert isinstance(self, nn.Module)
        kw = {"dtype": torch.int64, "device": device}
        self.register_buffer("noise_seed", torch.tensor(int(seed), **kw))
        self.register_buffer("noise_draws", torch.zeros((), **kw))

    def draw(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """The next ``(m, s)`` for activations like ``like``; counts the draw."""
        generator = torch.Generator(device=like.device)
        generator.manual_seed(stream_seed(int(self.noise_seed), int(self.noise_draws)))
        with torch.no_grad():
            self.noise_draws.add_(1)
        m, s, _, _ = santurkar_noise(like.shape, generator, dtype=like.dtype, device=like.device)
        return m, s

    def forward(self, x: Tensor) -> Tensor:
        a = super().forward(x)  # type: ignore[misc]
        if not self.training:  # type: ignore[attr-defined]
            return a
        m, s = self.draw(a)
        return s * a + m


class NoisyBatchNorm1d(_Noise, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` then Algorithm 1's noise in training mode (see the module)."""

    def __init__(self, num_features: int, *, seed: int, **kwargs: object) -> None:
        nn.BatchNorm1d.__init__(self, num_features, **kwargs)  # type: ignore[arg-type]
        self._init_noise(seed, kwargs.get("device"))


class NoisyBatchNorm2d(_Noise, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` then Algorithm 1's noise in training mode (see the module)."""

    def __init__(self, num_features: int, *, seed: int, **kwargs: object) -> None:
        nn.BatchNorm2d.__init__(self, num_features, **kwargs)  # type: ignore[arg-type]
        self._init_noise(seed, kwargs.get("device"))


class NoisyBatchNorm3d(_Noise, nn.BatchNorm3d):
    """``nn.BatchNorm3d`` then Algorithm 1's noise in training mode (see the module)."""

    def __init__(self, num_features: int, *, seed: int, **kwargs: object) -> None:
        nn.BatchNorm3d.__init__(self, num_features, **kwargs)  # type: ignore[arg-type]
        self._init_noise(seed, kwargs.get("device"))


_NOISY: dict[type[nn.Module], type[nn.Module]] = {
    nn.BatchNorm1d: NoisyBatchNorm1d,
    nn.BatchNorm2d: NoisyBatchNorm2d,
    nn.BatchNorm3d: NoisyBatchNorm3d,
}


def check_bn_noise(bn_noise: str) -> None:
    """Raise ValueError unless ``bn_noise`` is one of :data:`BNNoise`."""
    if bn_noise not in get_args(BNNoise):
        raise ValueError(f"unknown bn_noise {bn_noise!r}: choose one of {get_args(BNNoise)}")


@torch.no_grad()
def add_bn_noise(model: nn.Module, seed: int) -> list[str]:
    """Replace every ``BatchNorm{1,2,3}d`` of ``model`` by its noisy twin, in place.

    The twin keeps the layer's settings, parameters and buffers under the same names (the
    model's state_dict gains ``<bn>.noise_seed`` and ``<bn>.noise_draws``), so the noisy
    network starts from exactly the weights of the BN network built with the same seed.
    The i-th BN layer (registration order) draws from ``stream_seed(seed, i)``.

    Returns:
        The names of the layers made noisy, in registration order (empty: the model has no
        BatchNorm layer).
    """
    names = []
    for name, module in list(model.named_modules()):
        noisy = _NOISY.get(type(module))
        if noisy is None:
            continue
        floats = [t for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()]
        like = floats[0] if floats else torch.empty(0)
        twin = noisy(
            module.num_features,
            seed=stream_seed(seed, len(names)),
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
            device=like.device,
            dtype=like.dtype,
        )
        unexpected = twin.load_state_dict(module.state_dict(), strict=False).unexpected_keys
        assert not unexpected, unexpected  # the twin holds BN's state and two noise buffers
        twin.train(module.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, twin)
        names.append(name)
    return names
