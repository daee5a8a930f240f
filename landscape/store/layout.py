"""The layout of a run directory, spelled once (docs/hdf5-schema.md, "Run directory")::

<run>/run.h5                                 training log, inline probes, ICS
<run>/probes.h5                              offline probes (landscape probe)
<run>/hessian.h5                             Hessians of the checkpoints (landscape hessian)
<run>/checkpoints/<variant>/step_XXXXXXX.pt  checkpoints
<run>/slices/                                slice files (landscape slice)
<run>/figures/                               rendered figures

The networks of a pair are the variants ``bn`` and ``plain`` (:data:`VARIANTS`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = [
    "CHECKPOINTS",
    "FIGURES",
    "HESSIAN_FILE",
    "PROBES_FILE",
    "RUN_FILE",
    "SLICES",
    "VARIANTS",
    "Variant",
    "checkpoint_dir",
]

RUN_FILE = "run.h5"
PROBES_FILE = "probes.h5"
HESSIAN_FILE = "hessian.h5"
CHECKPOINTS = "checkpoints"
SLICES = "slices"
FIGURES = "figures"

Variant = Literal["bn", "plain"]
VARIANTS: tuple[Variant, ...] = ("bn", "plain")


def checkpoint_dir(run: str | Path, variant: str) -> Path:
    """``<run>/checkpoints/<variant>``: where a variant's checkpoints are written."""
    return Path(run) / CHECKPOINTS / variant
