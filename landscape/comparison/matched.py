"""Probes compared at matched training loss and at matched step, over seeds (science.md s. 5).

A network is a training curve, the Santurkar probes of some of its steps and its outcome
(:mod:`.outcomes`). Two networks are compared

- at a **matched step** ``t``: each network's probe of step ``t``;
- at a **matched loss** ``L``: each network's first probe at or after the first step at
  which it *reaches* ``L``, i.e. at which the trailing mean of its training loss over
  ``window`` steps (:data:`MATCH_WINDOW`) is at most ``L``. :func:`loss_levels` chooses
  levels inside the range every trained network reaches.

Over seeds, a :class:`Spread` holds one value per network with the median and range over
the networks that trained and have a value. A network that stalled or diverged is reported
as such ("stalled", "diverged at step 12") and never enters a median, nor does a trained
one that never reaches ``L`` ("never reaches 0.5"): they are counted, never averaged in.

The probe metrics, per probed step (the step sizes ``eta`` of the probe's grid)::

    beta        effective beta-smoothness, max_eta ||grad L(theta - eta g) - g|| / ||eta g||
    grad_pred   gradient predictiveness, max_eta ||grad L(theta - eta g) - g||
    loss_range  max_eta L(theta - eta g) - min_eta L(theta - eta g)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from landscape.comparison.outcomes import OUTCOMES, Outcome

__all__ = [
    "LEVELS",
    "MATCH_WINDOW",
    "PROBE_METRICS",
    "Network",
    "Spread",
    "at_loss",
    "at_step",
    "first_step_reaching",
    "loss_levels",
    "over_run",
    "probe_metrics",
    "trailing_mean",
]

#: A network reaches loss L at the first step where its training loss, averaged over the
#: last MATCH_WINDOW steps (fewer at the start), is at most L: one mini-batch is noisy.
MATCH_WINDOW = 10
#: Matched-loss levels chosen by default.
LEVELS = 3
#: What each probe metric is (the module docstring).
PROBE_METRICS = {
    "beta": "effective beta-smoothness: max over eta of ||grad L(theta - eta g) - g|| / ||eta g||",
    "grad_pred": "gradient predictiveness: max over eta of ||grad L(theta - eta g) - g||",
    "loss_range": "loss range along the gradient: max - min over eta of L(theta - eta g)",
}


def probe_metrics(rows: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    """Per probed step (T,): ``beta``, ``grad_pred`` and ``loss_range`` of probe rows.

    Args:
        rows: probe series (``/probe/<variant>`` of a run log): ``beta`` (T,),
            ``grad_distance`` (T, K) and ``loss`` (T, K) over the K step sizes.
    """
    gd = np.asarray(rows["grad_distance"], dtype=np.float64)
    loss = np.asarray(rows["loss"], dtype=np.float64)
    return {
        "beta": np.asarray(rows["beta"], dtype=np.float64),
        "grad_pred": gd.max(axis=1) if gd.size else np.empty(len(gd)),
        "loss_range": loss.max(axis=1) - loss.min(axis=1) if loss.size else np.empty(len(loss)),
    }


def trailing_mean(values: ArrayLike, window: int) -> np.ndarray:
    """``out[t]`` = the mean of ``values[max(0, t - window + 1) : t + 1]``.

    >>> trailing_mean([4.0, 2.0, 0.0, 2.0], 2).tolist()
    [4.0, 3.0, 1.0, 1.0]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(v)])
    t = np.arange(len(v))
    lo = np.maximum(0, t - window + 1)
    return (c[t + 1] - c[lo]) / (t + 1 - lo)


def first_step_reaching(
    steps: ArrayLike, loss: ArrayLike, level: float, *, window: int = MATCH_WINDOW
) -> int | None:
    """The first step at which the trailing mean of ``loss`` over ``window`` rows is at most
    ``level``; None if there is none (the network never reaches ``level``).

    >>> first_step_reaching([0, 1, 2, 3], [2.3, 1.5, 0.9, 0.4], 1.0, window=1)
    2
    """
    smooth = trailing_mean(loss, window)
    hit = np.flatnonzero(smooth <= level)  # NaN (a diverged row) never reaches
    return int(np.asarray(steps)[hit[0]]) if hit.size else None


