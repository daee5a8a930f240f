"""oneDNN's blocked memory layout for the convolution trunk of a slice's vehicle (CPU).

A forward frozen for inference (``torch.jit.freeze`` + ``optimize_for_inference``) is fast on
the CPU mostly because its conv trunk stays in oneDNN's blocked layout (``nChw16c``: channels
in blocks of 16, innermost) from the first convolution to the last pooling, so no layer
reorders its activations. Freezing bakes the weights in, which a slice cannot do (they move
at every point), but it can do the rest: oneDNN's convolution takes an ordinary (dense)
weight next to a blocked input and reorders it for its kernel at every call, as it does a
weight converted with ``to_mkldnn`` (measured the same speed, equal values), so each
convolution reads its source's current weight and bias at the call and a point costs no
conversion at all. The activations enter the blocked layout at the first convolution of a
chain and leave it (``to_dense``) where an operation that oneDNN does not run in it needs
them. ReLU and max
pooling run in the layout; everything else sees ordinary tensors.

The values are the convolution's in another summation order: float32 rounding, ~1e-7
relative (``tests/slices/test_blocked.py``). With ``dtype=torch.bfloat16`` the trunk runs in
bf16 (oneDNN's avx512_bf16/AMX kernels), the rest under the caller's autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

__all__ = ["BlockedConv", "available", "block", "set_dtype"]

_RELU_FUNCTIONS = (torch.relu, torch.relu_, F.relu)
_RELU_METHODS = ("relu", "relu_")


def available(device: torch.device, dtype: torch.dtype) -> bool:
    """The blocked layout runs here: a CPU with oneDNN, and float32 parameters."""
    return device.type == "cpu" and dtype == torch.float32 and torch.backends.mkldnn.is_available()


def _convertible(conv: nn.Module) -> bool:
    """A plain 2-D convolution whose arguments oneDNN takes as they are."""
    return (
        type(conv) is nn.Conv2d
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.weight.dtype == torch.float32
        and conv.weight.device.type == "cpu"
        and not (conv._forward_hooks or conv._forward_pre_hooks)
        and not torch.nn.utils.parametrize.is_parametrized(conv)
    )


class BlockedConv(nn.Module):
    """``conv2d(x; W, b)`` of ``source``, on oneDNN tensors.

    In float32 ``W`` and ``b`` are ``source``'s own tensors, read at every call, so the
    module follows a source that moves with nothing to do per point. In bfloat16 they are
    cast copies (buffers, written in place by :meth:`repack` once per point, so a traced
    graph that reads them follows too). Dense inputs enter the blocked layout here; the
    output stays in it.
    """

    def __init__(self, source: nn.Conv2d, dtype: torch.dtype = torch.float32):
        super().__init__()
        self._source = (source,)  # a tuple: not registered as a submodule (not owned)
        self.dtype = dtype
        self.args = (list(source.padding), list(source.stride), list(source.dilation))
        self.groups = source.groups
        self.register_buffer("cast_weight", None, persistent=False)
        self.register_buffer("cast_bias", None, persistent=False)

    @torch.no_grad()
    def repack(self) -> None:
        """``W`` and ``b`` of ``source``, now, cast to ``dtype`` (nothing to do in float32)."""
        source = self._source[0]
        if self.dtype == source.weight.dtype:  # float32 reads the source at the call
            return
        for name, t in (("cast_weight", source.weight), ("cast_bias", source.bias)):
            have = getattr(self, name)
            if t is None or have is None or have.dtype != self.dtype:
                setattr(self, name, None if t is None else t.detach().to(self.dtype))
            else:
                have.copy_(t)

    def forward(self, x: Tensor) -> Tensor:
        source = self._source[0]
        if self.dtype == source.weight.dtype:
            w, b = source.weight.detach(), source.bias
            b = None if b is None else b.detach()
        else:
            if self.cast_weight is None:
                self.repack()
            w, b = self.cast_weight, self.cast_bias
        if not x.is_mkldnn:
            x = x.to(self.dtype).contiguous().to_mkldnn()
        padding, stride, dilation = self.args
        return torch.mkldnn_convolution(x, w, b, padding, stride, dilation, self.groups)


def _runs_blocked(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """ "conv", "follows" (ReLU, max pooling: blocked when their input is) or None."""
    if node.op == "call_module":
        m = modules.get(str(node.target))
        if _convertible(m):
            return "conv"
        if type(m) is nn.ReLU:
            return "follows"
        if type(m) is nn.MaxPool2d and m.dilation in (1, (1, 1)) and not m.return_indices:
            return "follows"
    elif node.op == "call_function" and node.target in _RELU_FUNCTIONS:
        return "follows"
    elif node.op == "call_method" and node.target in _RELU_METHODS:
        return "follows"
    return None


def block(gm: fx.GraphModule, dtype: torch.dtype = torch.float32) -> list[BlockedConv]:
    """Rewrite ``gm`` in place so that its conv chains run in the blocked layout.

    A convolution goes blocked; a ReLU or max pooling goes blocked when its input is; every
    use of a blocked value by anything else goes through ``to_dense``. Returns the new
    convolution modules (call :meth:`BlockedConv.repack` after their sources change); an
    empty list leaves ``gm`` as it was.
    """
    modules = dict(gm.named_modules())
    blocked: set[fx.Node] = set()
    convs: list[BlockedConv] = []
    for node in list(gm.graph.nodes):
        kind = _runs_blocked(node, modules)
        src = node.args[0] if node.args else None
        others = [*node.args[1:], *node.kwargs.values()]
        if (
            kind is None
            or not isinstance(src, fx.Node)
            or any(isinstance(a, fx.Node) for a in others)
            or (kind == "follows" and src not in blocked)
        ):
            continue
        if kind == "conv":
            conv = BlockedConv(modules[str(node.target)], dtype)
            name = f"_landscape_blocked_{len(convs)}"
            gm.add_submodule(name, conv)
            node.target = name
            convs.append(conv)
        blocked.add(_in_place(gm, node, src) if _is_relu(node, modules) else node)
    for node in blocked:
        outside = [u for u in node.users if u not in blocked]
        if not outside:
            continue
        with gm.graph.inserting_after(node):
            dense = gm.graph.call_method("to_dense", (node,))
        for user in outside:
            user.replace_input_with(node, dense)
    if convs:
        gm.recompile()
    return convs


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return type(modules.get(str(node.target))) is nn.ReLU
    return node.target in (*_RELU_FUNCTIONS, *_RELU_METHODS)


def _in_place(gm: fx.GraphModule, relu: fx.Node, src: fx.Node) -> fx.Node:
    """A ReLU that is its input's only use overwrites it (no new tensor per layer)."""
    if len(src.users) != 1:
        return relu
    with gm.graph.inserting_before(relu):
        new = gm.graph.call_function(torch.relu_, (src,))
    relu.replace_all_uses_with(new)
    gm.graph.erase_node(relu)
    return new


def set_dtype(convs: list[BlockedConv], dtype: torch.dtype) -> None:
    """Run the blocked trunk in ``dtype`` (float32 or bfloat16) from the next repack."""
    for conv in convs:
        conv.dtype = dtype
        conv.cast_weight = conv.cast_bias = None
