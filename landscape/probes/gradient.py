"""Santurkar et al. (2018) probes: loss and gradient along the gradient (or any direction).

Internal covariate shift (Definition 2.1) is :mod:`landscape.probes.covariate_shift`;
:class:`~landscape.probes.callback.ProbeCallback` runs both in any training loop.

Probes are evaluations, not training steps: they run inside :func:`preserved` (parameters,
buffers, ``.grad``, train/eval flags and global RNGs come back bit for bit), take gradients with
:func:`torch.autograd.grad` and write every moved point from one saved copy of theta (no drift).
The generator of the parameters' device (torch's CPU generator, or that CUDA device's) is
reseeded with ``seed`` before each forward, so stochastic layers (dropout, noisy BN) draw the
same noise at every evaluation and ``L_B`` is one function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from landscape._params import Params, channels_last, flatten, norm, preserved
from landscape.data.evaluation import Loss
from landscape.probes.core import (
    BNMode,
    by_name,
    cosine,
    loss_and_grad,
    points,
    saved,
    setup,
)

__all__ = [
    "DEFAULT_STEP_COUNT",
    "DLN_MULTIPLIERS",
    "VGG_MULTIPLIERS",
    "Direction",
    "ProbeResult",
    "StepSizes",
    "Steps",
    "as_step_sizes",
    "gradient_probe",
]

Steps = Sequence[float] | np.ndarray  # or a StepSizes grid
Direction = Literal["gradient", "random"] | Mapping[str, Tensor]

# Santurkar et al., Sec. 3.2 / App. A.2.2: eta spans [1/2, 4] x lr (VGG), [1/100, 30] x lr (DLN).
VGG_MULTIPLIERS = (0.5, 4.0)
DLN_MULTIPLIERS = (0.01, 30.0)
# The paper does not say how many step sizes it used; recorded with every result.
DEFAULT_STEP_COUNT = 8
# Gradients at the moved points wait for their comparison with g in batches of at most this
# many bytes: one set of kernels per batch, not per step size (a small network's probe is ~3%
# faster), and a large network's k gradients are never all held at once.
HELD_GRADIENT_BYTES = 64 * 2**20


@dataclass(frozen=True)
class StepSizes:
    """Step-size grid ``eta = lr * m`` with ``count`` multipliers ``m`` spanning [low, high].

    Example: ``StepSizes.vgg(0.1).values()`` -> 8 values, linearly spaced on [0.05, 0.4].
    """

    lr: float  # training learning rate the grid is relative to
    low: float = VGG_MULTIPLIERS[0]  # smallest multiplier of lr
    high: float = VGG_MULTIPLIERS[1]  # largest multiplier of lr
    count: int = DEFAULT_STEP_COUNT  # number of step sizes
    spacing: Literal["linear", "log"] = "linear"  # log suits grids spanning decades (DLN)

    def __post_init__(self) -> None:
        for name in ("lr", "low", "high"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"StepSizes.{name} must be positive and finite, got {value!r}")
        if self.low > self.high:
            raise ValueError(f"StepSizes.low ({self.low}) is larger than high ({self.high})")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"StepSizes.count must be an integer >= 1, got {self.count!r}")
        if self.spacing not in ("linear", "log"):
            raise ValueError(f"unknown spacing {self.spacing!r}; expected 'linear' or 'log'")

    def values(self) -> np.ndarray:
        """The step sizes, float64, shape (count,), increasing."""
        if self.spacing == "linear":
            multipliers = np.linspace(self.low, self.high, self.count)
        elif self.spacing == "log":
            multipliers = np.geomspace(self.low, self.high, self.count)
        else:
            raise ValueError(f"unknown spacing {self.spacing!r}; expected 'linear' or 'log'")
        return self.lr * multipliers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def vgg(cls, lr: float, count: int = DEFAULT_STEP_COUNT) -> StepSizes:
        """The paper's VGG grid: [1/2, 4] x lr, linear."""
        return cls(lr, *VGG_MULTIPLIERS, count=count, spacing="linear")

    @classmethod
    def dln(cls, lr: float, count: int = DEFAULT_STEP_COUNT) -> StepSizes:
        """The paper's deep-linear-network grid: [1/100, 30] x lr, log spaced."""
        return cls(lr, *DLN_MULTIPLIERS, count=count, spacing="log")

    @classmethod
    def for_model(
        cls,
        model: str,
        lr: float,
        count: int = DEFAULT_STEP_COUNT,
        low: float | None = None,
        high: float | None = None,
        spacing: Literal["linear", "log"] | None = None,
    ) -> StepSizes:
        """The paper's grid for a model family (``"dln"``: :meth:`dln`; any other:
        :meth:`vgg`), with ``low``, ``high`` or ``spacing`` replaced where not None."""
        paper = cls.dln(lr, count) if model == "dln" else cls.vgg(lr, count)
        return replace(
            paper,
            low=paper.low if low is None else low,
            high=paper.high if high is None else high,
            spacing=paper.spacing if spacing is None else spacing,
        )


