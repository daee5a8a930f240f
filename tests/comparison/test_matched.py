"""landscape.comparison.matched: probes at matched loss and matched step, over seeds.

Loss curves are made by hand (or closed-form exponentials), so the step each network
reaches a level at is known; a network that stalls or diverges is counted, never averaged in.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape.comparison import (
    Network,
    at_loss,
    at_step,
    first_step_reaching,
    loss_levels,
    over_run,
    probe_metrics,
    trailing_mean,
)

PROBES = np.arange(0, 100, 10)


def _net(label, loss, beta=None, outcome="trained", diverged=None):
    loss = np.asarray(loss, dtype=float)
    beta = np.arange(len(PROBES), dtype=float) if beta is None else np.asarray(beta, float)
    return Network(label, outcome, np.arange(len(loss)), loss, PROBES, {"beta": beta}, diverged)


def _exp(l0, tau, n=100):
    return l0 * np.exp(-np.arange(n) / tau)


def test_trailing_mean_is_the_mean_of_the_last_rows():
    np.testing.assert_allclose(trailing_mean([3.0, 1.0, 2.0, 6.0], 3), [3.0, 2.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="window"):
        trailing_mean([1.0], 0)


def test_the_first_step_reaching_a_hand_made_curve():
    loss = [2.3, 2.2, 1.4, 1.6, 0.9, 1.1, 0.5]
    steps = np.arange(7)
    assert first_step_reaching(steps, loss, 1.5, window=1) == 2
    assert first_step_reaching(steps, loss, 1.0, window=1) == 4
    # window 2: means 2.3, 2.25, 1.8, 1.5, 1.25, 1.0, 0.8
    assert first_step_reaching(steps, loss, 1.5, window=2) == 3
    assert first_step_reaching(steps, loss, 1.0, window=2) == 5
    assert first_step_reaching(steps, loss, 0.1, window=1) is None
    assert (
        first_step_reaching(steps * 10 + 100, loss, 1.5, window=1) == 120
    )  # the step, not the row


def test_the_first_step_reaching_an_exponential_is_closed_form():
    l0, tau, level = 2.0, 25.0, 0.5
    expected = math.ceil(tau * math.log(l0 / level))  # l0 exp(-t/tau) <= level
    assert first_step_reaching(np.arange(100), _exp(l0, tau), level, window=1) == expected


def test_a_diverged_row_never_reaches_a_level():
    loss = [2.0, 1.5, np.nan, np.nan]
    assert first_step_reaching(np.arange(4), loss, 1.0, window=1) is None


def test_levels_lie_inside_the_range_every_trained_network_reaches():
    # starts 2.0 and 3.0, bests 2.0 e^-99/25 and 3.0 e^-99/50 (at its last probe, 90: e^-1.8)
    a, b = _net("a", _exp(2.0, 25.0)), _net("b", _exp(3.0, 50.0))
    high, low = 2.0, 3.0 * math.exp(-90 / 50)  # min of the starts, max of the bests (probed)
    levels = loss_levels([a, b], count=3, window=1)
    expected = [high * (low / high) ** (i / 4) for i in (1, 2, 3)]
    np.testing.assert_allclose(levels, expected)
    stalled = _net("c", np.full(100, 2.3), outcome="stalled")
    np.testing.assert_allclose(loss_levels([a, b, stalled], count=3, window=1), expected)


def test_no_shared_range_gives_no_levels():
    a, b = _net("a", np.linspace(2.0, 1.9, 100)), _net("b", np.linspace(1.5, 0.1, 100))
    assert loss_levels([a, b], window=1).size == 0  # b starts below a's best
    assert loss_levels([_net("c", _exp(2.0, 10.0), outcome="diverged")]).size == 0


def test_matched_loss_takes_the_first_probe_at_or_after_the_step_reaching_it():
    fast, slow = _net("fast", _exp(2.0, 10.0)), _net("slow", _exp(2.0, 40.0))
    s = at_loss([fast, slow], "beta", 1.0, window=1)
    # fast reaches 1.0 at ceil(10 ln 2) = 7 -> probe 10 (index 1); slow at 28 -> probe 30
    np.testing.assert_allclose(s.values, [1.0, 3.0])
    np.testing.assert_allclose(s.steps, [10.0, 30.0])
    assert s.median == 2.0 and (s.low, s.high) == (1.0, 3.0)


def test_a_diverged_network_is_counted_and_kept_out_of_the_median():
    nets = [_net("seed 0", _exp(2.0, 10.0), beta=np.full(10, 1.0)),
            _net("seed 1", _exp(2.0, 10.0), beta=np.full(10, 3.0)),
            _net("seed 2", [2.0, 1.0, np.inf], beta=np.full(10, 1000.0), outcome="diverged",
                 diverged=2)]  # fmt: skip
    for s in (at_step(nets, "beta", 0), at_loss(nets, "beta", 1.5), over_run(nets, "beta")):
        assert s.median == 2.0 and s.high == 3.0  # 1000 never enters
        assert s.notes[2] == "diverged at step 2"
        assert s.counts == {"trained": 2, "stalled": 0, "diverged": 1, "used": 2}
        assert "seed 2: diverged at step 2" in s.text()


def test_a_stalled_network_and_one_that_never_reaches_the_level_are_reported():
    nets = [_net("a", _exp(2.0, 10.0), beta=np.full(10, 5.0)),
            _net("b", np.full(100, 2.3), beta=np.full(10, 0.01), outcome="stalled"),
            _net("c", np.full(100, 1.8), beta=np.full(10, 7.0))]  # fmt: skip
    s = at_loss(nets, "beta", 1.0, window=1)
    assert s.notes == ["", "stalled", "never reaches 1"]
    assert s.median == 5.0 and s.counts["used"] == 1
    assert s.text() == "5 [5..5] (1/3; a: 5, b: stalled, c: never reaches 1)"
    nobody = at_loss(nets[1:], "beta", 1.0, window=1)
    assert math.isnan(nobody.median) and nobody.text(per_network=False) == "- (0/2)"


def test_matched_step_needs_a_probe_of_that_step():
    s = at_step([_net("a", _exp(2.0, 10.0))], "beta", 5)
    assert s.notes == ["no probe at step 5"]
    s = at_step([_net("a", _exp(2.0, 10.0))], "beta", 20)
    assert s.values.tolist() == [2.0] and s.steps.tolist() == [20.0]


def test_a_level_reached_after_the_last_probe_has_no_value():
    s = at_loss([_net("a", _exp(2.0, 10.0))], "beta", 2.0 * math.exp(-9.45), window=1)  # at 95
    assert s.notes == ["no probe after step 95"]


def test_an_unknown_metric_names_the_ones_there_are():
    with pytest.raises(ValueError, match="choose one of beta"):
        at_step([_net("a", _exp(2.0, 10.0))], "gamma", 0)


def test_probe_metrics_of_probe_rows():
    rows = {"beta": [1.0, 2.0], "grad_distance": [[0.1, 0.4], [0.2, 0.3]],
            "loss": [[2.0, 2.5], [1.0, 0.5]]}  # fmt: skip
    m = probe_metrics(rows)
    np.testing.assert_allclose(m["grad_pred"], [0.4, 0.3])
    np.testing.assert_allclose(m["loss_range"], [0.5, 0.5])
    np.testing.assert_allclose(m["beta"], [1.0, 2.0])


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="outcome must be one of"):
        _net("a", [1.0], outcome="exploded")


def test_the_probe_at_or_after_a_step_and_why_a_network_is_left_out():
    from landscape.comparison.matched import Network

    net = Network("a", "trained", np.arange(9), np.ones(9), np.array([2, 4, 6]))
    assert net.probe_index(4, exact=True) == 1 and net.probe_index(3, exact=True) is None
    assert net.probe_index(4, exact=False) == 1 and net.probe_index(5, exact=False) == 2
    assert net.probe_index(7, exact=False) is None and net.excluded == ""
    gone = Network("b", "diverged", np.arange(3), np.ones(3), np.arange(0), diverged_step=2)
    assert gone.excluded == "diverged at step 2"
    assert Network("c", "diverged", np.arange(3), np.ones(3), np.arange(0)).excluded == "diverged"
    assert Network("d", "stalled", np.arange(3), np.ones(3), np.arange(0)).excluded == "stalled"


def test_loss_levels_skip_networks_that_did_not_train_and_need_room_between_best_and_start():
    from landscape.comparison.matched import Network, loss_levels

    up = Network("up", "stalled", np.arange(3), np.array([9.0, 9.0, 9.0]), np.arange(0))
    a = Network("a", "trained", np.arange(3), np.array([4.0, 2.0, 1.0]), np.arange(0))
    assert loss_levels([up, a], count=1, window=1).tolist() == [2.0]  # the stall is skipped
    flat = Network("f", "trained", np.arange(3), np.array([2.0, 2.0, 2.0]), np.arange(0))
    assert loss_levels([flat], count=1, window=1).size == 0  # best == start: no room
    zero = Network("z", "trained", np.arange(3), np.array([4.0, 1.0, 0.0]), np.arange(0))
    assert loss_levels([zero], count=1, window=1).size == 0  # a best of 0 has no log
