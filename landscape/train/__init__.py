"""Training: BN and plain networks as fair pairs, with checkpoints, logs, inline probes and
the inline Hessian.

Owns :mod:`.config` (``TrainConfig``, everything that determines a run, saved as JSON with
every output, ``hessian_*`` fields included; ``fill_defaults`` reads a configuration stored
before a field existed as that field's default; the checkpoint schedule, the lr of a step,
the optimizer), :mod:`.loop` (``train_pair``: one readable loop writing one run directory,
resumable bit for bit; ``--hessian-every`` rows in ``/hessian/<variant>``) and
:mod:`.resume` (what a resume checks before it writes anything, and the restore) and
:mod:`.activations` (``ActivationRecorder``: a step hook recording percentiles of chosen
units' activations over training, Santurkar et al. Figs. 1-2).

May import: the numerical wings (:mod:`landscape.probes` for the inline probes,
:mod:`landscape.curvature` for the inline Hessian), and below them :mod:`landscape._params`,
:mod:`landscape._device`, :mod:`landscape._files`, :mod:`landscape.data`,
:mod:`landscape.models` and :mod:`landscape.store`. The numerical wings never import
training.
"""

from landscape.train.activations import DEFAULT_PERCENTILES, ActivationRecorder
from landscape.train.config import (
    TrainConfig,
    checkpoint_schedule,
    literal_values,
    lr_at,
    make_optimizer,
)
from landscape.train.loop import PairResult, VariantResult, evaluate, train_pair

__all__ = [
    "DEFAULT_PERCENTILES",
    "ActivationRecorder",
    "PairResult",
    "TrainConfig",
    "VariantResult",
    "checkpoint_schedule",
    "evaluate",
    "literal_values",
    "lr_at",
    "make_optimizer",
    "train_pair",
]
