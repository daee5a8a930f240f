"""Evaluation fast paths for slices: the slice's vehicle, a cheaper forward of the model.

Three levers, each changing only rounding (float32: ~1e-7 relative): BatchNorm on running
statistics folded into the preceding layer, 4-D weights in channels_last, and on the CPU
the conv trunk in oneDNN's blocked layout (:mod:`landscape.slices.blocked`).
``benchmarks/bench_slices.py`` measures them; ``tests/slices/test_fold.py`` and
``tests/slices/test_blocked.py`` check them against the plain model.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from landscape._params import Target, as_channels_last
from landscape.slices import blocked, traced

log = logging.getLogger(__name__)

FOLD_BN = True  # switches for benchmarks and tests
CHANNELS_LAST = True
BLOCKED = True
_FOLDS_INTO = {  # layer type -> the BatchNorm type that can be folded into it
    nn.Conv1d: nn.BatchNorm1d,
    nn.Conv2d: nn.BatchNorm2d,
    nn.Conv3d: nn.BatchNorm3d,
    nn.Linear: nn.BatchNorm1d,
}
# A correct fold differs from the model by rounding only, a wrong one by O(1): the
# one-batch check before a grid compares at this relative tolerance (of the largest |logit|).
_FOLD_CHECK_RTOL = 1e-3
CHECK_EXAMPLES = 64  # BN on running statistics is per example: a few examples suffice


def hookless(m: nn.Module) -> bool:
    """No hooks and no parametrization: ``m.weight`` is what ``m``'s forward will use."""
    return not (m._forward_hooks or m._forward_pre_hooks or parametrize.is_parametrized(m))


