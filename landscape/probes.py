"""Santurkar et al. (2018) probes: gradient-direction landscape probes and internal covariate shift.

Probes are evaluations, not training steps: they run inside :func:`preserved` (parameters,
buffers, ``.grad``, train/eval flags and global RNGs come back bit for bit), take gradients with
:func:`torch.autograd.grad` and write every moved point from one saved copy of theta (no drift).
The global torch generator is reseeded with ``seed`` before each forward, so stochastic layers
(dropout, noisy BN) draw the same noise at every evaluation and ``L_B`` is one function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from landscape._params import ModelSnapshot, Params, norm, preserved

__all__ = [
    "DLN_MULTIPLIERS",
    "VGG_MULTIPLIERS",
    "ICSResult",
    "ProbeCallback",
    "ProbeResult",
    "StepSizes",
    "gradient_probe",
    "ics",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
Batch = Sequence[Tensor]  # (inputs, targets)
Steps = Sequence[float] | np.ndarray  # or a StepSizes grid
BNMode = Literal["train", "eval"]
Direction = Literal["gradient", "random"] | Mapping[str, Tensor]
Sink = Callable[[str, int, Any], None]  # sink(kind, step, result), kind "probe" or "ics"

# Santurkar et al., Sec. 3.2 / App. A.2.2: eta spans [1/2, 4] x lr (VGG), [1/100, 30] x lr (DLN).
VGG_MULTIPLIERS = (0.5, 4.0)
DLN_MULTIPLIERS = (0.01, 30.0)
# The paper does not say how many step sizes it used; recorded with every result.
DEFAULT_STEP_COUNT = 8


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


@dataclass
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


@dataclass
class ICSResult:
    """Output of :func:`ics`; arrays have shape (L,) = one entry per layer."""

    layers: list[str]  # module names, in the order measured
    l2: np.ndarray  # ||G - G'||_2
    cos: np.ndarray  # cos(G, G')
    grad_norm: np.ndarray  # ||G||_2, to put l2 in scale
    lr: float  # of the SGD update; nan when the update was given
    update: str  # "sgd" (-lr * g) or "given" (the caller's update, e.g. the optimizer's step)
    bn_mode: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gradient_probe(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
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
        loss_fn: ``loss_fn(model(inputs), targets)`` must be a scalar tensor.
        batch: ``(inputs, targets)``, already on the model's device.
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
    etas = _as_step_sizes(step_sizes)
    train_mode, batch, names, params = _setup(model, batch, bn_mode)
    with preserved(model) as snap, torch.enable_grad():
        model.train(train_mode)
        theta0 = _saved(snap, names, params)
        if base is None:
            base_loss, g_list = _loss_and_grad(model, loss_fn, batch, params, seed)
        else:
            base_loss, g_list = _given_base(base, names, params)
        g = dict(zip(names, g_list))
        g_flat = _flat(g_list)  # reductions over one flat vector: ~3x fewer tiny kernels
        g_norm = g_flat.norm()
        kind, d = _direction(direction, names, params, g, g_norm, seed)
        d_norm = norm(d)
        d_list = [d[n] for n in names]
        rows = []
        for eta in etas:
            _place(params, theta0, d_list, -float(eta))
            loss, grads = _loss_and_grad(model, loss_fn, batch, params, seed)
            moved = _flat(grads)
            diff = (moved - g_flat).norm()
            dist = d_norm * float(eta)
            cos = _cosine(moved @ g_flat, moved.norm(), g_norm)
            # in the order of ProbeResult's fields
            rows.append(torch.stack([loss.to(diff.dtype), diff, diff / dist, dist, cos]))
        head = torch.stack([base_loss.to(g_norm.dtype), g_norm, d_norm])
        flat = torch.cat([head, torch.stack(rows).T.reshape(-1)])
        values = flat.detach().cpu().to(torch.float64).numpy()  # the one host sync
    (base, gn, dn), table = values[:3], values[3:].reshape(5, len(etas))
    finite = table[2][np.isfinite(table[2])]
    beta = float(finite.max()) if finite.size else math.nan
    return ProbeResult(etas, *table, beta, float(gn), float(base), float(dn), kind, bn_mode, seed)


def ics(
    model: nn.Module,
    loss_fn: LossFn,
    batch: Batch,
    lr: float | None = None,
    *,
    update: Mapping[str, Tensor] | None = None,
    layers: Sequence[str] | None = None,
    bn_mode: BNMode = "train",
    seed: int = 0,
) -> ICSResult:
    """Internal covariate shift, Santurkar et al. (2018) Definition 2.1.

    For layer i with weight W_i, at theta on batch B::

        G  = grad_{W_i} L_B(theta)
        G' = grad_{W_i} L_B(theta'),  theta'_j = theta_j + u_j  for j earlier,
                                      theta'_j = theta_j        otherwise
        l2 = ||G - G'||_2,   cos = <G, G'> / (||G|| ||G'||)

    where u is the update of step t: ``u_j = -lr * grad_j L_B(theta)`` (plain SGD, the paper's
    optimizer) when ``lr`` is given, or the caller's ``update`` (theta_{t+1} - theta_t as the
    loop's optimizer made it: momentum, Adam, weight decay, schedules). To measure the real
    update in your own loop, keep theta_t and call after ``optimizer.step()``::

        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        ...  # forward, backward, optimizer.step()
        update = {n: p.detach() - before[n] for n, p in model.named_parameters()}
        with preserved(model):  # back to theta_t for the measurement, then theta_{t+1} again
            for n, p in model.named_parameters():
                p.data.copy_(before[n])
            shift = ics(model, loss_fn, batch, update=update)

    "Earlier" parameters are those owned by modules registered before layer i's module in
    ``model.named_modules()`` order (the forward order of sequential models): weights, biases
    and BatchNorm parameters of the earlier layers; layer i's own bias stays at theta. A layer
    with no earlier parameter has ``G' = G`` exactly at no cost. Cost: one backward for all G,
    then one forward+backward per other layer.

    Args:
        model, loss_fn, batch, bn_mode, seed: as for :func:`gradient_probe`.
        lr: the learning rate of a plain SGD update of the earlier layers; or
        update: the earlier layers' actual update, by parameter name (missing names: no
            update). Give exactly one of the two.
        layers: module names to measure, in this order; default every module with a
            trainable ``weight`` of ndim >= 2 (conv and linear layers), in registration order.

    Returns:
        An :class:`ICSResult`.
    """
    if (lr is None) == (update is None):
        raise ValueError("give ics() either lr (a plain SGD step) or update (the actual step)")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be positive and finite, got {lr!r}")
    train_mode, batch, names, params = _setup(model, batch, bn_mode)
    chosen, owner = _layers(model, params, layers)
    given = None if update is None else _given_update(update, names, params)
    with preserved(model) as snap, torch.enable_grad():
        model.train(train_mode)
        theta0 = _saved(snap, names, params)
        _, g_list = _loss_and_grad(model, loss_fn, batch, params, seed)
        steps, alpha = (g_list, -float(lr)) if given is None else (given, 1.0)  # type: ignore[arg-type]
        moved = [False] * len(params)
        rows = []
        for _, module_index, k in chosen:
            for j, p in enumerate(params):
                earlier = owner[j] < module_index
                if earlier != moved[j]:
                    _place([p], [theta0[j]], [steps[j]], alpha if earlier else 0.0)
                    moved[j] = earlier
            G = g_list[k]
            if any(moved):
                _, (G2,) = _loss_and_grad(model, loss_fn, batch, [params[k]], seed)
            else:
                G2 = G
            G_norm = G.norm()
            cos = _cosine((G * G2).sum(), G2.norm(), G_norm)
            rows.append(torch.stack([(G - G2).norm(), cos, G_norm]))
        table = torch.stack(rows).T.detach().cpu().to(torch.float64).numpy()
    rule = "sgd" if given is None else "given"
    lr_value = float("nan") if lr is None else float(lr)
    return ICSResult([name for name, _, _ in chosen], *table, lr_value, rule, bn_mode)


class ProbeCallback:
    """Runs :func:`gradient_probe` (and :func:`ics`) every few steps of any training loop.

    Call it with the step's batch BEFORE the optimizer update; each result goes to
    ``sink(kind, step, result)`` with kind ``"probe"`` or ``"ics"``; the default sink
    appends ``(kind, step, result)`` to ``self.records``::

        cb = ProbeCallback(every=10, step_sizes=StepSizes.vgg(0.1), ics_every=100)
        cb(step, model, loss_fn, (x, y))   # in the loop, before optimizer.step()
        steps = [step for kind, step, _ in cb.records if kind == "probe"]

    Args:
        every, ics_every: probe / measure ICS when ``step % every == 0``; None: never.
        step_sizes, direction, bn_mode, seed: as for :func:`gradient_probe` (validated here).
        sink: receives each result; default collects into ``records``.
        lr: learning rate for ICS; default ``step_sizes.lr`` when a :class:`StepSizes`.
        ics_layers: passed to :func:`ics` as ``layers``.
    """

    def __init__(
        self,
        every: int | None,
        step_sizes: Steps | StepSizes,
        *,
        sink: Sink | None = None,
        ics_every: int | None = None,
        lr: float | None = None,
        direction: Direction = "gradient",
        bn_mode: BNMode = "train",
        seed: int = 0,
        ics_layers: Sequence[str] | None = None,
    ) -> None:
        for name, value in (("every", every), ("ics_every", ics_every)):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        _as_step_sizes(step_sizes)
        _check_bn_mode(bn_mode)
        if lr is None and isinstance(step_sizes, StepSizes):
            lr = step_sizes.lr
        if ics_every is not None and lr is None:
            raise ValueError("ICS needs the learning rate: pass lr= or a StepSizes grid")
        self.every, self.ics_every, self.lr, self.step_sizes = every, ics_every, lr, step_sizes
        self.probe_options = {"direction": direction, "bn_mode": bn_mode, "seed": seed}
        self.ics_options = {"layers": ics_layers, "bn_mode": bn_mode, "seed": seed}
        self.records: list[tuple[str, int, Any]] = []
        self.sink: Sink = sink if sink is not None else self._collect

    def _collect(self, kind: str, step: int, result: Any) -> None:
        self.records.append((kind, step, result))

    def __call__(
        self,
        step: int,
        model: nn.Module,
        loss_fn: LossFn,
        batch: Batch,
        base: tuple[Tensor, Mapping[str, Tensor]] | None = None,
        lr: float | None = None,
    ) -> None:
        """Probe at ``step`` if due; ``base`` = the loop's own (loss, gradient) at theta;
        ``lr`` = the loop's current learning rate, to which a :class:`StepSizes` grid is
        rescaled (eta = lr x multipliers; each result records its eta)."""
        if self.every is not None and step % self.every == 0:
            steps = self.step_sizes
            if lr is not None:
                if not isinstance(steps, StepSizes):
                    raise ValueError("lr= rescales a StepSizes grid: pass step_sizes as StepSizes")
                steps = replace(steps, lr=lr)
            probe = gradient_probe(model, loss_fn, batch, steps, base=base, **self.probe_options)
            self.sink("probe", step, probe)
        if self.ics_every is not None and step % self.ics_every == 0:
            shift = ics(model, loss_fn, batch, self.lr, **self.ics_options)  # type: ignore[arg-type]
            self.sink("ics", step, shift)


# --- helpers -------------------------------------------------------------------------------


def _as_step_sizes(step_sizes: Steps | StepSizes) -> np.ndarray:
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


def _check_bn_mode(bn_mode: str) -> bool:
    if bn_mode == "train":
        return True
    elif bn_mode == "eval":
        return False
    else:
        raise ValueError(f"unknown bn_mode {bn_mode!r}; expected 'train' or 'eval'")


def _setup(model: nn.Module, batch: Batch, bn_mode: str) -> tuple[bool, tuple, list, list]:
    """Validate; return the train flag, (inputs, targets), trainable names and parameters."""
    train_mode = _check_bn_mode(bn_mode)
    try:
        inputs, targets = batch
    except (TypeError, ValueError) as err:
        raise ValueError("batch must be a pair (inputs, targets)") from err
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no parameters with requires_grad=True")
    return train_mode, (inputs, targets), [n for n, _ in named], [p for _, p in named]


def _saved(snap: ModelSnapshot, names: list[str], params: list[nn.Parameter]) -> list[Tensor]:
    """theta at entry: the snapshot's clones (no second copy), else a fresh clone."""
    return [snap.state[n] if n in snap.state else p.detach().clone() for n, p in zip(names, params)]


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _loss_and_grad(
    model: nn.Module, loss_fn: LossFn, batch: tuple, wrt: list[nn.Parameter], seed: int
) -> tuple[Tensor, list[Tensor]]:
    """L_B at the model's current parameters (0-d, detached) and its gradient w.r.t. ``wrt``."""
    inputs, targets = batch
    _seed_device(wrt[0].device, seed)  # identical draws in stochastic layers at every evaluation
    try:
        out = model(inputs)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise ValueError(f"batch does not fit the model: {_first_line(err)}") from err
    try:
        loss = loss_fn(out, targets)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise ValueError(f"batch targets do not fit loss_fn: {_first_line(err)}") from err
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar, got {shape}; reduce it (e.g. mean)")
    if not loss.requires_grad:
        raise ValueError("the loss does not depend on the model's trainable parameters")
    grads = torch.autograd.grad(loss.reshape(()), wrt, allow_unused=True)
    grads = [torch.zeros_like(p) if gr is None else gr for p, gr in zip(wrt, grads)]
    return loss.detach().reshape(()), grads


