"""landscape.comparison.outcomes: trained / stalled / diverged, by the documented rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape.comparison import FINAL_WINDOW, STALL_MARGIN, OutcomeRules, classify


def _curve(n=100, loss=1.0, accuracy=0.9):
    return np.arange(n), np.full(n, loss), np.full(n, accuracy)


def test_the_first_non_finite_loss_is_the_divergence_step():
    steps, loss, acc = _curve()
    loss[37:] = np.nan
    loss[37] = np.inf
    v = classify(steps, loss, acc, num_classes=10)
    assert (v.outcome, v.diverged_step) == ("diverged", 37)
    assert "step 37" in v.reason
    assert v.final_loss == 1.0  # of the finite rows before it


def test_accuracy_at_most_chance_plus_the_margin_is_stalled():
    chance = 0.1
    steps, loss, acc = _curve(accuracy=chance + STALL_MARGIN - 1e-9)
    assert classify(steps, loss, acc, num_classes=10).outcome == "stalled"
    acc[-1] += 0.01 * FINAL_WINDOW  # the window's mean just above the margin
    v = classify(steps, loss, acc, num_classes=10)
    assert v.outcome == "trained"
    assert math.isclose(v.final_accuracy, chance + STALL_MARGIN + 0.01, abs_tol=1e-8)


def test_only_the_last_window_counts():
    steps, loss, acc = _curve(accuracy=0.95)
    acc[-FINAL_WINDOW:] = 0.1  # forgot everything at the end
    assert classify(steps, loss, acc, num_classes=10).outcome == "stalled"
    longer = OutcomeRules(final_window=FINAL_WINDOW + 80)
    assert classify(steps, loss, acc, num_classes=10, rules=longer).outcome == "trained"


def test_regression_stalls_when_the_loss_does_not_fall():
    steps = np.arange(100)
    falling = np.linspace(2.0, 0.2, 100)
    assert classify(steps, falling).outcome == "trained"
    flat = np.full(100, 2.0) - 0.001 * steps  # 5 % down: above 0.9 x the start
    v = classify(steps, flat, np.full(100, np.nan), num_classes=None)
    assert v.outcome == "stalled" and "initial" in v.reason


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="one equal length"):
        classify([0, 1], [1.0])
    with pytest.raises(ValueError, match="one equal length"):
        classify([], [])


def test_a_verdict_carries_the_final_loss_accuracy_and_its_reason():
    """The final values are the means over the last FINAL_WINDOW finite rows; accuracy
    exactly at chance + margin is a stall; the reason names the numbers it compared."""
    steps = np.arange(3 * FINAL_WINDOW)
    loss = np.linspace(2.0, 1.0, len(steps))
    rules = OutcomeRules(stall_margin=0.25)  # chance 1/4 + 1/4: exact in binary
    at_margin = classify(steps, loss, np.full(len(steps), 0.5), num_classes=4, rules=rules)
    assert at_margin.outcome == "stalled" and at_margin.final_accuracy == 0.5
    assert at_margin.final_loss == pytest.approx(loss[-FINAL_WINDOW:].mean())
    assert "<= chance 0.25 + 0.25" in at_margin.reason
    good = classify(steps, loss, np.full(len(steps), 0.9), num_classes=10)
    assert good.outcome == "trained" and good.final_accuracy == pytest.approx(0.9)
    assert (
        good.final_loss == pytest.approx(loss[-FINAL_WINDOW:].mean()) and "> chance" in good.reason
    )
    acc = np.full(len(steps), 0.5)
    gone = classify(steps, np.r_[loss[:-1], np.inf], acc, num_classes=10)
    assert gone.outcome == "diverged" and gone.final_accuracy == pytest.approx(0.5)


def test_regression_stalls_above_a_fraction_of_the_first_loss_and_trains_at_it():
    """No accuracy: trained when the final loss is at most stall_loss_fraction x the mean of
    the first FINAL_WINDOW losses (a first loss of 4 tells x from /)."""
    rules = OutcomeRules(stall_loss_fraction=0.5, final_window=2)
    at = classify([0, 1, 2, 3], [4.0, 4.0, 2.0, 2.0], rules=rules)
    assert at.outcome == "trained" and at.final_loss == 2.0 and "<= 0.5 x initial 4" in at.reason
    above = classify([0, 1, 2, 3], [4.0, 4.0, 2.5, 2.5], rules=rules)
    assert (
        above.outcome == "stalled"
        and above.final_loss == 2.5
        and "> 0.5 x initial 4" in above.reason
    )
    assert math.isnan(above.final_accuracy) and math.isnan(at.final_accuracy)
