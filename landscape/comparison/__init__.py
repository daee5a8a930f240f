"""Comparing BN and plain networks fairly (science.md s. 5): outcomes first, probes at
matched training loss beside matched step, medians over the seeds that trained, and the
files and power laws of the init-scale sweep.

Owns :mod:`.outcomes` (trained / stalled / diverged, the rules as named constants),
:mod:`.matched` (matched loss and matched step, :class:`Spread` over seeds: a network that
stalled or diverged is counted, never averaged in), :mod:`.scaling` (slopes of log-log
fits), :mod:`.runs` (a run log's networks), :mod:`.sweep_file` (the layout, writer and
checked reader of sweep files) and :mod:`.report` (text tables of all of it).

May import: :mod:`landscape.store` (files). Arrays in, numbers out: no training, no
rendering, and none of the sibling numerical wings.
"""

from landscape.comparison.matched import (
    LEVELS,
    MATCH_WINDOW,
    PROBE_METRICS,
    Network,
    Spread,
    at_loss,
    at_step,
    first_step_reaching,
    loss_levels,
    over_run,
    probe_metrics,
    trailing_mean,
)
from landscape.comparison.outcomes import (
    FINAL_WINDOW,
    OUTCOMES,
    STALL_LOSS_FRACTION,
    STALL_MARGIN,
    Outcome,
    OutcomeRules,
    Verdict,
    classify,
)
from landscape.comparison.report import (
    accuracy_table,
    comparison_lines,
    outcome_text,
    probes_report,
    ratio_table,
    slopes_table,
    spread_text,
    trainability_table,
)
from landscape.comparison.runs import run_networks
from landscape.comparison.scaling import loglog_slope, loglog_slopes
from landscape.comparison.sweep_file import SweepFile, read_sweep

__all__ = [
    "FINAL_WINDOW",
    "LEVELS",
    "MATCH_WINDOW",
    "OUTCOMES",
    "PROBE_METRICS",
    "STALL_LOSS_FRACTION",
    "STALL_MARGIN",
    "Network",
    "Outcome",
    "OutcomeRules",
    "Spread",
    "SweepFile",
    "Verdict",
    "accuracy_table",
    "at_loss",
    "at_step",
    "classify",
    "comparison_lines",
    "first_step_reaching",
    "loglog_slope",
    "loglog_slopes",
    "loss_levels",
    "outcome_text",
    "over_run",
    "probe_metrics",
    "probes_report",
    "ratio_table",
    "read_sweep",
    "run_networks",
    "slopes_table",
    "spread_text",
    "trailing_mean",
    "trainability_table",
]
