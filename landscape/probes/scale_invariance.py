"""BatchNorm's invariance to the scale of the weights before it, checked numerically.

Ioffe & Szegedy (2015), Sec. 3.3; Santurkar et al. (2018), Lemma 4.5 relies on it. For a
layer ``z = W u + b`` whose output goes straight into a BatchNorm layer in training mode
(batch statistics), and a scalar ``a > 0``:

    (i)    BN((aW) u + b) = BN(W u + b)
    (ii)   dL/du  at aW  =  dL/du  at W
    (iii)  dL/dW  at aW  =  (1/a) dL/dW  at W

so large weights get small gradients under BN, and the gradient w.r.t. the layer's input does
not grow with them. The bias needs no scaling: BN subtracts each unit's batch mean, which
removes any per-unit constant, so ``b`` drops out of both sides exactly. What does break the
identities is BN's ``eps``: BN(x) = (x - mean) / sqrt(var + eps), and
(ax - a mean) / sqrt(a^2 var + eps) = (x - mean) / sqrt(var + eps / a^2), a relative change
of about |1 - 1/a^2| eps / (2 var). The check therefore sets every BN's ``eps`` to
:data:`TINY_EPS` by default, the smallest positive float64 (torch refuses 0 in training
mode), which vanishes against any variance above 1e-290: the identities as stated.
``eps="model"`` keeps the layers' own ``eps`` and shows its effect.

Each identity is measured as the largest deviation relative to the reference's largest
entry, ``max|x - ref| / max|ref|`` (``x`` at aW, ``ref`` at W; for (iii) ``x = a dL/dW(aW)``),
in float64, on a copy of the model (the caller's is untouched), every evaluation starting
from the same buffers (BN running statistics, a noisy BN's noise stream).

A layer that feeds no BN layer (the plain twin's) can be measured too: (i) then compares the
layer's own output. Its deviations are of order |a - 1| or more: without BN nothing is
invariant, which is the contrast the check is there to show.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from landscape._params import preserved
from landscape.data.evaluation import Loss, move, objective
from landscape.models import BATCHNORMS
from landscape.models.blocks import WEIGHTED

__all__ = [
    "DEFAULT_SCALES",
    "DEFAULT_TOLERANCE",
    "IDENTITIES",
    "TINY_EPS",
    "EpsPolicy",
    "Identity",
    "LayerCheck",
    "ScaleInvarianceResult",
    "bn_inputs",
    "relative_deviation",
    "scale_invariance",
]

#: The identities, by name: (i) the BN output, (ii) dL/du, (iii) a dL/dW(aW) vs dL/dW(W).
Identity = Literal["output", "input_grad", "weight_grad"]
IDENTITIES: tuple[Identity, ...] = get_args(Identity)
#: BN's eps during the check: "zero" (:data:`TINY_EPS`, the identities as stated) or each
#: layer's own.
EpsPolicy = Literal["zero", "model"]
#: eps for "zero": torch's batch_norm refuses eps <= 0 in training mode; this one is lost in
#: the rounding of var + eps for any variance above 1e-290.
TINY_EPS = float(torch.finfo(torch.float64).tiny)
DEFAULT_SCALES = (0.1, 10.0, 1000.0)
#: float64 round-off grows with depth and the scale; 1e-10 leaves it four orders of room.
DEFAULT_TOLERANCE = 1e-10


def relative_deviation(x: Tensor, ref: Tensor) -> float:
    """``max|x - ref| / max|ref|``: 0 where both are 0, inf where only ``ref`` is.

    Example:
        >>> relative_deviation(torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]))
        0.25
    """
    scale = float(ref.abs().max())
    diff = float((x - ref).abs().max())
    if scale == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / scale


@dataclass(frozen=True)
class LayerCheck:
    """The deviations of one layer.

    Attributes:
        layer: The Conv/Linear module's name.
        bn: The BatchNorm module its output goes into, or None (no BN follows: nothing is
            expected to hold).
        deviations: identity -> (S,) relative deviation per scale (NaN: not computed).
    """

    layer: str
    bn: str | None
    deviations: dict[Identity, np.ndarray]

    def worst(self, identity: Identity) -> float:
        """The largest deviation over the scales (NaN if any is NaN)."""
        values = self.deviations[identity]
        return float("nan") if np.isnan(values).any() else float(values.max())


@dataclass
class ScaleInvarianceResult:
    """What :func:`scale_invariance` measured, with the settings it used."""

    layers: list[LayerCheck]
    scales: tuple[float, ...]
    tolerance: float
    eps: EpsPolicy
    examples: int
    settings: dict[str, Any] = field(default_factory=dict)  # dtype, BN mode: what was fixed

    @property
    def claimed(self) -> list[LayerCheck]:
        """The layers the identities are claimed for: those that feed a BN layer."""
        return [c for c in self.layers if c.bn is not None]

    def failures(self) -> list[tuple[str, Identity, float, float]]:
        """``(layer, identity, a, deviation)`` of every claimed identity over the tolerance
        (or NaN), largest first."""
        bad = [
            (c.layer, identity, a, float(v))
            for c in self.claimed
            for identity in IDENTITIES
            for a, v in zip(self.scales, c.deviations[identity])
            if not v <= self.tolerance
        ]
        return sorted(bad, key=lambda f: -f[3] if math.isfinite(f[3]) else -math.inf)

    @property
    def passed(self) -> bool:
        """True when some layer feeds BN and all its identities hold within the tolerance."""
        return bool(self.claimed) and not self.failures()

    def largest(self, claimed: bool = True) -> float:
        """The largest deviation over the claimed layers (or the others), NaN for none."""
        rows = [c for c in self.layers if (c.bn is not None) == claimed]
        values = [c.worst(i) for c in rows for i in IDENTITIES]
        return max(values, default=float("nan"), key=lambda v: math.inf if math.isnan(v) else v)


def bn_inputs(model: nn.Module, run: Callable[[nn.Module], Any]) -> dict[str, str | None]:
    """Every Conv/Linear layer of ``model`` -> the BatchNorm layer its output goes into
    directly (None: no BN follows), found from one forward pass ``run(model)``.

    The data flow decides, not the order of registration: a BN is fed by a layer when the
    tensor the layer returned is the one the BN receives. ``model`` is left as found.
    """
    produced: dict[int, tuple[str, Tensor]] = {}  # id -> (layer, the tensor, kept alive)
    fed: dict[str, str | None] = {
        n: None for n, m in model.named_modules() if isinstance(m, WEIGHTED)
    }

    def made(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if isinstance(out, Tensor):
                produced[id(out)] = (name, out)

        return hook

    def used(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            if args and isinstance(args[0], Tensor) and id(args[0]) in produced:
                fed[produced[id(args[0])][0]] = name

        return hook

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, WEIGHTED):
            handles.append(module.register_forward_hook(made(name)))
        elif isinstance(module, BATCHNORMS):
            handles.append(module.register_forward_pre_hook(used(name)))
    try:
        with preserved(model), torch.no_grad():  # BN statistics, noise stream: as found
            run(model)
    finally:
        for h in handles:
            h.remove()
    return fed


def _measure(
    base: nn.Module, layer: str, watched: str, a: float, run: Callable[[nn.Module], Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """``(watched's output, dL/du, dL/dW)`` with ``layer``'s weight multiplied by ``a``, on a
    fresh copy of ``base`` (the same buffers every time)."""
    model = copy.deepcopy(base)
    for p in model.parameters():
        p.requires_grad_(False)
    module = model.get_submodule(layer)
    with torch.no_grad():
        module.weight.mul_(a)
    module.weight.requires_grad_(True)
    seen: dict[str, list[Tensor]] = {"u": [], "out": []}

    def leaf_input(mod: nn.Module, args: tuple) -> tuple:
        u = args[0].detach().requires_grad_(True)  # dL/du through this layer
        seen["u"].append(u)
        return (u, *args[1:])

    handles = [
        module.register_forward_pre_hook(leaf_input),
        model.get_submodule(watched).register_forward_hook(
            lambda mod, args, out: seen["out"].append(out)
        ),
    ]
    try:
        loss = run(model)
    finally:
        for h in handles:
            h.remove()
    if len(seen["u"]) != 1 or len(seen["out"]) != 1:
        raise ValueError(
            f"layer {layer!r} (or {watched!r}) runs {len(seen['u'])} times in one forward pass: "
            "the check needs a layer applied once"
        )
    du, dw = torch.autograd.grad(loss, [seen["u"][0], module.weight])
    return seen["out"][0].detach(), du, dw


def scale_invariance(
    model: nn.Module,
    loss_fn: Loss,
    batch: Any,
    *,
    scales: Sequence[float] = DEFAULT_SCALES,
    layers: Sequence[str] | None = None,
    eps: EpsPolicy = "zero",
    tolerance: float = DEFAULT_TOLERANCE,
) -> ScaleInvarianceResult:
    """Check identities (i)-(iii) of the module docstring for each layer and scale ``a``.

    Args:
        model: Any module; a float64 copy in training mode is measured, ``model`` is left
            as it is.
        loss_fn: ``loss_fn(outputs, targets)`` or a :func:`~landscape.data.batch_loss`.
        batch: One batch (BN's statistics are this batch's).
        scales: The factors ``a > 0`` (1 is the reference, not needed here).
        layers: Conv/Linear module names to check; None: every one that feeds a BN layer.
            A named layer that feeds none is measured as well (e.g. the plain twin's, for
            contrast) and reported with ``bn=None``.
        eps: ``"zero"``: every BN's eps set to :data:`TINY_EPS` (in effect 0), the
            identities exact; ``"model"``: the layers' own eps, deviations of order
            |1 - 1/a^2| eps / (2 var).
        tolerance: The largest relative deviation that counts as holding.

    Returns:
        One :class:`LayerCheck` per layer, in the model's order; ``.passed`` says whether
        every layer that feeds BN holds within ``tolerance``.

    Raises:
        ValueError: a scale that is not a positive number, an unknown ``eps`` policy, a
            named layer that is not a Conv/Linear module of ``model``, or no layer to check.

    Example:
        >>> from landscape import create_model
        >>> import torch.nn.functional as F
        >>> net = create_model("mlp", bn=True, input_shape=(4,), depth=1, width=8)
        >>> batch = (torch.randn(16, 4), torch.randint(0, 10, (16,)))
        >>> scale_invariance(net, F.cross_entropy, batch).passed
        True
    """
    scales = tuple(float(a) for a in scales)
    if not scales or not all(math.isfinite(a) and a > 0 for a in scales):
        raise ValueError(f"scales must be positive numbers, got {list(scales)}")
    if eps == "zero":
        zero_eps = True
    elif eps == "model":
        zero_eps = False
    else:
        raise ValueError(f"unknown eps policy {eps!r}: choose one of {get_args(EpsPolicy)}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    base = copy.deepcopy(model).to(dtype=torch.float64).train()
    for module in base.modules():
        if zero_eps and isinstance(module, BATCHNORMS):
            module.eps = TINY_EPS
    batch = move(batch, device, torch.float64)
    run, examples = objective(loss_fn, batch)
    feeds = bn_inputs(base, run)
    if layers is None:
        chosen = [name for name, bn in feeds.items() if bn is not None]
        if not chosen:
            raise ValueError(
                "no Conv/Linear layer of the model feeds a BatchNorm layer: name the layers "
                "to measure (layers=...; the CLI takes them from the BN twin)"
            )
    else:
        unknown = [name for name in layers if name not in feeds]
        if unknown:
            raise ValueError(
                f"{unknown} are not Conv/Linear layers of the model: choose among {list(feeds)}"
            )
        chosen = [name for name in feeds if name in set(layers)]
    checks = []
    for name in chosen:
        watched = feeds[name] or name
        ref_out, ref_du, ref_dw = _measure(base, name, watched, 1.0, run)
        deviations = {i: np.full(len(scales), np.nan) for i in IDENTITIES}
        for k, a in enumerate(scales):
            out, du, dw = _measure(base, name, watched, a, run)
            deviations["output"][k] = relative_deviation(out, ref_out)
            deviations["input_grad"][k] = relative_deviation(du, ref_du)
            deviations["weight_grad"][k] = relative_deviation(a * dw, ref_dw)
        checks.append(LayerCheck(name, feeds[name], deviations))
    return ScaleInvarianceResult(
        checks, scales, float(tolerance), eps, examples,
        settings={"dtype": "float64", "bn_mode": "train"},
    )  # fmt: skip
