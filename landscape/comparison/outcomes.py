"""Outcomes first (science.md s. 5): a network trained, stalled at chance, or diverged.

A comparison of probes means something only between networks that trained: a network stuck
at chance is trivially "smooth" along its gradient, and a diverged one has no probes past
its divergence. The rules, with their constants recorded in every file that uses them
(:meth:`OutcomeRules.to_dict`)::

    diverged   the training loss is not finite at some step t (the trainer stops there;
               ``diverged_step`` = t)
    stalled    classification: the final training accuracy (the mean mini-batch accuracy
               over the last ``final_window`` steps) is at most chance + ``stall_margin``,
               chance = 1 / number of classes (the bundled digits are balanced);
               regression: the final training loss (the same mean) is above
               ``stall_loss_fraction`` x the loss of the first ``final_window`` steps
    trained    otherwise
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "FINAL_WINDOW",
    "OUTCOMES",
    "STALL_LOSS_FRACTION",
    "STALL_MARGIN",
    "Outcome",
    "OutcomeRules",
    "Verdict",
    "classify",
]

Outcome = Literal["trained", "stalled", "diverged"]
OUTCOMES: tuple[Outcome, ...] = ("trained", "stalled", "diverged")
#: Stalled: a final training accuracy at most chance + this (10 classes: at most 0.2).
STALL_MARGIN = 0.1
#: Stalled (regression): a final loss above this fraction of the initial loss.
STALL_LOSS_FRACTION = 0.9
#: The final (and, for regression, the initial) training loss and accuracy are means over
#: this many steps' mini-batches: one batch of 128 at chance has a standard deviation of
#: 0.027 in accuracy, twenty of 0.006.
FINAL_WINDOW = 20


@dataclass(frozen=True)
class OutcomeRules:
    """The constants of the rules (module docstring); the defaults are the named constants."""

    stall_margin: float = STALL_MARGIN
    stall_loss_fraction: float = STALL_LOSS_FRACTION
    final_window: int = FINAL_WINDOW

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """A network's outcome, and the numbers it was decided on.

    Attributes:
        outcome: ``trained``, ``stalled`` or ``diverged``.
        diverged_step: the first step whose training loss is not finite (None otherwise).
        final_loss: the mean training loss over the last ``final_window`` finite steps.
        final_accuracy: the same of the mini-batch accuracy (NaN for regression).
        reason: one line saying why, e.g. ``final accuracy 0.104 <= chance 0.1 + 0.1``.
    """

    outcome: Outcome
    diverged_step: int | None
    final_loss: float
    final_accuracy: float
    reason: str


def _tail_mean(values: np.ndarray, window: int) -> float:
    tail = values[-window:]
    return float(tail.mean()) if tail.size else math.nan


def classify(
    steps: ArrayLike,
    loss: ArrayLike,
    accuracy: ArrayLike | None = None,
    *,
    num_classes: int | None = None,
    rules: OutcomeRules | None = None,
) -> Verdict:
    """The outcome of one network from its training curve (one row per step).

    Args:
        steps: (K,) the training steps of the rows, increasing.
        loss: (K,) the mini-batch training loss of each step.
        accuracy: (K,) the mini-batch accuracy (None or NaN for regression).
        num_classes: classes of a classification task (chance = 1 / num_classes); None for
            regression.
        rules: the constants (default :class:`OutcomeRules`).

    Example:
        >>> classify([0, 1, 2], [2.3, float("nan"), float("nan")]).outcome
        'diverged'
    """
    r = rules or OutcomeRules()
    steps, loss = np.asarray(steps), np.asarray(loss, dtype=np.float64)
    if steps.shape != loss.shape or loss.ndim != 1 or not loss.size:
        raise ValueError(f"classify needs steps and loss of one equal length, got shapes "
                         f"{steps.shape} and {loss.shape}")  # fmt: skip
    acc = np.full_like(loss, math.nan) if accuracy is None else np.asarray(accuracy, np.float64)
    bad = np.flatnonzero(~np.isfinite(loss))
    end = int(bad[0]) if bad.size else len(loss)
    final_loss = _tail_mean(loss[:end], r.final_window)
    final_acc = _tail_mean(acc[:end], r.final_window)
    if bad.size:
        step = int(steps[end])
        return Verdict("diverged", step, final_loss, final_acc,
                       f"loss {loss[end]} at step {step}")  # fmt: skip
    if num_classes is not None and math.isfinite(final_acc):
        chance = 1.0 / num_classes
        if final_acc <= chance + r.stall_margin:
            return Verdict("stalled", None, final_loss, final_acc,
                           f"final accuracy {final_acc:.3g} <= chance {chance:.3g} + "
                           f"{r.stall_margin:g}")  # fmt: skip
        return Verdict("trained", None, final_loss, final_acc,
                       f"final accuracy {final_acc:.3g} > chance {chance:.3g} + "
                       f"{r.stall_margin:g}")  # fmt: skip
    first = float(loss[: r.final_window].mean())
    if final_loss > r.stall_loss_fraction * first:
        return Verdict("stalled", None, final_loss, final_acc,
                       f"final loss {final_loss:.3g} > {r.stall_loss_fraction:g} x initial "
                       f"{first:.3g}")  # fmt: skip
    return Verdict("trained", None, final_loss, final_acc,
                   f"final loss {final_loss:.3g} <= {r.stall_loss_fraction:g} x initial "
                   f"{first:.3g}")  # fmt: skip
