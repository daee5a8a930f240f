"""landscape: loss landscapes of neural networks, BatchNorm vs plain.

Probes of Santurkar et al. (2018), slices of Li et al. (2018), a fair paired trainer and a
self-describing HDF5 store. The public API is re-exported here, grouped by theme.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("landscape")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import DataError, Dataset, batch_indices, load_dataset
from .directions import (
    checkpoint_direction,
    normalize_direction,
    orthogonalize,
    pca_directions,
    random_direction,
    random_directions,
)
from .grids import read_grid, run_grid
from .models import MODELS, ModelSpec, create_model, register_model
from .probes import ICSResult, ProbeCallback, ProbeResult, StepSizes, gradient_probe, ics
from .recording import H5Sink
from .slice_inputs import dataset_batches
from .slices import (
    SliceResult,
    evaluate_grid,
    interpolate,
    parse_range,
    plane_through,
    random_line,
    random_plane,
)
from .train import TrainConfig, train_pair

__all__ = [
    "__version__",
    # models
    "MODELS",
    "ModelSpec",
    "create_model",
    "register_model",
    # probes (Santurkar et al. 2018)
    "ICSResult",
    "ProbeCallback",
    "ProbeResult",
    "StepSizes",
    "gradient_probe",
    "ics",
    "H5Sink",
    # directions and slices (Li et al. 2018)
    "checkpoint_direction",
    "normalize_direction",
    "orthogonalize",
    "pca_directions",
    "random_direction",
    "random_directions",
    "SliceResult",
    "dataset_batches",
    "evaluate_grid",
    "interpolate",
    "parse_range",
    "plane_through",
    "random_line",
    "random_plane",
    "read_grid",
    "run_grid",
    # data
    "DataError",
    "Dataset",
    "batch_indices",
    "load_dataset",
    # training and checkpoints
    "CheckpointError",
    "TrainConfig",
    "load_checkpoint",
    "save_checkpoint",
    "train_pair",
]
