"""The trainer's inline Santurkar probes, written to ``/probe/<variant>`` and ``/ics/<variant>``.

Per due step ``t`` of the loop (see :mod:`landscape.train.loop`)::

    inline.before_forward(step, model, loss_fn, batch)  # ICS due: keep theta_t (params,
                                                        # buffers); probe here if not exact
    ...forward, backward...
    inline(variant, step, model, loss_fn, batch, base)  # gradient probe, before the update
    optimizer.step()
    inline.after_update(step, model, loss_fn, batch)    # ICS with u = theta_{t+1} - theta_t

The step's own loss and gradient (``base``) stand in for the probe's pass at theta_t only
when that pass is deterministic and in train mode (``probe_bn_mode="train"``, no dropout).
Otherwise the probe runs in :meth:`InlineProbes.before_forward`, at theta_t as checkpointed
(before the step's forward moves the BN running statistics), and computes its own seeded g;
the after-backward call then does nothing.

The probe's step sizes follow the learning rate of step ``t`` (eta = lr_t x multipliers;
each row stores its eta). ICS moves the earlier layers by the optimizer's actual update of
step ``t`` (momentum, Adam, weight decay and the schedule included), which is Definition 2.1
for any optimizer; with plain SGD it equals ``-lr_t * g``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from landscape import store
from landscape._params import preserved
from landscape.data import LossFn
from landscape.probes.callback import ProbeCallback
from landscape.probes.covariate_shift import ics
from landscape.probes.gradient import StepSizes
from landscape.probes.sinks import H5Sink

__all__ = ["InlineProbes"]


class InlineProbes:
    """Inline gradient probes and ICS of one variant, as configured by a ``TrainConfig``.

    Args:
        config: the run's ``TrainConfig`` (``probe_*`` and ``ics_every`` fields, ``seed``).
        log: the run file's :class:`~landscape.store.SeriesLog` (the trainer commits it).
        variant: ``"bn"`` or ``"plain"``.
        lr_of: the learning rate of a step (the trainer's schedule).
    """

    def __init__(
        self, config: Any, log: store.SeriesLog, variant: str, lr_of: Callable[[int], float]
    ):
        self.grid: StepSizes = config.step_sizes()
        self.lr_of = lr_of
        self.ics_every: int = config.ics_every
        self.bn_mode: str = config.probe_bn_mode
        self.seed: int = config.seed
        # the grid is an attribute of /probe only; /ics rows are written by a plain sink
        grid = {"step_size_grid": self.grid.to_dict()}
        probe_sink = H5Sink(log.path, variant, attrs=grid, log=log)
        self.ics_sink = H5Sink(log.path, variant, log=log)
        self.probes = ProbeCallback(
            every=config.probe_every or None,
            step_sizes=self.grid,
            direction=config.probe_direction,
            bn_mode=config.probe_bn_mode,
            seed=config.seed,
            sink=probe_sink,
        )
        self._before: dict[str, Tensor] | None = None
        self._exact: bool | None = None  # decided on the first step, from the model

    def exact_base(self, model: nn.Module) -> bool:
        """Whether the step's own (loss, gradient) can stand in for the probe's pass at
        theta_t: train-mode probes of a model without dropout (a deterministic forward)."""
        if self._exact is None:
            self._exact = self.bn_mode == "train" and not any(
                isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()
            )
        return self._exact

    def before_forward(
        self, step: int, model: nn.Module, loss_fn: LossFn, batch: tuple[Tensor, Tensor]
    ) -> None:
        """Keep theta_t (parameters and buffers, as checkpointed) when ICS is due; when the
        step's gradient cannot serve as the probe's g (eval-mode probes, dropout), run the
        gradient probe here, at theta_t before the forward, with its own seeded pass."""
        if self.ics_every and step % self.ics_every == 0:
            state = [*model.named_parameters(), *model.named_buffers()]
            self._before = {n: t.detach().clone() for n, t in state}
        if not self.exact_base(model):
            self.probes(step, model, loss_fn, batch, None, lr=self.lr_of(step))

    def __call__(
        self,
        _variant: str,
        step: int,
        model: nn.Module,
        loss_fn: LossFn,
        batch: tuple[Tensor, Tensor],
        base: tuple[Tensor, Mapping[str, Tensor]] | None,
    ) -> None:
        """The gradient probe at theta_t if due, from the step's own ``base``, step sizes
        relative to step t's lr (a trainer step hook: called after the backward, before the
        update). Does nothing when the probe ran in :meth:`before_forward` instead."""
        if self.exact_base(model):
            self.probes(step, model, loss_fn, batch, base, lr=self.lr_of(step))

    def after_update(
        self, step: int, model: nn.Module, loss_fn: LossFn, batch: tuple[Tensor, Tensor]
    ) -> None:
        """ICS of step t with the update the optimizer just made; the model stays at t+1."""
        before, self._before = self._before, None
        if before is None:
            return
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        update = {n: p.detach() - before[n] for n, p in params}
        with preserved(model), torch.no_grad():  # back to theta_t, then theta_{t+1} again
            for n, t in [*model.named_parameters(), *model.named_buffers()]:
                t.copy_(before[n])
            shift = ics(model, loss_fn, batch, update=update, bn_mode=self.bn_mode, seed=self.seed)  # type: ignore[arg-type]
        self.ics_sink("ics", step, shift)
