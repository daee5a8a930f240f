"""landscape: loss landscapes of neural networks, BatchNorm vs plain.

Probes of Santurkar et al. (2018), slices of Li et al. (2018), the Hessian's eigenvalues,
trace and spectral density, a fair paired trainer and a self-describing HDF5 store. The
public API is re-exported here, grouped by theme; the package is laid out in wings by
concept (``docs/architecture.md``).
"""

from __future__ import annotations

from landscape._device import cpu_description, keep_freed_memory
from landscape.comparison import read_sweep
from landscape.curvature import (
    HessianOperator,
    curvature_along,
    hessian_density,
    hessian_eigenvalues,
    hessian_trace,
)
from landscape.data import (
    DataError,
    Dataset,
    batch_indices,
    batch_loss,
    dataset_batches,
    load_dataset,
)
from landscape.models import MODELS, ModelSpec, create_model, register_model
from landscape.probes import (
    H5Sink,
    ICSResult,
    ProbeCallback,
    ProbeResult,
    ScaleInvarianceResult,
    StepSizes,
    gradient_probe,
    ics,
    scale_invariance,
)
from landscape.slices import (
    SliceResult,
    checkpoint_direction,
    evaluate_grid,
    interpolate,
    normalize_direction,
    orthogonalize,
    parse_range,
    pca_directions,
    plane_through,
    random_direction,
    random_directions,
    random_line,
    random_plane,
    read_grid,
    run_grid,
)
from landscape.store import CheckpointError, load_checkpoint, package_version, save_checkpoint
from landscape.studies import SweepConfig, init_scale_sweep
from landscape.train import TrainConfig, train_pair

__version__ = package_version()

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
    # BN's scale invariance (Ioffe & Szegedy 2015, Sec. 3.3)
    "ScaleInvarianceResult",
    "scale_invariance",
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
    # curvature (Ghorbani et al. 2019; Yao et al. 2020)
    "HessianOperator",
    "curvature_along",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
    # many passes: glibc keeps freed memory (the CLI does this at start)
    "keep_freed_memory",
    # the CPU a result came from (model name and vector extensions), for its provenance
    "cpu_description",
    # data, and batches of any form
    "batch_loss",
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
    # does BN make large initial weights safe? (Ioffe & Szegedy 2015; science.md s. 2, 5)
    "SweepConfig",
    "init_scale_sweep",
    "read_sweep",
]
