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
