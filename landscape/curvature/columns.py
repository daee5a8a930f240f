"""What the Hessian series hold: the ``description`` of every column both writers share.

One place for the trainer's inline Hessian (``/hessian/<variant>`` of ``run.h5``,
:class:`~landscape.curvature.InlineHessian`) and the Hessian files of saved checkpoints
(``landscape hessian``), which add columns of their own. ``H`` is the Hessian of the mean
loss over a fixed evaluation set at the weights θ_t of step ``t`` (``docs/hdf5-schema.md``).
"""

from __future__ import annotations

__all__ = ["HESSIAN_COLUMNS"]

HESSIAN_COLUMNS = {
    "step": "training step t (updates applied): H is taken at θ_t, as checkpoint step_t holds",
    "eigenvalues": "top-k eigenvalues λ_1 ≥ … ≥ λ_k of H, algebraically largest first (Lanczos)",
    "residuals": "‖H v_i − λ_i v_i‖₂ of each unit eigenvector, in the order of eigenvalues",
    "eigen_products": "Hessian-vector products the eigenvalues took (their residuals included)",
    "trace": "tr H = Σ λ_i, estimated by Hutch++",
    "trace_stderr": "one standard error of trace",
    "trace_products": "Hessian-vector products the trace took",
    "trace_converged": "1 where the trace reached its relative standard error (trace_rtol) "
    "within its product budget (trace_max_products), else 0",
    "curvature_gradient": "gᵀHg / ‖g‖²: the curvature along the gradient g of the same loss",
}
