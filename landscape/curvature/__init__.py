"""Curvature: Hessian-vector products, eigenvalues, trace, spectral density and curvature
along a direction, of the mean loss over evaluation data (Ghorbani et al. 2019; Yao et al.
2020).

Owns :mod:`.operator` (``HessianOperator``: exact products by double backward or
forward-over-reverse, BN mode explicit, the model left as found), :mod:`.spectrum`
(``hessian_eigenvalues`` by Lanczos, ``curvature_along``), :mod:`.stochastic` (Hutchinson,
Hutch++, Lanczos and stochastic Lanczos quadrature on any ``matvec``), :mod:`.estimates`
(``hessian_trace``, ``hessian_density``), :mod:`.inline` (``InlineHessian``: the trainer's
``--hessian-every``, rows of ``/hessian/<variant>`` in the run log), :mod:`.from_checkpoints`
(``hessian_checkpoints``: ``landscape hessian``, every checkpoint into one resumable file),
:mod:`.hessian_file` (``read_hessian_file``, the checked reader of those files) and
:mod:`.columns` (``HESSIAN_COLUMNS``: what each column of a Hessian series holds).

May import: :mod:`landscape._params`, :mod:`landscape._device`, :mod:`landscape._files`,
:mod:`landscape.data` and :mod:`landscape.store`. Never the probes or slices (siblings),
training, rendering or the CLI; training imports this wing (the inline Hessian), never the
reverse.
"""

from landscape.curvature.columns import HESSIAN_COLUMNS
from landscape.curvature.estimates import hessian_density, hessian_trace
from landscape.curvature.from_checkpoints import HessianConfig, hessian_checkpoints
from landscape.curvature.hessian_file import HessianFile, read_hessian_file
from landscape.curvature.inline import InlineHessian
from landscape.curvature.operator import BNMode, HessianOperator, Method, Params
from landscape.curvature.spectrum import EigenResult, Which, curvature_along, hessian_eigenvalues
from landscape.curvature.stochastic import DensityResult, TraceResult

__all__ = [
    "BNMode",
    "DensityResult",
    "EigenResult",
    "HESSIAN_COLUMNS",
    "HessianConfig",
    "HessianFile",
    "HessianOperator",
    "InlineHessian",
    "Method",
    "Params",
    "TraceResult",
    "Which",
    "curvature_along",
    "hessian_density",
    "hessian_checkpoints",
    "hessian_eigenvalues",
    "hessian_trace",
    "read_hessian_file",
]
