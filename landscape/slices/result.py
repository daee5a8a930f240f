"""What a slice returns: coordinates, values keyed by metric, metadata and directions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from landscape._params import Params

__all__ = ["SliceResult"]


@dataclass(repr=False)
class SliceResult:
    """Values of a 1D or 2D slice.

    Attributes:
        x: Coordinates along ``d1``, shape (nx,).
        y: Coordinates along ``d2``, shape (ny,), or None for a 1D slice.
        values: Metric name -> array of shape (ny, nx) (``values[j, i]`` is the point
            ``(x[i], y[j])``: x runs along columns) or (nx,); NaN where not computed.
        meta: JSON-safe description (kind, seed, normalization, ignore, bn_mode, ...).
        directions: The directions ``[d1]`` or ``[d1, d2]`` keyed by parameter name.
        computed: Boolean mask of the evaluated points, shaped like the values.
        buffer_directions: Directions of the floating buffers, if they were moved.
    """

    x: np.ndarray
    y: np.ndarray | None
    values: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    directions: list[Params] = field(default_factory=list)
    computed: np.ndarray | None = None
    buffer_directions: list[Params] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.y), len(self.x))

    def __repr__(self) -> str:  # pragma: no mutate block
        """One line: what, where, the value ranges, how much is computed (no tensors)."""
        grid = "×".join(map(str, self.shape[::-1]))
        axes = f"x {_span(self.x)}" + ("" if self.y is None else f", y {_span(self.y)}")
        values = ", ".join(f"{k} {_span(v)}" for k, v in self.values.items())
        done = "?" if self.computed is None else int(np.sum(self.computed))
        tensors = sum(len(d) for d in self.directions)
        return (f"SliceResult({self.meta.get('kind', 'grid')} {grid} over {axes}; {values}; "
                f"{done} of {int(np.prod(self.shape))} computed; bn_mode "
                f"{self.meta.get('bn_mode', '?')}; {len(self.directions)} direction(s), {tensors} "
                "tensors)")  # fmt: skip

    def _repr_png_(self) -> bytes:  # pragma: no mutate block
        """The slice as a picture, for notebooks (drawn by :mod:`landscape.render` only then)."""
        from landscape.render.notebook import png_of  # display only: see docs/architecture.md

        return png_of(self)


def _span(values: np.ndarray) -> str:
    """``lo..hi`` of the finite values (3 significant digits), or "no finite value"."""
    finite = np.asarray(values, dtype=float)[np.isfinite(np.asarray(values, dtype=float))]
    return f"{finite.min():.3g}..{finite.max():.3g}" if finite.size else "no finite value"