class Vehicle:
    """The model's forward, traced once, with its BatchNorms folded and its conv trunk blocked.

    Folding:     On running statistics BN is the per-channel affine map ``(z - mu) s + beta`` with
    ``s = gamma / sqrt(var + eps)``, so ``bn(conv(x; W, b)) = conv(x; W s, (b - mu) s + beta)``
    (``W s`` scales output channel ``j`` of ``W`` by ``s_j``): one pass over the activations
    fewer per block. The model's forward is traced once (``torch.fx``); each folded layer is
    a copy owned here, set with the point where it is affine in the point (:meth:`follow`) or
    else recomputed from the model's moved tensors by :meth:`refresh` at every point, and
    every other node calls the model's own module. A fold needs a BN node fed
    only by a conv/linear node of the matching dimension, both free of hooks and
    parametrizations, and a BN that tracks running statistics.

    Blocking (``blocked=True``, CPU and float32 only): see :mod:`landscape.slices.blocked`;
    its convolutions read the folded copies (or the model's own convolutions where no BN
    follows) and are converted again by :meth:`refresh`.
    """

    def __init__(
        self,
        graph: torch.fx.GraphModule,
        folds: list[tuple[nn.Module, nn.Module, nn.Module]],
        convs: list[blocked.BlockedConv],
    ):
        self.graph, self.folds, self.convs = graph, folds, convs  # folds: (layer, bn, copy)
        self.run: Any = graph  # what a call runs: the graph, or its trace (:meth:`interpret`)
        self._affine: set[int] = set()  # folds set by the engine's targets (:meth:`follow`)

    @classmethod
    def build(
        cls, model: nn.Module, channels_last: bool, fold_bn: bool = True, block: bool = False
    ) -> Vehicle | None:
        """Trace, fold and block; None where neither applies or the forward cannot be traced."""
        try:
            gm = torch.fx.symbolic_trace(model)
        except Exception as exc:  # any untraceable forward: evaluate the model itself
            log.debug("BatchNorm not folded: the forward does not trace (%s)", exc)
            return None
        mods = dict(gm.named_modules())
        folds = []
        for node in list(gm.graph.nodes) if fold_bn else ():
            bn = mods.get(node.target) if node.op == "call_module" else None
            prev = node.args[0] if bn is not None and len(node.args) == 1 else None
            if not (isinstance(prev, torch.fx.Node) and prev.op == "call_module"):
                continue
            layer = mods.get(prev.target)  # None for a layer folded already
            if not (
                _FOLDS_INTO.get(type(layer)) is type(bn)
                and bn.track_running_stats
                and bn.running_mean is not None
                and len(prev.users) == 1
                and not node.kwargs
                and hookless(layer)
                and hookless(bn)
            ):
                continue
            folded = copy.deepcopy(layer).requires_grad_(False)
            if folded.bias is None:
                folded.bias = nn.Parameter(folded.weight.new_zeros(folded.weight.shape[0]), False)
            if channels_last and folded.weight.ndim == 4:
                folded.weight.data = as_channels_last(folded.weight.data)
            name = f"_landscape_folded_{len(folds)}"
            gm.add_submodule(name, folded)
            prev.target = name
            node.replace_all_uses_with(prev)
            gm.graph.erase_node(node)
            folds.append((layer, bn, folded))
        convs = blocked.block(gm) if block else []
        owned = {id(f) for _, _, f in folds}
        for conv in convs:  # oneDNN reorders a weight per call: from NCHW without a copy
            source = conv._source[0]
            if id(source) in owned:
                source.weight.data = source.weight.data.contiguous()
        if not (folds or convs):
            return None
        gm.recompile()
        return cls(gm, folds, convs)

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute every folded and every blocked layer from the model's current tensors
        (the folds set by the point itself, :meth:`follow`, excepted)."""
        for i, (layer, bn, folded) in enumerate(self.folds):
            if i in self._affine:
                continue
            s, bias = _fold(layer, bn, lambda t: t)
            folded.bias.copy_(bias)
            torch.mul(layer.weight, _per_channel(s, layer.weight), out=folded.weight)
        for conv in self.convs:
            conv.repack()

    @torch.no_grad()
    def follow(self, targets: Sequence[Target]) -> list[Target]:
        """Set the folded layers from the point itself, where that is affine in the point.

        Where nothing moves a fold's scale ``s`` (neither ``gamma`` nor the running variance:
        Li's ``ignore="biasbn"`` directions), the folded layer is affine in the coefficients,

            ``W' = W0 s + sum_k c_k (dW_k s)``,
            ``b' = b'0 + sum_k c_k ((db_k - dmu_k) s + dbeta_k)``, ``b'0 = (b0 - mu0) s + beta0``,

        so it is set with the model's own tensors (one foreach call for all of them) instead
        of being recomputed per layer by :meth:`refresh`, which from now on skips it. Values
        change by rounding only (float32: ~1e-7 relative). ``targets`` are the tensors the
        engine sets at every point, after the others were set once; returns the targets of
        the folded copies that move (the rest are written here, once).
        """
        found = {id(t[0]): t for t in targets}

        def base(t: Tensor | None) -> Tensor | None:  # its value at the point c = 0
            return found[id(t)][1] if t is not None and id(t) in found else t

        def moves(t: Tensor | None) -> list[tuple[int, Tensor]]:
            return found[id(t)][2] if t is not None and id(t) in found else []

        out: list[Target] = []
        for i, (layer, bn, folded) in enumerate(self.folds):
            if moves(bn.running_var) or moves(bn.weight):
                continue  # s moves: W s is bilinear in the point, refreshed per point
            s, bias = _fold(layer, bn, base)
            w = folded.weight
            scale = _per_channel(s, w)
            w_moves = [(k, _times(d, scale, w)) for k, d in moves(layer.weight)]
            b_moves: dict[int, Tensor] = {}
            for t, factor in ((layer.bias, s), (bn.running_mean, -s), (bn.bias, None)):
                for k, d in moves(t):
                    term = d * factor if factor is not None else d
                    b_moves[k] = b_moves[k] + term if k in b_moves else term
            folded.bias.copy_(bias)
            w.copy_(_times(base(layer.weight), scale, w))
            for live, moved in ((w, w_moves), (folded.bias, sorted(b_moves.items()))):
                if moved:
                    out.append((live, live.clone(), moved))
            self._affine.add(i)
        return out

    def __call__(self, inputs: Tensor) -> Any:
        return self.run(inputs)

    def interpret(self, inputs: Tensor) -> bool:
        """Run the graph traced (:mod:`landscape.slices.traced`) where its trace is allowed and
        agrees with it on ``inputs`` and on one example fewer; True where it now does."""
        self.refresh()  # the bfloat16 casts exist before the trace reads them
        fast = traced.trace(self.graph, inputs)
        if fast is None:
            return False
        same = traced.agree(fast, self.graph, (inputs,), _close)
        if same:
            self.run = fast
        return same

    def agrees(self, model: nn.Module, inputs: Tensor) -> bool:
        """The vehicle's and the model's outputs equal up to rounding on one batch."""
        self.refresh()
        with torch.inference_mode():
            want, got = model(inputs), self.graph(inputs)
        return _close(got, want)


def _fold(layer: nn.Module, bn: nn.Module, value: Any) -> tuple[Tensor, Tensor]:
    """``s = gamma / sqrt(var + eps)`` and the folded bias ``(b - mu) s + beta`` of a layer
    and the BN after it, each tensor read through ``value`` (itself, or its value at the
    point c = 0); a missing ``gamma``, ``beta`` or ``b`` counts as 1, 0 and 0."""
    s = torch.rsqrt(value(bn.running_var) + bn.eps)
    s = s * value(bn.weight) if bn.weight is not None else s
    shift = -value(bn.running_mean) * s + (value(bn.bias) if bn.bias is not None else 0.0)
    b = value(layer.bias) if layer.bias is not None else None
    return s, (shift if b is None else b * s + shift)


def _per_channel(s: Tensor, w: Tensor) -> Tensor:
    """``s`` in ``w``'s dtype, shaped to scale ``w``'s output channels (dim 0)."""
    return s.to(w.dtype).view(-1, *([1] * (w.ndim - 1)))


def _times(t: Tensor, scale: Tensor, like: Tensor) -> Tensor:
    """``t * scale`` laid out as ``like`` (channels_last or not)."""
    return torch.mul(t, scale, out=torch.empty_like(like))


def _close(got: Any, want: Any) -> bool:
    """Equal up to rounding: at ``_FOLD_CHECK_RTOL`` of the largest finite ``|want|``."""
    if not (isinstance(want, Tensor) and isinstance(got, Tensor) and want.shape == got.shape):
        return False
    scale = want.nan_to_num(0.0, 0.0, 0.0).abs().max() if want.numel() else 0.0
    atol = _FOLD_CHECK_RTOL * float(scale)
    return torch.allclose(got, want, rtol=_FOLD_CHECK_RTOL, atol=atol, equal_nan=True)


def vehicle(
    model: nn.Module,
    inputs: Any,
    *,
    channels_last: bool,
    running_stats: bool,
    bf16: bool,
    calls: int | None = None,
) -> Vehicle | None:
    """The fastest vehicle that agrees with ``model`` on ``inputs`` (one batch), or None.

    ``calls``: how many batches the vehicle will run (points x batches); the graph is traced
    only when that is at least :data:`traced.MIN_CALLS` (None: always), as a trace costs
    about as much as the Python it saves over a few hundred calls.

    ``running_stats``: no BatchNorm runs on batch statistics, so BN may be folded and the
    conv trunk blocked. The check runs in float32, where a wrong rewrite shows as O(1) and a
    right one as rounding; under ``bf16`` the blocked trunk then switches to bfloat16.
    """
    dtype = next((p.dtype for p in model.parameters()), None)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    block = BLOCKED and running_stats and dtype is not None and blocked.available(device, dtype)
    if not ((FOLD_BN and running_stats) or block):
        return None
    found = Vehicle.build(model, channels_last, fold_bn=FOLD_BN and running_stats, block=block)
    if found is None:
        return None
    if isinstance(inputs, Tensor) and inputs.ndim > 0:
        inputs = inputs[:CHECK_EXAMPLES]
    if not found.agrees(model, inputs):
        log.warning("the folded/blocked forward disagrees with the model; evaluating the model")
        return None
    if bf16:
        blocked.set_dtype(found.convs, torch.bfloat16)
    if found.convs and (calls is None or calls >= traced.MIN_CALLS):  # the CPU path
        # traced as it will run: under bf16, inside the slice's autocast
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            found.interpret(inputs)
    return found
