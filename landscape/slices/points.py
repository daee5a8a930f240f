"""Setting a slice's points: ``theta <- base + sum_k c_k d_k``, every point from one stored base.

A :data:`Target` is a tensor set at every point with its base and the directions that move
it. :func:`set_point` writes a point tensor by tensor (one foreach copy, one foreach add per
direction); :func:`setter` holds the targets in one flat buffer for the duration of a grid
(:func:`landscape._params.one_buffer`), so that a point is one kernel per direction over one
vector instead of a copy and an add per tensor, with the same values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from landscape._params import one_buffer, slots

__all__ = ["Target", "set_point", "setter", "targets"]

#: A tensor set at every point: ``(live tensor, base, [(k, d_k)])``, i.e.
#: ``live <- base + sum_k c_k d_k``, over the directions ``k`` that move it.
Target = tuple[Tensor, Tensor, list[tuple[int, Tensor]]]


def targets(
    model: nn.Module,
    base: Mapping[str, Tensor],
    directions: Sequence[Mapping[str, Tensor]],
    buf_base: Mapping[str, Tensor],
    buf_dirs: Sequence[Mapping[str, Tensor]] | None,
) -> list[Target]:
    """Every tensor set per point, its base and the directions that move it (not zero ones)."""

    def moves(n: str, ds: Sequence[Mapping[str, Tensor]]) -> list[tuple[int, Tensor]]:
        return [(k, d[n]) for k, d in enumerate(ds) if n in d and bool(d[n].any())]

    own, bufs = dict(model.named_parameters()), dict(model.named_buffers())
    out = [(own[n], b, moves(n, directions)) for n, b in base.items()]
    return out + [(bufs[n], b, moves(n, buf_dirs or ())) for n, b in buf_base.items()]


@torch.no_grad()
def set_point(targets: Sequence[Target], coeffs: Sequence[float]) -> None:
    """``theta <- base + sum_k c_k d_k`` (and buffers alike), each from the stored base: one
    foreach copy and one foreach add per direction (not one call per tensor)."""
    if not targets:
        return
    torch._foreach_copy_([t[0] for t in targets], [t[1] for t in targets])
    for k, c in enumerate(coeffs):
        moved = [(live, d) for live, _, moves in targets for j, d in moves if j == k]
        if c != 0.0 and moved:
            torch._foreach_add_([m[0] for m in moved], [m[1] for m in moved], alpha=c)


@contextlib.contextmanager
def setter(targets: Sequence[Target], n: int) -> Iterator[Callable[[Sequence[float]], None]]:
    """``at(coeffs)`` sets the point ``coeffs`` (``n`` coefficients) as :func:`set_point` does,
    to the last bit (but for the sign of a zero that a direction does not move: ``-0.0 +
    c 0.0`` is ``+0.0`` for ``c > 0``), for the duration of the block: the live tensors are
    held in one flat buffer, their bases and each direction (zero where it does not move a
    tensor) in flat vectors of the same layout, so a point is ``torch.add(base, d_0,
    alpha=c_0)`` and one ``add_`` per further direction. Where the tensors cannot share a
    buffer (mixed dtypes or devices, unusual strides, too large), ``at`` is :func:`set_point`.

    Only for coefficients that are finite (a zero slot times an infinite coefficient would
    be NaN where :func:`set_point` leaves the tensor alone); the slice's coordinates are.
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
                for view, (_, _, moves) in zip(slots(step, live), targets):
                    for j, d in moves:
                        if j == k:
                            view.copy_(d)
        yield lambda coeffs: _at(flat, start, steps, coeffs)


@torch.no_grad()
def _at(flat: Tensor, start: Tensor, steps: Sequence[Tensor], coeffs: Sequence[float]) -> None:
    """``flat = start + sum_k c_k step_k``, rounded as :func:`set_point` rounds it."""
    moving = [(c, step) for c, step in zip(coeffs, steps) if c != 0.0]
    if not moving:
        flat.copy_(start)
        return
    (c, step), *rest = moving
    torch.add(start, step, alpha=c, out=flat)
    for c, step in rest:
        flat.add_(step, alpha=c)
