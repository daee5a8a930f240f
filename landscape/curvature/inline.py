"""The trainer's inline Hessian (``--hessian-every N``), written to ``/hessian/<variant>``.

Per due step ``t`` of the loop (see :mod:`landscape.train.loop`)::

    hessian.before_forward(step, model)  # at theta_t as checkpointed, before the step's
    ...forward, backward, update...      # forward moves the BN running statistics
    hessian.at_end(model)                # after the last update: theta_steps

Due are the steps ``t = 0 .. steps - 1`` with ``t % hessian_every == 0``, and always the
final step ``steps`` (the trained network, like the last checkpoint; a variant that diverged
has none). Each row is taken before the step's forward pass, so it is the Hessian of
checkpoint ``step_t`` exactly, in either BN mode (after the forward, the running statistics
an eval-mode Hessian uses would hold step ``t``'s batch already).

Every row is of one loss: the size-weighted mean loss over a fixed evaluation set, the first
``hessian_examples`` training examples (clipped to the training set; no RNG drawn) in
batches of ``hessian_batch_size``, resident on the model's device in the run's dtype. It
holds the top ``hessian_top_k`` eigenvalues (:func:`hessian_eigenvalues`, algebraically
largest), the trace (:func:`hessian_trace`, Hutch++) and the curvature along the full-set
gradient (:func:`curvature_along`), each called with ``bn_mode=hessian_bn_mode`` and
``seed=config.seed``: the same calls on the checkpoint give the same numbers.

Budgets, so that a row costs at most a known number of Hessian-vector products:

- eigenvalues: ARPACK to the relative tolerance :data:`EIGEN_TOL` (``landscape hessian``'s
  default; on vgg_small the top eigenvalue takes 12 to 22 products, where 1e-6 takes 16
  to 32 for the same six digits) within :data:`EIGEN_PRODUCTS_PER_K` x k products; past it
  the row's eigenvalues are NaN (a warning is logged) and training goes on.
- trace: Hutch++ with :data:`TRACE_RANK` exact columns (``2 x 10`` products: the top
  subspace, where the ~C outlier eigenvalues of a C-class problem sit) and Rademacher
  samples of the rest until ``stderr <= hessian_trace_rtol x |trace|`` (at least 10), within
  :data:`TRACE_MAX_PRODUCTS` products in all. Past the budget the row holds the estimate with
  its larger ``trace_stderr``. ``hessian_trace_rtol = 0`` spends the whole budget.

At weights whose loss over the set is not finite (a diverging run) the row is NaN, with no
products spent. Training is not changed: the model (parameters, buffers, ``.grad``, modes),
the optimizer and every RNG are left as found.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import ArpackError
from torch import nn

from landscape import store
from landscape._params import rng_preserved
from landscape.curvature.columns import HESSIAN_COLUMNS
from landscape.curvature.estimates import hessian_trace
from landscape.curvature.from_checkpoints import evaluation_batches
from landscape.curvature.operator import HessianOperator
from landscape.curvature.spectrum import curvature_along, hessian_eigenvalues
from landscape.data import Dataset, loss_function

__all__ = [
    "EIGEN_PRODUCTS_PER_K",
    "EIGEN_TOL",
    "GROUP",
    "TRACE_MAX_PRODUCTS",
    "TRACE_RANK",
    "InlineHessian",
]

logger = logging.getLogger(__name__)

GROUP = "hessian"
#: ARPACK's relative tolerance for the eigenvalues ...
EIGEN_TOL = 1e-4
#: ... and Lanczos' budget per eigenvalue wanted.
EIGEN_PRODUCTS_PER_K = 100
#: Hutch++: exact columns of the top subspace (2 products each) ...
TRACE_RANK = 10
#: ... and the products of one trace in all (at most 180 samples of the deflated rest).
TRACE_MAX_PRODUCTS = 200


class InlineHessian:
    """The inline Hessian of one variant, as configured by a ``TrainConfig``.

    Args:
        config: the run's ``TrainConfig`` (``hessian_*`` fields, ``steps``, ``seed``).
        log: the run file's :class:`~landscape.store.SeriesLog` (the trainer commits it).
        variant: ``"bn"`` or ``"plain"``.
        data: the training data, in the run's dtype; its first examples are the set.
        device: where the model is (the set is kept there).
    """

    def __init__(
        self,
        config: Any,
        log: store.SeriesLog,
        variant: str,
        data: Dataset,
        device: torch.device | str,
    ) -> None:
        self.every: int = config.hessian_every
        self.steps: int = config.steps
        self.top_k: int = config.hessian_top_k
        self.bn_mode: str = config.hessian_bn_mode
        self.rtol: float = config.hessian_trace_rtol
        self.seed: int = config.seed
        self.log, self.group = log, f"{GROUP}/{variant}"
        self.loss_fn = loss_function(data.task)
        self.batches = evaluation_batches(
            data, config.hessian_examples, config.hessian_batch_size, None, device
        )
        self.attrs = {
            "bn_mode": self.bn_mode,
            "top_k": self.top_k,
            "examples": sum(len(y) for _, y in self.batches),
            "batch_size": config.hessian_batch_size,
            "trace_rtol": self.rtol,
            "trace_rank": TRACE_RANK,
            "trace_max_products": TRACE_MAX_PRODUCTS,
        }
        log.describe(self.group, HESSIAN_COLUMNS)

    @staticmethod
    def check(config: Any, data: Dataset, model: nn.Module) -> None:
        """Refuse settings that could only fail once training has begun (ValueError)."""
        count = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if config.hessian_top_k >= count:
            raise ValueError(
                f"hessian_top_k (--hessian-top-k) must be below the model's {count} trainable "
                f"parameters, got {config.hessian_top_k}"
            )
        n, size = min(config.hessian_examples, len(data.x_train)), config.hessian_batch_size
        has_bn = any(isinstance(m, nn.modules.batchnorm._NormBase) for m in model.modules())
        if has_bn and config.hessian_bn_mode == "train" and (size == 1 or n % size == 1):
            raise ValueError(
                f"a batch of the Hessian's {n} examples would hold 1 example, too few for "
                "BatchNorm's batch statistics: change --hessian-examples or --hessian-batch-size"
            )

    def due(self, step: int) -> bool:
        """Whether step ``step`` (0 .. steps) gets a row."""
        return step == self.steps or (self.every > 0 and step % self.every == 0)

    def before_forward(self, step: int, model: nn.Module) -> None:
        """The row of step ``step`` if it is due, at theta_t (before the step's forward)."""
        if step < self.steps and self.due(step):
            self.measure(step, model)

    def at_end(self, model: nn.Module) -> None:
        """The row of the final step, at the weights after the last update."""
        self.measure(self.steps, model)

    def measure(self, step: int, model: nn.Module) -> None:
        """Compute one row at the model's current weights and add it to the log."""
        with rng_preserved():  # the functions draw from seeded generators; this is a guard
            self.log.add(self.group, **self.row(step, model))
        self.log.set_attrs(self.group, **self.attrs)

    def row(self, step: int, model: nn.Module) -> dict[str, Any]:
        """The row's columns (:data:`~landscape.curvature.columns.HESSIAN_COLUMNS`)."""
        k, nan = self.top_k, float("nan")
        row: dict[str, Any] = {
            "step": step, "eigenvalues": np.full(k, nan), "residuals": np.full(k, nan),
            "eigen_products": 0, "trace": nan, "trace_stderr": nan, "trace_products": 0,
            "trace_converged": 0, "curvature_gradient": nan,
        }  # fmt: skip
        common = {"bn_mode": self.bn_mode, "seed": self.seed}
        with HessianOperator(model, self.loss_fn, self.batches, method="func", **common) as op:
            loss = op.loss()  # a forward pass: no graph kept
        if not math.isfinite(loss):
            logger.warning("%s step %d: the loss over the Hessian's examples is %s: row left "
                           "NaN", self.group, step, loss)  # fmt: skip
            return row
        cap = EIGEN_PRODUCTS_PER_K * k
        args = (model, self.loss_fn, self.batches)
        try:
            eig = hessian_eigenvalues(*args, k=k, which="largest", tol=EIGEN_TOL,
                                      max_products=cap, **common)  # fmt: skip
            row.update(eigenvalues=eig.values, residuals=eig.residuals, eigen_products=eig.products)
        except (ValueError, ArpackError) as exc:  # no convergence within the budget
            logger.warning("%s step %d: %s; eigenvalues left NaN", self.group, step, exc)
            row.update(eigen_products=cap)
        trace = hessian_trace(*args, method="hutch++", rtol=self.rtol, rank=TRACE_RANK,
                              max_products=TRACE_MAX_PRODUCTS, **common)  # fmt: skip
        row.update(trace=trace.value, trace_stderr=trace.stderr, trace_products=trace.products,
                   trace_converged=int(trace.converged))  # fmt: skip
        row["curvature_gradient"] = curvature_along(*args, "gradient", **common)
        return row
