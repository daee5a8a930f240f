"""The vehicle's graph run by TorchScript's interpreter instead of Python (CPU).

A slice point of a small network is mostly Python: the vehicle's ``torch.fx`` graph calls a
dozen modules per batch through ``nn.Module.__call__``, ~0.1 ms per batch of 512 digits on
one core, 5% of a small VGG's point, which a forward frozen for inference does not pay.
``torch.jit.trace`` records the same graph once; its interpreter then runs it from C++.
The weights stay the model's: the trace reads every parameter and buffer of the graph's
modules by attribute at each call (``prim::GetAttr``), so it follows a point moved in place
(the parameters, the folded copies, the bfloat16 casts of :mod:`landscape.slices.blocked`).

A trace records tensor operations only, so it is taken only where nothing else can happen:
every module the graph calls is of a type whose forward is a fixed sequence of tensor
operations (:data:`PURE`, in eval mode), no module has hooks, and no global hooks are set.
The caller checks the trace against the graph on two batch sizes (a batch size baked into
the trace shows there). ``torch.jit.trace`` is deprecated in torch 2.x: where it fails or is
gone, :func:`trace` returns None and the Python graph runs, as before.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.nn.modules import module as _module

from landscape.data.evaluation import as_batches, move
from landscape.slices.blocked import BlockedConv
from landscape.slices.fused import cross_entropy

__all__ = ["MIN_CALLS", "PURE", "TRACE", "agree", "pure", "score", "scorer", "trace"]

TRACE = True  # switch for benchmarks and tests
#: Batches a grid must run before its vehicle is traced: tracing ``vgg_small`` took 30-50 ms
#: (2-core EPYC, one thread), the Python it removes ~0.1 ms per batch call.
MIN_CALLS = 400

#: Module types whose forward (in eval mode) is a fixed sequence of tensor operations.
PURE: tuple[type[nn.Module], ...] = (
    BlockedConv,
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Bilinear,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.Flatten, nn.Identity, nn.Dropout,
)  # fmt: skip


def _global_hooks() -> bool:
    """Forward hooks set for every module (``register_module_forward_hook`` and its pre)."""
    return bool(_module._global_forward_hooks or _module._global_forward_pre_hooks)


def pure(graph: fx.GraphModule) -> bool:
    """Every module ``graph`` calls is of a :data:`PURE` type (exactly: a parametrized
    module is of a subclass torch makes for it), without hooks, and its BatchNorms and
    dropouts are in eval mode."""
    modules = dict(graph.named_modules())
    for node in graph.graph.nodes:
        if node.op != "call_module":
            continue
        m = modules.get(str(node.target))
        if type(m) not in PURE or m._forward_hooks or m._forward_pre_hooks:
            return False
        if m.training and isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            return False  # the only PURE types whose forward reads the mode
    return not _global_hooks()


def trace(graph: nn.Module, inputs: Tensor | tuple) -> torch.jit.ScriptModule | None:
    """``graph`` traced on ``inputs`` (no gradients), or None where it may not or cannot be."""
    vehicle = graph.graph if isinstance(graph, _Scored) else graph
    if not (TRACE and isinstance(inputs, Tensor | tuple) and pure(vehicle)):
        return None
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # its deprecation and tracer warnings
            return torch.jit.trace(graph, inputs, check_trace=False)
    except Exception:  # any graph the tracer cannot take: the Python graph runs
        return None


class _Scored(nn.Module):
    """One batch's ``[mean cross-entropy, correct predictions, max |logit|]`` (float64)."""

    def __init__(self, graph: fx.GraphModule):
        super().__init__()
        self.graph = graph

    def forward(self, inputs: Tensor, targets: Tensor) -> Tensor:
        out = self.graph(inputs)
        hits = (out.argmax(1) == targets).sum()
        parts = [cross_entropy(out, targets), hits, out.abs().amax()]
        return torch.stack([t.to(torch.float64) for t in parts])


def scorer(graph: fx.GraphModule, inputs: Tensor, targets: Tensor) -> Any:
    """The vehicle's graph, its cross-entropy and its accuracy counts traced as one call per
    batch (no Python between them), or None where not allowed or not equal to the Python
    path on ``(inputs, targets)`` and on one example fewer."""
    if not (isinstance(targets, Tensor) and targets.ndim == 1 and len(targets) > 0):
        return None
    fast = trace(_Scored(graph), (inputs, targets))  # type: ignore[arg-type]
    if fast is None:
        return None

    def close(got: Tensor, want: Tensor) -> bool:
        return torch.allclose(got, want, rtol=1e-5, atol=0.0, equal_nan=True)

    return fast if agree(fast, _Scored(graph), (inputs, targets), close) else None


def agree(fast: Any, slow: Any, args: tuple, close: Any) -> bool:
    """``close(fast(*args), slow(*args))`` on the batch ``args`` and on its first ``n - 1``
    examples, with no gradients: a trace with the batch size baked in fails or differs at
    the second size (an exception counts as a disagreement)."""
    n = len(args[0])
    try:
        with torch.inference_mode():
            for m in {n, max(n - 1, 1)}:
                cut = tuple(a[:m] for a in args)
                if not close(fast(*cut), slow(*cut)):
                    return False
    except Exception:  # e.g. a batch size baked into the trace
        return False
    return True


def score(fast: Any, device: torch.device, data: Any) -> Tensor | None:
    """``[loss, accuracy]`` of one pass over ``data`` through a :func:`scorer`, reduced as
    the engine's own evaluation reduces them; None at an empty batch (the engine's own
    path then evaluates the point)."""
    rows, counts = [], []
    with torch.inference_mode():
        for batch in as_batches(data):
            targets = move(batch[1], device)
            if len(targets) == 0:
                return None
            rows.append(fast(move(batch[0], device), targets))
            counts.append(len(targets))
        table = torch.stack(rows)
        weights = torch.tensor(counts, dtype=torch.float64, device=device)
        loss = (table[:, 0] * weights).sum()
        hits = torch.where(table[:, 2].max() < math.inf, table[:, 1].sum(), math.nan)
        return torch.stack([loss, hits]) / sum(counts)
