"""Curvature: Hessian-vector products, eigenvalues, trace, spectral density and curvature
along a direction, of the mean loss over evaluation data (Ghorbani et al. 2019; Yao et al.
2020).

Owns :mod:`.operator` (``HessianOperator``: exact products by double backward or
forward-over-reverse, BN mode explicit, the model left as found), :mod:`.spectrum`
(``hessian_eigenvalues`` by Lanczos, ``curvature_along``), :mod:`.stochastic` (Hutchinson,
Hutch++, Lanczos and stochastic Lanczos quadrature on any ``matvec``) and :mod:`.estimates`
(``hessian_trace``, ``hessian_density``).

May import: :mod:`landscape._params` and :mod:`landscape.data`. Never the probes or slices
(siblings), training, rendering or the CLI.
"""

from landscape.curvature.estimates import hessian_density, hessian_trace
from landscape.curvature.operator import BNMode, HessianOperator, Method, Params
from landscape.curvature.spectrum import EigenResult, Which, curvature_along, hessian_eigenvalues
from landscape.curvature.stochastic import DensityResult, TraceResult

__all__ = [
    "BNMode",
    "DensityResult",
    "EigenResult",
    "HessianOperator",
    "Method",
    "Params",
    "TraceResult",
    "Which",
    "curvature_along",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
]