@dataclass
class Network:
    """One network as the comparisons see it.

    Attributes:
        label: how it is named in reports, e.g. ``seed 0``.
        outcome: ``trained``, ``stalled`` or ``diverged`` (:func:`.outcomes.classify`).
        steps, loss: (K,) its training curve, one row per step.
        probe_steps: (T,) the steps probed.
        probes: metric -> (T,) value at each probed step (:func:`probe_metrics`).
        diverged_step: the step its loss stopped being finite (None otherwise).
    """

    label: str
    outcome: Outcome
    steps: np.ndarray
    loss: np.ndarray
    probe_steps: np.ndarray
    probes: dict[str, np.ndarray] = field(default_factory=dict)
    diverged_step: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"{self.label}: outcome must be one of {OUTCOMES}, "
                             f"got {self.outcome!r}")  # fmt: skip

    @property
    def excluded(self) -> str:
        """Why the network is kept out of every median ("" when it trained)."""
        if self.outcome == "diverged":
            return "diverged" + ("" if self.diverged_step is None else
                                 f" at step {self.diverged_step}")  # fmt: skip
        return "" if self.outcome == "trained" else self.outcome

    def probe_index(self, step: int, *, exact: bool) -> int | None:
        """The index of the probe of ``step`` (``exact``) or of the first one after it."""
        steps = np.asarray(self.probe_steps)
        hit = np.flatnonzero(steps == step if exact else steps >= step)
        return int(hit[0]) if hit.size else None


@dataclass
class Spread:
    """One number per network, and its median and range over the networks that count.

    Attributes:
        labels: the networks' labels.
        values: (n,) each network's value (NaN where it has none).
        notes: why a network does not count ("" where it does): ``stalled``, ``diverged at
            step t``, ``never reaches L``, ``no probe ...``, ``not a number``.
        outcomes: each network's outcome.
        steps: (n,) the probed step each value is of (NaN where none).
    """

    labels: list[str]
    values: np.ndarray
    notes: list[str]
    outcomes: list[str]
    steps: np.ndarray

    @property
    def used(self) -> np.ndarray:
        return np.array([not n for n in self.notes], dtype=bool)

    def _of_used(self, fn: Callable[[np.ndarray], float]) -> float:
        v = self.values[self.used]
        return float(fn(v)) if v.size else math.nan

    @property
    def median(self) -> float:
        return self._of_used(np.median)

    @property
    def low(self) -> float:
        return self._of_used(np.min)

    @property
    def high(self) -> float:
        return self._of_used(np.max)

    @property
    def counts(self) -> dict[str, int]:
        """``trained``, ``stalled``, ``diverged`` networks, and ``used``: in the median."""
        out = {o: self.outcomes.count(o) for o in OUTCOMES}
        return out | {"used": int(self.used.sum())}

    def text(self, fmt: str = "{:.3g}", per_network: bool = True) -> str:
        """``median [min..max] (n/N)`` and, with ``per_network``, every network's value or
        why it has none: ``3.39 [3.12..3.49] (2/3; seed 0: 3.39, seed 1: 3.12, seed 2:
        stalled)``."""
        n = int(self.used.sum())
        head = (f"{fmt.format(self.median)} [{fmt.format(self.low)}..{fmt.format(self.high)}]"
                if n else "-")  # fmt: skip
        head += f" ({n}/{len(self.labels)}"
        if not per_network:
            return head + ")"
        each = [f"{lab}: {note or fmt.format(v)}"
                for lab, v, note in zip(self.labels, self.values, self.notes)]  # fmt: skip
        return f"{head}; {', '.join(each)})"