@dataclass(repr=False)
class ProbeResult:
    """Output of :func:`gradient_probe`; arrays have shape (K,) = one entry per step size."""

    step_sizes: np.ndarray  # eta
    loss: np.ndarray  # L_B(theta - eta d)
    grad_distance: np.ndarray  # ||grad L_B(theta - eta d) - g||_2
    ratio: np.ndarray  # grad_distance / distance
    distance: np.ndarray  # ||eta d||_2
    grad_cosine: np.ndarray  # cos(grad L_B(theta - eta d), g)
    beta: float  # effective beta-smoothness: max of the finite ratios (nan if none)
    grad_norm: float  # ||g||_2
    base_loss: float  # L_B(theta)
    direction_norm: float  # ||d||_2
    direction: str  # "gradient", "random" or "custom"
    bn_mode: str  # "train" or "eval"
    seed: int  # seed of the random direction and of the stochastic layers' draws

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __repr__(self) -> str:  # pragma: no mutate block
        """One line: the step sizes, the loss and gradient-change ranges, beta."""
        eta, loss, dist = self.step_sizes, self.loss, self.grad_distance
        return (f"ProbeResult({len(eta)} step sizes {eta.min():.3g}..{eta.max():.3g} along "
                f"{self.direction} (bn_mode {self.bn_mode}): loss {np.nanmin(loss):.4g}.."
                f"{np.nanmax(loss):.4g} (at theta {self.base_loss:.4g}), gradient change "
                f"{np.nanmin(dist):.3g}..{np.nanmax(dist):.3g}, beta {self.beta:.4g}, "
                f"|g| {self.grad_norm:.3g})")  # fmt: skip

    def _repr_png_(self) -> bytes:  # pragma: no mutate block
        """Loss and gradient change over the step sizes, for notebooks (drawn by
        :mod:`landscape.render` only then)."""
        from landscape.render.notebook import png_of  # display only: see docs/architecture.md

        return png_of(self)