def _seed_device(device: torch.device, seed: int) -> None:
    """Seed only the generator the model draws from (``torch.manual_seed`` also seeds every
    other backend and costs ~0.4 ms per call on CPU builds); restored by ``preserved``."""
    if device.type == "cuda":
        torch.cuda.default_generators[device.index or 0].manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _given_base(
    base: tuple[Tensor, Mapping[str, Tensor]], names: list[str], params: list[nn.Parameter]
) -> tuple[Tensor, list[Tensor]]:
    """Validate a caller's ``(loss, gradient)`` at theta; missing gradients count as zero."""
    loss, grads = base
    unknown = set(grads) - set(names)
    if unknown:
        raise ValueError(
            f"base gradient has names that are not trainable parameters: {sorted(unknown)[:3]}"
        )
    out = []
    for n, p in zip(names, params):
        gr = grads.get(n)
        if gr is not None and gr.shape != p.shape:
            raise ValueError(
                f"base gradient {n!r} has shape {tuple(gr.shape)}, parameter {tuple(p.shape)}"
            )
        out.append(torch.zeros_like(p) if gr is None else gr.detach().to(p.dtype))
    return torch.as_tensor(loss).detach().reshape(()), out


def _given_update(
    update: Mapping[str, Tensor], names: list[str], params: list[nn.Parameter]
) -> list[Tensor]:
    """Validate a caller's update by parameter name; missing names do not move."""
    unknown = set(update) - set(names)
    if unknown:
        names_ = sorted(unknown)[:3]
        raise ValueError(f"update has names that are not trainable parameters: {names_}")
    out = []
    for n, p in zip(names, params):
        u = update.get(n)
        if u is not None and (not isinstance(u, Tensor) or u.shape != p.shape):
            got = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
            raise ValueError(f"update[{n!r}] has shape {got}, parameter {tuple(p.shape)}")
        out.append(torch.zeros_like(p) if u is None else u.detach().to(p.device, p.dtype))
    return out


