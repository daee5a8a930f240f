"""Slices (Li et al. 2018): the loss on lines and planes through parameter space.

Owns :mod:`.directions` (random filter-normalized, checkpoint and PCA directions),
:mod:`.coords` (grid coordinates), :mod:`.engine` (``evaluate_grid``: one pass over the
evaluation data per point, BatchNorm modes, exact restore of the model), :mod:`.fold` (its
fast paths), :mod:`.lines_and_planes` (random line and plane, interpolation, plane through
three models), :mod:`.grid_file` (resumable HDF5 slice files), :mod:`.cells` (a slice
file checked part by part, its writer lock, its cells written in place) and
:mod:`.from_checkpoints` (``landscape slice``: saved checkpoints -> slice file).

May import: :mod:`landscape._params`, :mod:`landscape._device`, :mod:`landscape._files`,
:mod:`landscape._imports` (your loss by import path), :mod:`landscape.distributed`,
:mod:`landscape.data`, :mod:`landscape.store` and :mod:`landscape.models`. Never the probes,
rendering (but for a result's notebook picture), training or the CLI.
"""

from landscape.slices.coords import MAX_POINTS, MAX_POINTS_PER_AXIS, Coords, as_coords, parse_range
from landscape.slices.directions import (
    Ignore,
    Normalization,
    buffer_direction,
    checkpoint_direction,
    normalize_direction,
    orthogonalize,
    pca_directions,
    project,
    random_direction,
    random_directions,
)
from landscape.slices.engine import (
    DEFAULT_RECALIBRATE_BATCHES,
    Precision,
    SliceBNMode,
    SliceResult,
    evaluate_grid,
)
from landscape.slices.from_checkpoints import KINDS, SliceConfig, SliceKind, slice_checkpoint
from landscape.slices.grid_file import SLICE_FORMAT, read_grid, run_grid, slice_file_hash
from landscape.slices.lines_and_planes import interpolate, plane_through, random_line, random_plane

__all__ = [
    # coordinates
    "MAX_POINTS",
    "MAX_POINTS_PER_AXIS",
    "Coords",
    "as_coords",
    "parse_range",
    # directions
    "Ignore",
    "Normalization",
    "buffer_direction",
    "checkpoint_direction",
    "normalize_direction",
    "orthogonalize",
    "pca_directions",
    "project",
    "random_direction",
    "random_directions",
    # evaluation
    "DEFAULT_RECALIBRATE_BATCHES",
    "Precision",
    "SliceBNMode",
    "SliceResult",
    "evaluate_grid",
    "interpolate",
    "plane_through",
    "random_line",
    "random_plane",
    # files
    "SLICE_FORMAT",
    "read_grid",
    "run_grid",
    "slice_file_hash",
    "KINDS",
    "SliceConfig",
    "SliceKind",
    "slice_checkpoint",
]