def _spread(networks: Sequence[Network], found: list[tuple[float, float, str]]) -> Spread:
    """A :class:`Spread` of ``(value, step, note)`` per network; the outcome's note first."""
    values, steps, notes = [], [], []
    for net, (value, step, note) in zip(networks, found):
        note = net.excluded or note or ("" if not math.isnan(value) else "not a number")
        values.append(value)
        steps.append(step)
        notes.append(note)
    return Spread([n.label for n in networks], np.asarray(values, dtype=np.float64), notes,
                  [n.outcome for n in networks], np.asarray(steps, dtype=np.float64))  # fmt: skip


def _value(net: Network, metric: str, index: int | None) -> tuple[float, float]:
    if metric not in net.probes:
        raise ValueError(f"{net.label} has no probe metric {metric!r}: choose one of "
                         f"{', '.join(net.probes) or 'none (no probes)'}")  # fmt: skip
    if index is None:
        return math.nan, math.nan
    return float(net.probes[metric][index]), float(net.probe_steps[index])


def at_step(networks: Sequence[Network], metric: str, step: int) -> Spread:
    """Each network's ``metric`` at its probe of ``step`` (matched step)."""
    found = []
    for net in networks:
        i = net.probe_index(step, exact=True)
        value, at = _value(net, metric, i)
        found.append((value, at, "" if i is not None else f"no probe at step {step}"))
    return _spread(networks, found)


def at_loss(
    networks: Sequence[Network], metric: str, level: float, *, window: int = MATCH_WINDOW
) -> Spread:
    """Each network's ``metric`` at its first probe at or after the first step at which it
    reaches training loss ``level`` (:func:`first_step_reaching`): matched loss."""
    found = []
    for net in networks:
        reached = first_step_reaching(net.steps, net.loss, level, window=window)
        if reached is None:
            value, _ = _value(net, metric, None)
            found.append((value, math.nan, f"never reaches {level:.3g}"))
            continue
        i = net.probe_index(reached, exact=False)
        value, at = _value(net, metric, i)
        found.append((value, at, "" if i is not None else f"no probe after step {reached}"))
    return _spread(networks, found)


def over_run(networks: Sequence[Network], metric: str) -> Spread:
    """Each network's median of ``metric`` over its finite probes (the whole run)."""
    found = []
    for net in networks:
        _value(net, metric, None)  # the metric exists
        v = np.asarray(net.probes[metric], dtype=np.float64)
        v = v[np.isfinite(v)]
        found.append((float(np.median(v)) if v.size else math.nan, math.nan,
                      "" if v.size else "no finite probe"))  # fmt: skip
    return _spread(networks, found)


def loss_levels(
    networks: Sequence[Network], count: int = LEVELS, *, window: int = MATCH_WINDOW
) -> np.ndarray:
    """``count`` training-loss levels inside the range every trained network reaches
    while it is probed.

    With ``s_n`` a trained network's trailing-mean loss (``window`` steps) up to its last
    probed step (all of it without probes), the range is ``[max_n min_t s_n(t), min_n
    s_n(0)]``: below every network's start, above every network's best. The levels split it
    evenly on a log scale, ends excluded, highest first. Empty when no network trained or
    the range is empty (one trained network's best is above another's start).

    >>> a = Network("a", "trained", np.arange(3), np.array([4.0, 2.0, 1.0]), np.arange(0))
    >>> loss_levels([a], count=1, window=1).tolist()
    [2.0]
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    smooth = []
    for net in networks:
        if net.outcome != "trained":
            continue
        s = trailing_mean(net.loss, window)
        if len(net.probe_steps):
            s = s[np.asarray(net.steps) <= np.max(net.probe_steps)]
        smooth.append(s[np.isfinite(s)])
    if not smooth or any(not s.size for s in smooth):
        return np.empty(0)
    high = min(float(s[0]) for s in smooth)
    low = max(float(s.min()) for s in smooth)
    if not 0 < low < high:
        return np.empty(0)
    fractions = np.arange(1, count + 1) / (count + 1)
    return np.exp(np.log(high) + fractions * (np.log(low) - np.log(high)))
