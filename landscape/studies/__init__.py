"""Studies: sweeps of training runs that answer one question each.

Owns :mod:`.init_scale` (does BN make large initial weights safe? BN/plain pairs over init
scales, activations and seeds, into one resumable sweep file).

May import: :mod:`landscape.train` (every cell is a trained pair), :mod:`landscape.comparison`
(outcomes, the sweep file), and below them :mod:`landscape.data`, :mod:`landscape.models`,
:mod:`landscape.store`, :mod:`landscape._device` and :mod:`landscape._files`. Never
rendering or the CLI.
"""

from landscape.studies.init_scale import (
    DEFAULT_ACTIVATIONS,
    DEFAULT_SCALES,
    DEFAULT_SEEDS,
    GRAD_STEPS,
    SweepConfig,
    default_train,
    init_scale_sweep,
    weight_layers,
)

__all__ = [
    "DEFAULT_ACTIVATIONS",
    "DEFAULT_SCALES",
    "DEFAULT_SEEDS",
    "GRAD_STEPS",
    "SweepConfig",
    "default_train",
    "init_scale_sweep",
    "weight_layers",
]
