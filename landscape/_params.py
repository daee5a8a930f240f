"""Parameter-dict algebra and exact model-state preservation.

Parameters and directions are ``dict[str, Tensor]`` keyed by the names of
``model.named_parameters()``; every helper here keeps that keying so that a direction can be
stored, reloaded and applied to a rebuilt model by name.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

Params = dict[str, Tensor]

__all__ = [
    "ModelSnapshot",
    "Params",
    "Target",
    "as_channels_last",
    "channels_last",
    "dot",
    "flatten",
    "get_params",
    "norm",
    "one_buffer",
    "point_setter",
    "preserved",
    "rng_preserved",
    "set_point",
    "slots",
    "unflatten",
]


def get_params(model: nn.Module) -> Params:
    """Detached clones of the model's trainable parameters (``requires_grad``), by name."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def dot(x: Mapping[str, Tensor], y: Mapping[str, Tensor]) -> Tensor:
    """Euclidean inner product ``sum_n <x_n, y_n>`` as a 0-d tensor (no host sync)."""
    terms = [(x[n] * y[n]).sum() for n in x]
    return torch.stack(terms).sum() if terms else torch.zeros(())


def norm(x: Mapping[str, Tensor]) -> Tensor:
    """Euclidean norm of the concatenation of all tensors, as a 0-d tensor: the norm of the
    per-tensor norms (one foreach call, not two small ops per tensor)."""
    values = list(x.values())
    if not values:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(values)))


def flatten(x: Mapping[str, Tensor]) -> Tensor:
    """Concatenate all tensors (in dict order) into one 1-D tensor."""
    return torch.cat([v.reshape(-1) for v in x.values()])


def unflatten(vec: Tensor, like: Mapping[str, Tensor]) -> Params:
    """Inverse of :func:`flatten`, shaped and keyed like ``like``."""
    out: Params = {}
    i = 0
    for n, v in like.items():
        out[n] = vec[i : i + v.numel()].view_as(v)
        i += v.numel()
    if i != vec.numel():
        raise ValueError(f"vector has {vec.numel()} entries, the parameters {i}")
    return out


@dataclass
class ModelSnapshot:
    """Everything a probe could disturb: tensors, gradients, train/eval flags.

    ``state`` holds clones of every parameter and buffer (BN running statistics and
    ``num_batches_tracked`` included), keyed by their ``state_dict`` names; ``grads`` the
    ``.grad`` of each parameter (or None); ``modes`` the ``training`` flag of every submodule.
    The live objects are kept beside them, so :meth:`restore` writes back without walking the
    module tree again (one walk per snapshot, not four: take and restore ~0.5 -> ~0.2 ms on a
    small VGG between passes).
    """

    state: dict[str, Tensor]
    grads: dict[str, Tensor | None]
    modes: dict[str, bool]
    _live: list[Tensor] = field(default_factory=list, repr=False)  # state's, in order
    _params: list[nn.Parameter] = field(default_factory=list, repr=False)  # grads' order
    _modules: list[nn.Module] = field(default_factory=list, repr=False)  # modes' order

    @classmethod
    def take(cls, model: nn.Module) -> ModelSnapshot:
        modules, params, buffers = _walk(model)
        live = [t.detach() for _, t in (*params, *buffers)]
        state = {n: t.clone() for (n, _), t in zip((*params, *buffers), live)}
        grads = {n: (p.grad.detach().clone() if p.grad is not None else None) for n, p in params}
        modes = {n: m.training for n, m in modules}
        kept = [p for _, p in params], [m for _, m in modules]
        return cls(state, grads, modes, live, *kept)

    @torch.no_grad()
    def restore(self) -> None:
        """Put everything back (the snapshot's gradient tensors become the model's)."""
        if self._live:  # foreach refuses empty lists: a model without tensors has nothing
            torch._foreach_copy_(self._live, list(self.state.values()))
        for p, g in zip(self._params, self.grads.values()):
            p.grad = g
        for m, training in zip(self._modules, self.modes.values()):
            m.training = training