@torch.no_grad()
def _place(params: list[nn.Parameter], theta0: list[Tensor], d: list[Tensor], alpha: float):
    """Write ``theta0 + alpha * d`` into the parameters (from the saved copy: no drift)."""
    torch._foreach_copy_(params, theta0)
    if alpha != 0.0:
        torch._foreach_add_(params, d, alpha=alpha)


def _cosine(inner: Tensor, norm_a: Tensor, norm_b: Tensor) -> Tensor:
    """Cosine from its parts, clamped against rounding; nan when a norm is 0."""
    return (inner / (norm_a * norm_b)).clamp(-1.0, 1.0)


def _direction(
    direction: Direction, names: list, params: list, g: Params, g_norm: Tensor, seed: int
) -> tuple[str, Params]:
    """The probe direction d and its kind ("gradient", "random" or "custom")."""
    if isinstance(direction, Mapping):
        missing, extra = [n for n in names if n not in direction], set(direction) - set(g)
        if missing or extra:
            msg = f"missing {missing[:3]}, extra {sorted(extra)[:3]}"
            raise ValueError(f"direction keys do not match the trainable parameters: {msg}")
        d: Params = {}
        for n, p in zip(names, params):
            v = direction[n]
            if not isinstance(v, Tensor) or v.shape != p.shape:
                got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise ValueError(f"direction[{n!r}] has shape {got}, parameter {tuple(p.shape)}")
            d[n] = v.detach().to(device=p.device, dtype=p.dtype)
        return "custom", d
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


