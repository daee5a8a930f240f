"""Probes (Santurkar et al. 2018): the landscape along the gradient, and internal
covariate shift.

Owns :mod:`.gradient` (``gradient_probe``, ``StepSizes``: loss variation, gradient
predictiveness and effective beta-smoothness along the gradient or any direction),
:mod:`.covariate_shift` (``ics``, Definition 2.1), :mod:`.core` (what both share), :mod:`.callback`
(``ProbeCallback`` for any training loop), :mod:`.sinks` (``H5Sink``: results -> HDF5),
:mod:`.columns` (what each column written means: its ``description``),
:mod:`.inline` (the trainer's probes, with the optimizer's actual update),
:mod:`.from_checkpoints` (``landscape probe``: offline, resumable probes of saved
checkpoints) with :mod:`.offline_file` (their files' names and checked reader), and
:mod:`.scale_invariance` (BN's invariance to the scale of the weights before it, Ioffe &
Szegedy Sec. 3.3) with :mod:`.scale_check` (``landscape check scale-invariance``: a
checkpoint or a model name, the BN network beside its plain twin).

May import: :mod:`landscape._params`, :mod:`landscape._device`, :mod:`landscape._files`,
:mod:`landscape.distributed`, :mod:`landscape.data`, :mod:`landscape.store` and
:mod:`landscape.models`. Never training (which imports the probes), rendering (but for a
result's notebook picture) or the CLI.
"""

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
from landscape.probes.scale_check import ScaleCheck, ScaleCheckConfig, check_scale_invariance
from landscape.probes.scale_invariance import (
    LayerCheck,
    ScaleInvarianceResult,
    bn_inputs,
    scale_invariance,
)
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
    # in a training loop
    "H5Sink",
    "InlineProbes",
    "ProbeCallback",
    "Sink",
    # saved checkpoints
    "OfflineProbeConfig",
    "probe_checkpoints",
    "read_offline_probes",
    # BN's scale invariance
    "LayerCheck",
    "ScaleCheck",
    "ScaleCheckConfig",
    "ScaleInvarianceResult",
    "bn_inputs",
    "check_scale_invariance",
    "scale_invariance",
]
