"""Text reports of comparisons: per-seed values, median and range, outcome counts.

Markdown tables (paste them into a document) and indented blocks, returned as text: the
library never prints; the CLI and the scripts do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from landscape.comparison.matched import (
    LEVELS,
    MATCH_WINDOW,
    PROBE_METRICS,
    Network,
    at_loss,
    at_step,
    loss_levels,
    over_run,
)
from landscape.comparison.outcomes import OUTCOMES
from landscape.comparison.sweep_file import SweepFile

__all__ = [
    "accuracy_table",
    "comparison_lines",
    "outcome_text",
    "probes_report",
    "ratio_table",
    "slopes_table",
    "spread_text",
    "trainability_table",
]

#: How variants are named in reports.
NAMES = {"bn": "BN", "plain": "plain"}


def spread_text(values: np.ndarray, fmt: str = "{:.3g}") -> str:
    """``median [min..max]`` of the finite values (``-`` if none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return "-"
    return f"{fmt.format(np.median(v))} [{fmt.format(v.min())}..{fmt.format(v.max())}]"


def outcome_text(counts: Sequence[int]) -> str:
    """``3 trained`` or ``2 trained, 1 stalled`` from counts in :data:`OUTCOMES` order."""
    parts = [f"{n} {o}" for n, o in zip(counts, OUTCOMES) if n]
    return ", ".join(parts) or "none computed"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def slopes_table(sweep: SweepFile) -> str:
    """Per activation and layer, the slope of log ||dL/dW_l|| at initialisation on log init
    scale, median [min..max] over seeds per variant; per activation also the layers feeding
    BN together (over seeds and those layers)."""
    slopes = sweep.init_slopes()  # (A, V, N, L)
    variants = list(sweep.coords["variant"])
    feeds = sweep.coords["feeds_bn"].astype(bool)
    lines = [_row(["activation", "layer", "feeds BN", *(f"{NAMES.get(v, v)} slope"
                                                       for v in variants)]),
             _row(["---"] * (3 + len(variants)))]  # fmt: skip
    for j, act in enumerate(sweep.coords["activation"]):
        for layer_i, layer in enumerate(sweep.coords["layer"]):
            row = [act, f"`{layer}`", "yes" if feeds[layer_i] else "no"]
            row += [spread_text(slopes[j, v, :, layer_i], "{:.2f}") for v in range(len(variants))]
            lines.append(_row(row))
        if feeds.any():
            row = [act, "all layers feeding BN", "yes"]
            row += [spread_text(slopes[j, v][:, feeds], "{:.2f}") for v in range(len(variants))]
            lines.append(_row(row))
    return "\n".join(lines)


def _counts_cell(counts: np.ndarray, diverged_steps: np.ndarray) -> str:
    if not counts.sum():
        return "-"
    letters = {"trained": "T", "stalled": "S", "diverged": "D"}
    text = " ".join(f"{n}{letters[o]}" for n, o in zip(counts, OUTCOMES) if n)
    steps = diverged_steps[np.isfinite(diverged_steps)].astype(int)
    if steps.size:
        lo, hi = steps.min(), steps.max()
        text += f" (step {lo})" if lo == hi else f" (steps {lo}-{hi})"
    return text


def trainability_table(sweep: SweepFile) -> str:
    """Outcome counts per activation, variant (rows) and scale (columns): ``3T`` = three
    seeds trained, ``1S`` stalled, ``2D (steps 1-3)`` diverged at those steps."""
    counts = sweep.outcome_counts()  # (S, A, V, 3)
    scales = [f"a = {s:g}" for s in sweep.coords["scale"]]
    lines = [_row(["activation", "variant", *scales]), _row(["---"] * (2 + len(scales)))]
    for j, act in enumerate(sweep.coords["activation"]):
        for v, variant in enumerate(sweep.coords["variant"]):
            cells = [_counts_cell(counts[i, j, v], sweep.cells["diverged_step"][i, j, v])
                     for i in range(len(scales))]  # fmt: skip
            lines.append(_row([act, NAMES.get(variant, variant), *cells]))
    return "\n".join(lines)


def _scale_table(sweep: SweepFile, values: np.ndarray, fmt: str) -> str:
    """``values`` (S, A, V, N) as median [min..max] over seeds, rows activation x variant,
    columns scale."""
    scales = [f"a = {s:g}" for s in sweep.coords["scale"]]
    lines = [_row(["activation", "variant", *scales]), _row(["---"] * (2 + len(scales)))]
    for j, act in enumerate(sweep.coords["activation"]):
        for v, variant in enumerate(sweep.coords["variant"]):
            cells = [spread_text(values[i, j, v], fmt) for i in range(len(scales))]
            lines.append(_row([act, NAMES.get(variant, variant), *cells]))
    return "\n".join(lines)


def accuracy_table(sweep: SweepFile) -> str:
    """Held-out accuracy after training, median [min..max] over the seeds that did not
    diverge, per activation, variant and scale."""
    return _scale_table(sweep, sweep.cells["eval_accuracy"], "{:.2f}")


def ratio_table(sweep: SweepFile, step: int = 0) -> str:
    """The exploding measure max_l ||dL/dW_l|| / min_l ||dL/dW_l|| at grad step ``step``
    (0: initialisation), median [min..max] over seeds."""
    return _scale_table(sweep, sweep.cells["grad_ratio"][..., step], "{:.3g}")


def _distinct(values: Sequence[float]) -> list[str]:
    """The values in as few significant digits (3 to 8) as tell them apart."""
    for digits in range(3, 9):
        shown = [f"{v:.{digits}g}" for v in values]
        if len(set(shown)) == len(shown):
            break
    return shown


def comparison_lines(
    groups: Mapping[str, Sequence[Network]],
    metric: str = "beta",
    *,
    steps: Sequence[int] = (0,),
    levels: Sequence[float] | None = None,
    count: int = LEVELS,
    window: int = MATCH_WINDOW,
    over_the_run: bool = True,
) -> list[str]:
    """Lines comparing ``metric`` between groups of networks (e.g. ``{"bn": [...],
    "plain": [...]}``, one network per seed): at each matched step, at each matched loss
    (``levels``, default :func:`loss_levels` of all the groups' networks together) and,
    with ``over_the_run``, the median over each network's probes. Each value is ``median
    [min..max] (used/N; per network)``."""
    if metric not in PROBE_METRICS:
        raise ValueError(f"unknown probe metric {metric!r}: choose one of "
                         f"{', '.join(PROBE_METRICS)}")  # fmt: skip
    everyone = [n for nets in groups.values() for n in nets]
    if levels is None:
        levels = loss_levels(everyone, count, window=window).tolist()
    width = max(len(NAMES.get(g, g)) for g in groups) if groups else 0
    lines = []

    def block(title: str, spreads: dict) -> None:
        for i, (g, s) in enumerate(spreads.items()):
            lines.append(f"  {title if i == 0 else '':<16}{NAMES.get(g, g):<{width}}  {s.text()}")

    for step in steps:
        block(f"step {step}", {g: at_step(nets, metric, step) for g, nets in groups.items()})
    if not levels:
        lines.append("  (no training loss that every trained network reaches: no matched loss)")
    for level, shown in zip(levels, _distinct(levels)):
        spreads = {g: at_loss(nets, metric, level, window=window) for g, nets in groups.items()}
        block(f"loss {shown}", spreads)
        for g, s in spreads.items():
            at = s.steps[s.used]
            if at.size:
                lines.append(f"  {'':<16}{'':<{width}}    {NAMES.get(g, g)} probed at steps "
                             f"{', '.join(str(int(t)) for t in at)}")  # fmt: skip
    if over_the_run:
        block("over the run", {g: over_run(nets, metric) for g, nets in groups.items()})
    return lines


def probes_report(
    sweep: SweepFile, metric: str = "beta", *, count: int = LEVELS, steps: Sequence[int] = (0,)
) -> str:
    """Per activation and scale: the outcomes, then :func:`comparison_lines` of ``metric``
    between the variants (matched step, matched loss, over the run)."""
    if not len(sweep.coords["probe_step"]):
        return "no probes in this sweep (probe_every = 0)"
    head = (f"{metric}: {PROBE_METRICS[metric]}.\nmedian [min..max] (networks in the median / "
            "seeds; each seed's value, or why it is left out) over the seeds that trained; "
            f"matched loss: the first probe at or after the first step whose {MATCH_WINDOW}-step "
            "mean training loss is at most L")  # fmt: skip
    lines = [head]
    counts = sweep.outcome_counts()
    variants = list(sweep.coords["variant"])
    for j, act in enumerate(sweep.coords["activation"]):
        for i, scale in enumerate(sweep.coords["scale"]):
            groups = {v: sweep.networks(i, j, vi) for vi, v in enumerate(variants)}
            if not any(groups.values()):
                continue
            outcomes = "; ".join(f"{NAMES.get(v, v)} {outcome_text(counts[i, j, vi])}"
                                 for vi, v in enumerate(variants))  # fmt: skip
            lines.append(f"\n{act}, init scale {scale:g}: {outcomes}")
            lines += comparison_lines(groups, metric, steps=steps, count=count)
    return "\n".join(lines)
