"""The distribution of chosen units' activations over training (Santurkar et al. Figs. 1, 2).

:class:`ActivationRecorder` is a step hook of :func:`~landscape.train.train_pair`: every
``every`` steps (and at step 0) it runs the model, as it is at step t (before the update),
on the step's training batch in training mode (batch statistics; a noisy BN draws its next
noise), captures the output of each chosen module, keeps one unit (channel) of it, and
stores percentiles of its values over the examples (and, for convolutions, the positions):

    q_p(t) = the p-th percentile of { a[n, unit, ...] : n in B_t }

The pass runs under :func:`landscape._params.preserved`: parameters, gradients, BN running
statistics, a noisy BN's noise stream and the RNGs are left as they were, so recording
changes nothing about the training run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape._params import preserved

__all__ = ["DEFAULT_PERCENTILES", "ActivationRecorder"]

#: Percentile levels recorded by default: three nested bands and the median.
DEFAULT_PERCENTILES: tuple[float, ...] = (5.0, 15.0, 30.0, 50.0, 70.0, 85.0, 95.0)


@dataclass
class ActivationRecorder:
    """Percentiles of one unit's activations per chosen module, every ``every`` steps.

    Attributes:
        units: module name -> the unit (index along dimension 1) whose values are kept.
        every: Record at steps 0, every, 2 every, ...
        percentiles: The levels, in [0, 100].
        rows: variant -> module -> list of ``(step, percentiles)`` recorded so far.
    """

    units: Mapping[str, int]
    every: int
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    rows: dict[str, dict[str, list[tuple[int, np.ndarray]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")
        if not self.units:
            raise ValueError("units is empty: name at least one module")
        if not all(0 <= p <= 100 for p in self.percentiles):
            raise ValueError(f"percentiles must lie in [0, 100], got {self.percentiles}")

    def __call__(
        self, variant: str, step: int, model: nn.Module, loss_fn: Any, batch: Any, base: Any
    ) -> None:
        """The :data:`~landscape.train.loop.StepHook` signature; records on its steps."""
        if step % self.every:
            return
        captured = self.capture(model, batch[0])
        per_module = self.rows.setdefault(variant, {})
        for name, values in captured.items():
            levels = np.percentile(values, self.percentiles)
            per_module.setdefault(name, []).append((step, levels))

    def capture(self, model: nn.Module, inputs: Tensor) -> dict[str, np.ndarray]:
        """Each chosen module's unit, flattened (float64), from one training-mode pass."""
        modules = dict(model.named_modules())
        missing = sorted(set(self.units) - set(modules))
        if missing:
            raise ValueError(f"the model has no module(s) {missing}: choose among its own")
        out: dict[str, np.ndarray] = {}

        def keep(name: str, unit: int) -> Any:
            def hook(module: nn.Module, args: Any, output: Tensor) -> None:
                if unit >= output.shape[1]:
                    raise ValueError(f"{name} has {output.shape[1]} units, not unit {unit}")
                out[name] = output[:, unit].detach().double().flatten().cpu().numpy()

            return hook

        handles = [modules[n].register_forward_hook(keep(n, u)) for n, u in self.units.items()]
        try:
            with preserved(model), torch.no_grad():
                model.train()
                model(inputs)
        finally:
            for h in handles:
                h.remove()
        return out

    def series(self, variant: str) -> dict[str, dict[str, np.ndarray]]:
        """module -> ``{"step": (T,), "percentiles": (T, P)}`` of ``variant`` (in step order)."""
        result = {}
        for name, rows in self.rows.get(variant, {}).items():
            rows = sorted(rows, key=lambda r: r[0])
            result[name] = {
                "step": np.array([s for s, _ in rows], dtype=np.int64),
                "percentiles": np.stack([v for _, v in rows]).astype(np.float64),
            }
        return result
