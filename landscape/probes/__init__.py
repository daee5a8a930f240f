"""Probes (Santurkar et al. 2018): the landscape along the gradient, and internal
covariate shift.

Owns :mod:`.gradient` (``gradient_probe``, ``StepSizes``: loss variation, gradient
predictiveness and effective beta-smoothness along the gradient or any direction),
:mod:`.covariate_shift` (``ics``, Definition 2.1), :mod:`.activations`
(``activation_quantiles``: the distribution of layers' inputs, Fig. 1c), :mod:`.core` (what
they share), :mod:`.callback`
(``ProbeCallback`` for any training loop), :mod:`.sinks` (``H5Sink``: results -> HDF5),
:mod:`.columns` (what each column written means: its ``description``),
:mod:`.inline` (the trainer's probes, with the optimizer's actual update) and
:mod:`.from_checkpoints` (``landscape probe``: offline, resumable probes of saved
checkpoints) with :mod:`.offline_file` (their files' names and checked reader).

May import: :mod:`landscape._params`, :mod:`landscape._device`, :mod:`landscape._files`,
:mod:`landscape.distributed`, :mod:`landscape.data`, :mod:`landscape.store` and
:mod:`landscape.models`. Never training (which imports the probes), rendering (but for a
result's notebook picture) or the CLI.
"""

from landscape.probes.activations import (
    ACTIVATION_QUANTILES,
    ActivationResult,
    activation_quantiles,
)
from landscape.probes.callback import ProbeCallback, Sink
from landscape.probes.core import BNMode, check_bn_mode
from landscape.probes.covariate_shift import ICSResult, ics
from landscape.probes.from_checkpoints import (
    OfflineProbeConfig,
    probe_checkpoints,
    read_offline_probes,
)
from landscape.probes.gradient import (
    DEFAULT_STEP_COUNT,
    DLN_MULTIPLIERS,
    VGG_MULTIPLIERS,
    Direction,
    ProbeResult,
    StepSizes,
    gradient_probe,
)
from landscape.probes.inline import InlineProbes
from landscape.probes.sinks import H5Sink

__all__ = [
    # gradient probe
    "DEFAULT_STEP_COUNT",
    "DLN_MULTIPLIERS",
    "VGG_MULTIPLIERS",
    "BNMode",
    "Direction",
    "ProbeResult",
    "StepSizes",
    "check_bn_mode",
    "gradient_probe",
    # internal covariate shift
    "ICSResult",
    "ics",
    # the distribution of layers' inputs (Fig. 1c)
    "ACTIVATION_QUANTILES",
    "ActivationResult",
    "activation_quantiles",
    # in a training loop
    "H5Sink",
    "InlineProbes",
    "ProbeCallback",
    "Sink",
    # saved checkpoints
    "OfflineProbeConfig",
    "probe_checkpoints",
    "read_offline_probes",
]