def _walk(model: nn.Module) -> tuple[list, list, list]:
    """``named_modules()``, ``named_parameters()`` and ``named_buffers()`` in one walk of
    the tree (the same names, order and sharing: a module or tensor reached twice counts
    once, under its first name)."""
    modules = list(model.named_modules())
    params: list[tuple[str, nn.Parameter]] = []
    buffers: list[tuple[str, Tensor]] = []
    seen: set[int] = set()
    for prefix, m in modules:
        for out, own in ((params, m._parameters), (buffers, m._buffers)):
            for name, t in own.items():
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    out.append((f"{prefix}.{name}" if prefix else name, t))
    return modules, params, buffers


@contextlib.contextmanager
def rng_preserved() -> Iterator[None]:
    """Restore Python's, NumPy's, torch's CPU and CUDA generators on exit.

    The states are kept as the generators give them (``landscape.store.rng`` converts them
    for checkpoints, which costs ~10x more: a probe or slice pays this once per call).
    """
    python, numpy = random.getstate(), np.random.get_state()
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[ModelSnapshot]:
    """Leave ``model`` and the global RNGs exactly as found, whatever happens inside.

    Restores parameters, buffers, ``.grad`` and train/eval flags bit for bit; used by
    every probe and slice so that an evaluation never moves the caller's model.
    """
    snap = ModelSnapshot.take(model)
    with rng_preserved():
        try:
            yield snap
        finally:
            snap.restore()


