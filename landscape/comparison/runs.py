"""The networks of a run log (``run.h5`` of ``landscape train``), for the comparisons."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landscape import store
from landscape.comparison.matched import Network, probe_metrics
from landscape.comparison.outcomes import OutcomeRules, Verdict, classify

__all__ = ["run_networks"]


def run_networks(
    run_file: str | Path,
    *,
    num_classes: int | None,
    label: str = "",
    rules: OutcomeRules | None = None,
) -> dict[str, tuple[Network, Verdict]]:
    """Per variant of ``run_file``: its :class:`Network` (training curve ``/train``, probes
    ``/probe`` when there are any, outcome by :func:`classify`) and the verdict.

    Args:
        run_file: a run log.
        num_classes: classes of the task (chance = 1 / num_classes); None for regression.
        label: the networks' label (e.g. ``seed 0``; default the variant).
        rules: the outcome rules (default :class:`OutcomeRules`).
    """
    path = Path(run_file)
    out = {}
    with store.open_run(path) as f:
        for variant in store.read_attr(f, "variants", []):
            train = store.read_series(f[f"train/{variant}"], steps="increasing",
                                      columns=("step", "loss", "accuracy"))  # fmt: skip
            verdict = classify(train["step"], train["loss"], train["accuracy"],
                               num_classes=num_classes, rules=rules)  # fmt: skip
            group = store.group_of(f, f"probe/{variant}", path)
            if group is not None and len(group):
                needs = ("step", "beta", "grad_distance", "loss")
                rows = store.read_series(group, steps="increasing", columns=needs)
                probe_steps, probes = rows["step"], probe_metrics(rows)
            else:
                probe_steps, probes = np.empty(0, dtype=np.int64), {}
            net = Network(label or variant, verdict.outcome, train["step"], train["loss"],
                          probe_steps, probes, verdict.diverged_step)  # fmt: skip
            out[variant] = (net, verdict)
    return out
