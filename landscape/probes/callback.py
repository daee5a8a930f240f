"""Santurkar et al.'s probes in any training loop: :class:`ProbeCallback`.

Every few steps it runs the gradient probe (:mod:`landscape.probes.gradient`) and internal
covariate shift (:mod:`landscape.probes.covariate_shift`) on the step's batch, before the
optimizer's update, and hands each result to a sink (:class:`~landscape.probes.sinks.H5Sink`
writes them to HDF5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from torch import Tensor, nn

from landscape.data.evaluation import Loss
from landscape.probes.core import BNMode, check_bn_mode
from landscape.probes.covariate_shift import ics
from landscape.probes.gradient import Direction, Steps, StepSizes, as_step_sizes, gradient_probe

__all__ = ["ProbeCallback", "Sink"]

Sink = Callable[[str, int, Any], None]  # sink(kind, step, result), kind "probe" or "ics"


class ProbeCallback:
    """Runs :func:`gradient_probe` (and :func:`ics`) every few steps of any training loop.

    Call it with the step's batch BEFORE the optimizer update; each result goes to
    ``sink(kind, step, result)`` with kind ``"probe"`` or ``"ics"``; the default sink
    appends ``(kind, step, result)`` to ``self.records``::

        cb = ProbeCallback(every=10, step_sizes=StepSizes.vgg(0.1), ics_every=100)
        cb(step, model, loss_fn, (x, y))   # in the loop, before optimizer.step()
        steps = [step for kind, step, _ in cb.records if kind == "probe"]

    Args:
        every, ics_every: probe / measure ICS when ``step % every == 0``; None: never.
        step_sizes, direction, bn_mode, seed: as for :func:`gradient_probe` (validated here).
        sink: receives each result; default collects into ``records``.
        lr: learning rate for ICS; default ``step_sizes.lr`` when a :class:`StepSizes`.
        ics_layers: passed to :func:`ics` as ``layers``.
    """

    def __init__(
        self,
        every: int | None,
        step_sizes: Steps | StepSizes,
        *,
        sink: Sink | None = None,
        ics_every: int | None = None,
        lr: float | None = None,
        direction: Direction = "gradient",
        bn_mode: BNMode = "train",
        seed: int = 0,
        ics_layers: Sequence[str] | None = None,
    ) -> None:
        for name, value in (("every", every), ("ics_every", ics_every)):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        as_step_sizes(step_sizes)
        check_bn_mode(bn_mode)
        if lr is None and isinstance(step_sizes, StepSizes):
            lr = step_sizes.lr
        if ics_every is not None and lr is None:
            raise ValueError("ICS needs the learning rate: pass lr= or a StepSizes grid")
        self.every, self.ics_every, self.lr, self.step_sizes = every, ics_every, lr, step_sizes
        self.probe_options = {"direction": direction, "bn_mode": bn_mode, "seed": seed}
        self.ics_options = {"layers": ics_layers, "bn_mode": bn_mode, "seed": seed}
        self.records: list[tuple[str, int, Any]] = []
        self.sink: Sink = sink if sink is not None else self._collect

    def _collect(self, kind: str, step: int, result: Any) -> None:
        self.records.append((kind, step, result))

    def __call__(
        self,
        step: int,
        model: nn.Module,
        loss_fn: Loss,
        batch: Any,
        base: tuple[Tensor, Mapping[str, Tensor]] | None = None,
        lr: float | None = None,
    ) -> None:
        """Probe at ``step`` if due; ``base`` = the loop's own (loss, gradient) at theta;
        ``lr`` = the loop's current learning rate, to which a :class:`StepSizes` grid is
        rescaled (eta = lr x multipliers; each result records its eta) and which ICS's SGD
        step uses (default: the constructor's)."""
        if self.every is not None and step % self.every == 0:
            steps = self.step_sizes
            if lr is not None:
                if not isinstance(steps, StepSizes):
                    raise ValueError("lr= rescales a StepSizes grid: pass step_sizes as StepSizes")
                steps = replace(steps, lr=lr)
            probe = gradient_probe(model, loss_fn, batch, steps, base=base, **self.probe_options)
            self.sink("probe", step, probe)
        if self.ics_every is not None and step % self.ics_every == 0:
            step_lr = self.lr if lr is None else lr
            shift = ics(model, loss_fn, batch, step_lr, **self.ics_options)  # type: ignore[arg-type]
            self.sink("ics", step, shift)