@contextlib.contextmanager
def channels_last(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """4-D floating parameters held in channels_last inside; the original tensors put back.

    Convolutions follow their weight's layout, so the activations go channels_last too: on
    the CPU a small VGG's forward and backward passes take 19-24% less time (batch 128 of 8x8
    digits, one thread; benchmarks/README.md), with the same values up to rounding. Slices
    and the gradient probe evaluate inside it.
    """
    swapped = []
    for p in model.parameters() if enabled else ():
        if p.ndim == 4 and p.is_floating_point():
            swapped.append((p, p.data))
            p.data = as_channels_last(p.data)
    try:
        yield
    finally:
        for p, original in swapped:
            p.data = original


def as_channels_last(t: Tensor) -> Tensor:
    """A copy of the 4-D ``t`` with channels_last's own strides, even where its sizes make
    the layout ambiguous: ``t.contiguous(memory_format=torch.channels_last)`` returns a
    weight with one input channel (or a 1x1 kernel) as it is, with strides that torch's
    layout choice reads as NCHW, so that convolution and everything after it ran NCHW
    (a small VGG's passes on one-channel digits took 12-17% longer; benchmarks/README.md)."""
    return torch.empty_like(t, memory_format=torch.channels_last).copy_(t)


#: :func:`one_buffer` holds tensors of up to this many bytes in all (beyond it a point costs
#: so much more than its few kernels that the copies are not worth their memory).
ONE_BUFFER_BYTES = 64 * 2**20


def slots(buffer: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Views of the flat ``buffer``, one per tensor of ``like`` in order, each with that
    tensor's shape and strides (see :func:`one_buffer`)."""
    views, offset = [], buffer.storage_offset()  # the buffer may itself be a view (a row)
    for t in like:
        views.append(buffer.as_strided(t.shape, t.stride(), offset))
        offset += t.numel()
    return views


@contextlib.contextmanager
def one_buffer(tensors: Sequence[Tensor]) -> Iterator[Tensor | None]:
    """Inside, ``tensors`` (parameters or buffers) are views of one flat buffer, each in its
    own layout, and the buffer is yielded: a point ``theta0 + alpha d`` is then one kernel over
    one vector, not a copy and an add over every tensor (the gradient probe: ~0.05 ms of each
    of a small network's passes, between passes that evict the caches).

    Writes through the buffer do not move a tensor's own ``_version``, so nothing that caches
    on versions may read the tensors inside (the slices' BN folds no longer do: they are set
    from the point itself or recomputed at every point). Yields None, changing nothing, unless
    the tensors are of one dtype and device, each dense (contiguous, or channels_last 4-D),
    :data:`ONE_BUFFER_BYTES` at most in all. On exit, each tensor's ``.data`` is its own
    storage again, holding the values written inside.
    """
    kind = (tensors[0].dtype, tensors[0].device) if tensors else None
    size = sum(t.numel() for t in tensors)
    if (
        not tensors
        or size * tensors[0].element_size() > ONE_BUFFER_BYTES
        or not all(
            (t.dtype, t.device) == kind and t.layout == torch.strided and _dense(t) for t in tensors
        )
    ):
        yield None
        return
    flat = tensors[0].new_empty(size)
    views, own = slots(flat, tensors), [t.data for t in tensors]
    with torch.no_grad():
        torch._foreach_copy_(views, own)
    try:
        for t, view in zip(tensors, views):
            t.data = view
        yield flat
    finally:
        for t, data in zip(tensors, own):
            t.data = data
        with torch.no_grad():
            torch._foreach_copy_(own, views)


def _dense(t: Tensor) -> bool:
    """Contiguous, or channels_last 4-D: a slot of a flat buffer can take its strides."""
    return t.is_contiguous() or (t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last))


#: A tensor set at every point: ``(live tensor, base, [(k, d_k)])``, i.e.
#: ``live <- base + sum_k c_k d_k`` over the directions ``k`` that move it (the slices' grid
#: points, the probe's steps along one direction).
Target = tuple[Tensor, Tensor, list[tuple[int, Tensor]]]


@torch.no_grad()
def set_point(targets: Sequence[Target], coeffs: Sequence[float]) -> None:
    """``live <- base + sum_k c_k d_k`` for every target, each from its stored base (no drift):
    one foreach copy and one foreach add per direction, not one call per tensor. A
    coefficient beyond the dtype's range (no such scalar) gives an infinite point, recorded,
    not an error."""
    if not targets:
        return
    torch._foreach_copy_([t[0] for t in targets], [t[1] for t in targets])
    for k, c in enumerate(coeffs):
        moved = [(live, d) for live, _, moves in targets for j, d in moves if j == k]
        if c == 0.0 or not moved:
            continue
        lives, ds = [m[0] for m in moved], [m[1] for m in moved]
        if abs(c) > torch.finfo(lives[0].dtype).max:
            torch._foreach_add_(lives, torch._foreach_mul(ds, c))
        else:
            torch._foreach_add_(lives, ds, alpha=c)


@contextlib.contextmanager
def point_setter(targets: Sequence[Target], n: int) -> Iterator[Callable[[Sequence[float]], None]]:
    """``at(coeffs)`` sets the point ``coeffs`` (``n`` coefficients) as :func:`set_point` does,
    to the last bit (but for the sign of a zero that a direction does not move: ``-0.0 +
    c 0.0`` is ``+0.0`` for ``c > 0``), for the duration of the block: the live tensors are
    held in one flat buffer (:func:`one_buffer`), their bases and each direction (zero where
    it does not move a tensor) in flat vectors of the same layout, so a point is one
    ``torch.add`` per direction over one vector instead of a copy and an add per tensor (on a
    small network ~0.1 ms of a slice point or a probe's step between passes that evict the
    caches). Where the tensors cannot share a buffer (mixed dtypes or devices, unusual
    strides, too large), ``at`` is :func:`set_point`.

    A direction that leaves a tensor alone is zero there, so a point with an infinite
    coefficient is NaN in that tensor where :func:`set_point` leaves it at its base.
    """
    live = [t[0] for t in targets]
    with one_buffer(live) as flat:
        if flat is None:
            yield lambda coeffs: set_point(targets, coeffs)
            return
        start, steps = torch.empty_like(flat), [torch.zeros_like(flat) for _ in range(n)]
        with torch.no_grad():
            torch._foreach_copy_(slots(start, live), [t[1] for t in targets])
            for k, step in enumerate(steps):
                pairs = [(view, d) for view, (_, _, moves) in zip(slots(step, live), targets)
                         for j, d in moves if j == k]  # fmt: skip
                if pairs:
                    torch._foreach_copy_([p[0] for p in pairs], [p[1] for p in pairs])
        yield lambda coeffs: _at(flat, start, steps, coeffs)


@torch.no_grad()
def _at(flat: Tensor, start: Tensor, steps: Sequence[Tensor], coeffs: Sequence[float]) -> None:
    """``flat = start + sum_k c_k step_k``, rounded as :func:`set_point` rounds it."""
    source = start
    for c, step in zip(coeffs, steps):
        if c == 0.0:
            continue
        if abs(c) > torch.finfo(flat.dtype).max:  # as set_point: the point is inf, recorded
            torch.add(source, step * c, out=flat)
        else:
            torch.add(source, step, alpha=c, out=flat)
        source = flat
    if source is start:  # every coefficient zero: the base
        flat.copy_(start)
