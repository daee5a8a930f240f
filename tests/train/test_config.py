"""TrainConfig: validation, schedules, the paper's probe grids, choices from Literal annotations."""

from __future__ import annotations

import re

import numpy as np
import pytest

from landscape.train import TrainConfig, checkpoint_schedule, lr_at
from landscape.train.config import fill_defaults
from tests.train.helpers import TINY


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"lr": -0.1}, "learning rate"),
        ({"steps": 0}, "steps"),
        ({"optimizer": "sgdd"}, "optimizer"),
    ],
)
def test_bad_config(change, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{**TINY, **change}).validate()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"momentum": NAN}, r"momentum \(--momentum\) must be a number, got nan"),
        ({"momentum": 1.0}, r"momentum \(--momentum\) must be in \[0, 1\), got 1\.0"),
        ({"momentum": -0.5}, r"must be in \[0, 1\)"),
        ({"weight_decay": NAN}, r"weight_decay \(--weight-decay\) must be a number, got nan"),
        ({"weight_decay": -1.0}, r"weight_decay \(--weight-decay\) must be >= 0\.0"),
        ({"lr_gamma": NAN}, r"lr_gamma \(--lr-gamma\) must be a number"),
        ({"lr_gamma": -1.0}, r"lr_gamma \(--lr-gamma\) must be > 0, got -1\.0"),
        ({"lr_gamma": 0.0}, r"lr_gamma \(--lr-gamma\) must be > 0"),
        ({"lr": INF}, r"lr \(--lr\) must be a number, got inf"),
        ({"lr": 0.0}, r"learning rate \(--lr\) must be > 0"),
        ({"init_scale": NAN}, r"--init-scale"),
        ({"batch_size": 2.5}, r"batch_size \(--batch-size\) must be an integer, got 2\.5"),
        ({"batch_size": True}, r"must be an integer, got True"),
        ({"eval_every": 0}, r"eval_every \(--eval-every\) must be >= 1"),
        ({"probe_every": -1}, r"--probe-every"),
        ({"probe_low": NAN}, r"probe_low \(--probe-low\) must be a number"),
        ({"probe_low": 4.0, "probe_high": 0.5}, r"low \(4\.0\) is larger than high"),
        ({"probe_count": 0}, r"--probe-count"),
        ({"lr_milestones": [5, NAN]}, r"lr_milestones \(--lr-milestones\) must be an integer"),
        ({"lr_milestones": [31]}, r"must be in \[0, 30\]"),
        ({"checkpoint_steps": [-1]}, r"--checkpoint-steps"),
        ({"hessian_every": -1}, r"hessian_every \(--hessian-every\) must be >= 0, got -1"),
        ({"hessian_top_k": 0}, r"hessian_top_k \(--hessian-top-k\) must be >= 1"),
        ({"hessian_examples": 0}, r"--hessian-examples"),
        ({"hessian_batch_size": 2.0}, r"hessian_batch_size \(--hessian-batch-size\) must be an"),
        ({"hessian_trace_rtol": NAN}, r"hessian_trace_rtol \(--hessian-trace-rtol\) must be a "),
        ({"hessian_trace_rtol": -0.1}, r"hessian_trace_rtol \(--hessian-trace-rtol\) must be >="),
    ],
)
def test_every_number_is_finite_and_in_range(change, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{**TINY, **change}).validate()


def test_schedules():
    c = TrainConfig(steps=1000, checkpoint_log=4, checkpoint_steps=[7])
    assert checkpoint_schedule(c) == [0, 1, 7, 10, 100, 1000]
    c = TrainConfig(lr=1.0, lr_milestones=[10, 20], lr_gamma=0.5)
    assert [lr_at(c, s) for s in (0, 10, 19, 20)] == [1.0, 0.5, 0.5, 0.25]


def test_probe_step_grid_follows_the_paper_per_model():
    vgg = TrainConfig(model="vgg_small", lr=0.1).step_sizes()
    assert (vgg.low, vgg.high, vgg.spacing) == (0.5, 4.0, "linear")
    np.testing.assert_allclose(vgg.values()[[0, -1]], [0.05, 0.4])
    dln = TrainConfig(model="dln", lr=1e-6).step_sizes()
    assert (dln.low, dln.high, dln.spacing) == (0.01, 30.0, "log")
    mine = TrainConfig(model="dln", lr=1e-6, probe_low=1.0, probe_spacing="linear").step_sizes()
    assert (mine.low, mine.high, mine.spacing) == (1.0, 30.0, "linear")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("activation", "swish", "activation must be one of relu, sigmoid, tanh, got 'swish'"),
        ("probe_spacing", "cubic", "probe_spacing must be one of linear, log, None"),
        ("optimizer", "lbfgs", "optimizer must be one of sgd, momentum, adam"),
        ("hessian_bn_mode", "recalibrate", "hessian_bn_mode must be one of train, eval"),
    ],
)
def test_choices_come_from_the_literal_annotations(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**{field: value}).validate()
    TrainConfig(probe_spacing=None).validate()  # an optional Literal allows None


def test_a_configuration_stored_before_a_field_existed_takes_its_default():
    """Runs and checkpoints written before the Hessian fields: from_dict and the comparison
    of a resume (fill_defaults) read them as trained with the defaults."""
    new = TrainConfig(**TINY)
    old = {k: v for k, v in new.to_dict().items() if not k.startswith("hessian_")}
    assert TrainConfig.from_dict(old) == new
    assert fill_defaults(old) == new.to_dict()
    assert fill_defaults({**old, "hessian_every": 5})["hessian_every"] == 5