def _layers(
    model: nn.Module, params: list[nn.Parameter], layers: Sequence[str] | None
) -> tuple[list[tuple[str, int, int]], dict[int, int]]:
    """Layers as (module name, module index, weight's index in ``params``), and for each
    parameter index the index of its owning module; modules counted in named_modules() order."""
    position = {id(p): k for k, p in enumerate(params)}
    owner: dict[int, int] = {}
    found: dict[str, tuple[int, int, int]] = {}  # name -> (module index, weight index, ndim)
    for idx, (mn, m) in enumerate(model.named_modules()):
        for pn, p in m._parameters.items():
            k = position.get(id(p))
            if k is not None:
                owner.setdefault(k, idx)  # a shared parameter belongs to its first module
                if pn == "weight":
                    found[mn] = (idx, k, p.ndim)
    if layers is None:
        chosen = [(mn, idx, k) for mn, (idx, k, ndim) in found.items() if ndim >= 2]
    else:
        unknown = [mn for mn in layers if mn not in found]
        if unknown:
            known = [mn for mn, (_, _, ndim) in found.items() if ndim >= 2]
            raise ValueError(
                f"layers {unknown[:3]} have no trainable weight; layers with one: {known[:6]}"
            )
        chosen = [(mn, found[mn][0], found[mn][1]) for mn in layers]
    if not chosen:
        raise ValueError("no layers to measure: the model has no trainable weight of ndim >= 2")
    return chosen, owner
