"""landscape.comparison.runs: the networks of a run log, with their outcomes and probes."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.comparison import at_step, run_networks
from landscape.store import RUN_FILE
from landscape.train import TrainConfig, train_pair

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_run_logs_networks(tmp_path, digits):
    config = TrainConfig(model="mlp", model_options={"depth": 1, "width": 16}, steps=6,
                         batch_size=32, eval_every=3, probe_every=2, probe_count=2,
                         device="cpu")  # fmt: skip
    train_pair(config, tmp_path, dataset=digits)
    nets = run_networks(tmp_path / RUN_FILE, num_classes=10, label="seed 0")
    assert set(nets) == {"bn", "plain"}
    net, verdict = nets["bn"]
    assert net.label == "seed 0" and net.outcome == verdict.outcome
    assert net.steps.tolist() == list(range(6)) and net.probe_steps.tolist() == [0, 2, 4]
    assert set(net.probes) == {"beta", "grad_pred", "loss_range"}
    assert np.isfinite(at_step([net], "beta", 2).values).all()


def test_a_run_without_probes_has_no_probe_metrics(tmp_path, digits):
    config = TrainConfig(model="mlp", model_options={"depth": 1, "width": 16}, steps=3,
                         batch_size=32, eval_every=3, bn="plain", device="cpu")  # fmt: skip
    train_pair(config, tmp_path, dataset=digits)
    net, _ = run_networks(tmp_path / RUN_FILE, num_classes=10)["plain"]
    assert net.label == "plain" and net.probes == {} and net.probe_steps.size == 0
    with pytest.raises(ValueError, match="no probe metric 'beta'"):
        at_step([net], "beta", 0)


def test_a_run_logs_networks_are_its_curves_classified_with_the_rules_given(tmp_path, digits):
    """Each network holds the logged losses and probe values; its verdict is ``classify`` of
    the logged step, loss and accuracy with the task's classes and the rules given; a
    network whose loss blew up carries the step it diverged at."""
    import h5py

    from landscape.comparison import OutcomeRules, classify

    config = TrainConfig(model="mlp", model_options={"depth": 1, "width": 16}, steps=6,
                         batch_size=32, eval_every=3, probe_every=2, probe_count=2,
                         device="cpu")  # fmt: skip
    train_pair(config, tmp_path / "ok", dataset=digits)
    path = tmp_path / "ok" / RUN_FILE
    rules = OutcomeRules(stall_margin=0.95)  # nothing reaches chance + 0.95: all stall
    nets = run_networks(path, num_classes=10, rules=rules)
    with h5py.File(path, "r") as f:
        for variant, (net, verdict) in nets.items():
            log = f[f"train/{variant}"]
            step, loss, acc = (np.asarray(log[c][()]) for c in ("step", "loss", "accuracy"))
            assert np.array_equal(net.loss, loss) and np.array_equal(net.steps, step)
            assert verdict == classify(step, loss, acc, num_classes=10, rules=rules)
            assert verdict.outcome == "stalled" and np.isfinite(verdict.final_accuracy)
            beta = np.asarray(f[f"probe/{variant}"]["beta"][()])
            assert np.array_equal(net.probes["beta"], beta)
    regression = run_networks(path, num_classes=None)["bn"][1]
    assert "x initial" in regression.reason  # the loss rule, without classes
    blown = TrainConfig(model="vgg_small", steps=6, batch_size=32, eval_every=3,
                        init_scale=10.0, bn="plain", device="cpu")  # fmt: skip
    # (plain ReLU vgg_small at 10x its initial scale diverges at step 2: the README's sweep)
    train_pair(blown, tmp_path / "blown", dataset=digits)
    net, verdict = run_networks(tmp_path / "blown" / RUN_FILE, num_classes=10)["plain"]
    assert verdict.outcome == "diverged" and net.diverged_step == verdict.diverged_step is not None


@pytest.mark.parametrize("series", ["train/bn", "probe/bn"])
def test_a_run_log_whose_steps_go_back_is_refused_as_damaged(tmp_path, digits, series):
    import h5py

    config = TrainConfig(model="mlp", model_options={"depth": 1, "width": 16}, steps=6,
                         batch_size=32, eval_every=3, probe_every=2, probe_count=2,
                         device="cpu")  # fmt: skip
    train_pair(config, tmp_path, dataset=digits)
    with h5py.File(tmp_path / RUN_FILE, "r+") as f:
        step = f[series]["step"]
        step[0], step[1] = step[1], step[0]
    with pytest.raises(ValueError, match=r"where steps only increase: the file is damaged"):
        run_networks(tmp_path / RUN_FILE, num_classes=10)


def test_outcome_rules_are_recorded_as_their_three_constants():
    from landscape.comparison import FINAL_WINDOW, STALL_MARGIN, OutcomeRules
    from landscape.comparison.outcomes import STALL_LOSS_FRACTION

    assert OutcomeRules().to_dict() == {"stall_margin": STALL_MARGIN,
                                        "stall_loss_fraction": STALL_LOSS_FRACTION,
                                        "final_window": FINAL_WINDOW}  # fmt: skip