def gradient_probe(
    model: nn.Module,
    loss_fn: Loss,
    batch: Any,
    step_sizes: Steps | StepSizes,
    *,
    direction: Direction = "gradient",
    bn_mode: BNMode = "train",
    seed: int = 0,
    base: tuple[Tensor, Mapping[str, Tensor]] | None = None,
) -> ProbeResult:
    """Loss and gradient along a direction from theta (Santurkar et al. 2018, Sec. 3.2).

    With ``g = grad L_B(theta)`` over the parameters with ``requires_grad`` and a direction
    ``d``, for each step size ``eta``::

        loss(eta)          = L_B(theta - eta d)
        grad_distance(eta) = || grad L_B(theta - eta d) - g ||_2
        ratio(eta)         = grad_distance(eta) / || eta d ||_2
        beta               = max_eta ratio(eta)        (effective beta-smoothness)

    Non-finite values are recorded as they are; ``beta`` is the maximum of the finite ratios,
    nan when there is none (e.g. ``g = 0``, where the ratio is 0/0).
    Cost: one forward and backward pass at theta (none when ``base`` is given) and one per
    step size; one host sync.

    Args:
        model: the network; left exactly as found.
        loss_fn: ``loss_fn(model(inputs), targets)`` -> a scalar tensor; or, for batches of
            any other form (dicts, tuple inputs, keyword arguments),
            :func:`~landscape.batch_loss` ``(fn)`` with ``fn(model, batch)`` -> the loss.
        batch: ``(inputs, targets)``, or what ``loss_fn``'s ``fn`` takes; already on the
            model's device.
        step_sizes: positive step sizes, or a :class:`StepSizes` grid.
        direction: ``"gradient"`` (d = g); ``"random"`` (seeded Gaussian drawn on the
            parameters' device, rescaled to ||d|| = ||g|| so a step size moves as far as along
            g); or a ``dict[str, Tensor]`` keyed by trainable parameter name, used as given.
        bn_mode: ``"train"``: model.train(), BatchNorm uses batch statistics (the landscape the
            optimizer sees); ``"eval"``: model.eval(), running statistics.
        seed: seeds the random direction and the stochastic layers' draws.
        base: ``(L_B(theta), {name: grad})`` already computed by the caller on the same batch
            and mode (a training loop has them after ``backward()``); saves the pass at theta.
            Only exact for models without random layers (dropout, noisy BN), whose draws in
            the caller's pass differ from the probe's seeded ones.

    Returns:
        A :class:`ProbeResult` (computed in the parameters' dtype, returned as float64).

    Raises:
        ValueError: bad step sizes, batch, loss, direction or bn_mode.

    Example:
        >>> class Quadratic(nn.Module):  # L = 0.5 theta^T A theta, A = diag(1, 3)
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.theta = nn.Parameter(torch.tensor([0.0, 1.0], dtype=torch.float64))
        ...     def forward(self, a):
        ...         return 0.5 * self.theta @ a @ self.theta
        >>> A = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64))
        >>> r = gradient_probe(Quadratic(), lambda out, _: out, (A, None), [0.25, 0.5])
        >>> r.beta  # g = (0, 3) is the top eigenvector: beta = lambda_max
        3.0
    """
    etas = as_step_sizes(step_sizes)
    train_mode, batch, names, params = setup(model, batch, bn_mode, loss_fn)
    cpu = params[0].device.type == "cpu"  # conv weights channels_last: passes ~20% shorter
    with preserved(model) as snap, torch.enable_grad(), channels_last(model, cpu):
        if any(on != train_mode for on in snap.modes.values()):
            model.train(train_mode)  # a walk of its own: skipped when the flags are set
        theta0 = saved(snap, names, params)
        if base is None:
            base_loss, g_list = loss_and_grad(model, loss_fn, batch, params, seed)
        else:
            base_loss = torch.as_tensor(base[0]).detach().reshape(())
            g_list = by_name(base[1], names, params, "base gradient")
        g = dict(zip(names, g_list))
        g_flat = flatten(g)  # reductions over one flat vector: ~3x fewer tiny kernels
        g_norm = g_flat.norm()
        kind, d = _direction(direction, names, params, g, g_norm, seed)
        d_norm = norm(d)  # not g_norm when d is g: a different rounding, and the figures move
        losses, compared = [], []
        per_batch = max(1, HELD_GRADIENT_BYTES // max(1, g_flat.numel() * g_flat.element_size()))
        moved = g_flat.new_empty(min(per_batch, len(etas)), g_flat.numel())
        with points(params, theta0, [d[n] for n in names]) as at:
            for i, eta in enumerate(etas):
                at(-float(eta))
                loss, grads = loss_and_grad(model, loss_fn, batch, params, seed)
                losses.append(loss)
                row = i % len(moved)  # flattened while in cache, compared with g in batches:
                torch.cat([t.reshape(-1) for t in grads], out=moved[row])  # no small kernels
                del grads  # freed before the next pass, which then reuses their memory: ~3%
                if row == len(moved) - 1 or i == len(etas) - 1:  # between the passes
                    compared.append(_compare(moved[: row + 1], g_flat))
        diff, inner, moved_norm = torch.cat(compared, dim=1)
        dist = d_norm * torch.as_tensor(etas, dtype=d_norm.dtype, device=d_norm.device)
        cos = cosine(inner, moved_norm, g_norm)
        # in the order of ProbeResult's fields
        rows = torch.stack([torch.stack(losses).to(diff.dtype), diff, diff / dist, dist, cos])
        head = torch.stack([base_loss.to(g_norm.dtype), g_norm, d_norm])
        flat = torch.cat([head, rows.reshape(-1)])
        values = flat.detach().cpu().to(torch.float64).numpy()  # the one host sync
    (base, gn, dn), table = values[:3], values[3:].reshape(5, len(etas))
    finite = table[2][np.isfinite(table[2])]
    beta = float(finite.max()) if finite.size else math.nan
    return ProbeResult(etas, *table, beta, float(gn), float(base), float(dn), kind, bn_mode, seed)


# --- helpers -------------------------------------------------------------------------------


def as_step_sizes(step_sizes: Steps | StepSizes) -> np.ndarray:
    """The step sizes as a fresh float64 array, checked positive and finite."""
    if isinstance(step_sizes, StepSizes):
        return step_sizes.values()
    try:
        etas = np.array(step_sizes, dtype=np.float64)  # a copy: results never alias input
    except (TypeError, ValueError) as err:
        raise ValueError(f"step_sizes must be a sequence of positive floats: {err}") from err
    if etas.ndim != 1:
        raise ValueError(f"step_sizes must be a flat sequence, got shape {etas.shape}")
    if etas.size == 0:
        raise ValueError("no step sizes: pass at least one positive float or a StepSizes grid")
    bad = etas[~(np.isfinite(etas) & (etas > 0))]
    if bad.size:
        raise ValueError(f"step sizes must be positive and finite, got {float(bad[0])!r}")
    return etas


def _compare(moved: Tensor, g_flat: Tensor) -> Tensor:
    """Rows ``||m - g||``, ``<m, g>`` and ``||m||`` (shape (3, n)) for the n flattened
    gradients ``m`` that are the rows of ``moved`` (which then hold ``m - g``)."""
    inner, norms = moved @ g_flat, moved.norm(dim=1)
    return torch.stack([moved.sub_(g_flat).norm(dim=1), inner, norms])


def _direction(
    direction: Direction, names: list, params: list, g: Params, g_norm: Tensor, seed: int
) -> tuple[str, Params]:
    """The probe direction d and its kind ("gradient", "random" or "custom")."""
    if isinstance(direction, Mapping):
        d = by_name(direction, names, params, "direction", missing="error")
        return "custom", dict(zip(names, d))
    if not isinstance(direction, str):
        raise ValueError(f"direction must be 'gradient', 'random' or a dict, got {direction!r}")
    if direction == "gradient":
        return "gradient", g
    elif direction == "random":
        gen = torch.Generator(device=params[0].device).manual_seed(seed)
        r = {
            n: torch.randn(p.shape, generator=gen, device=gen.device, dtype=p.dtype).to(p.device)
            for n, p in zip(names, params)
        }
        factor = g_norm / norm(r)  # ||d|| = ||g||: a step size moves as far as along g
        return "random", {n: v * factor for n, v in r.items()}
    else:
        raise ValueError(f"unknown direction {direction!r}; expected 'gradient' or 'random'")
