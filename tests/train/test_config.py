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


def test_checkpoints_every_k_steps_include_0_and_the_end():
    assert checkpoint_schedule(TrainConfig(steps=10, checkpoint_every=4)) == [0, 4, 8, 10]
    assert checkpoint_schedule(TrainConfig(steps=9, checkpoint_every=3)) == [0, 3, 6, 9]
    assert checkpoint_schedule(TrainConfig(steps=1, checkpoint_log=3)) == [0, 1]


def test_bn_noise_is_refused_where_it_cannot_apply():
    """Noise after BN needs BN layers, and inline probes or Hessians in training mode would
    see new noise at every pass; eval-mode probes and Hessians are fine."""
    with pytest.raises(ValueError, match="--bn plain trains none"):
        TrainConfig(bn="plain", bn_noise="santurkar").validate()
    TrainConfig(bn="both", bn_noise="santurkar").validate()
    for noisy in ({"probe_every": 5}, {"ics_every": 5}, {"hessian_every": 5}):
        with pytest.raises(ValueError, match="draws new noise"):
            TrainConfig(bn="bn", bn_noise="santurkar", **noisy).validate()
        TrainConfig(bn="bn", **noisy).validate()  # without noise
    TrainConfig(bn="bn", bn_noise="santurkar", probe_every=5, ics_every=5,
                probe_bn_mode="eval").validate()  # fmt: skip
    TrainConfig(bn="bn", bn_noise="santurkar", hessian_every=5, hessian_bn_mode="eval").validate()


def test_a_probe_grid_is_checked_whenever_it_is_set_or_used():
    for grid in (
        {"probe_low": 5.0},  # above the VGG grid's high, 4
        {"probe_high": 0.1},
        {"ics_every": 1, "probe_low": 5.0, "probe_high": 1.0},
    ):
        with pytest.raises(ValueError, match="larger than high"):
            TrainConfig(**grid).validate()
    assert len(TrainConfig(probe_count=5).step_sizes().values()) == 5


def test_optimizers_variants_and_the_models_spec():
    import torch
    from torch import nn

    from landscape.data import load_dataset
    from landscape.train.config import make_optimizer

    net = nn.Linear(2, 1)
    sgd = make_optimizer(TrainConfig(optimizer="sgd", lr=0.3, weight_decay=0.01), net)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0
    assert (sgd.defaults["lr"], sgd.defaults["weight_decay"]) == (0.3, 0.01)
    config = TrainConfig(optimizer="momentum", lr=0.05, momentum=0.8, weight_decay=0.02)
    mom = make_optimizer(config, net)
    assert type(mom) is torch.optim.SGD
    assert (mom.defaults["lr"], mom.defaults["momentum"], mom.defaults["weight_decay"]) == (
        0.05, 0.8, 0.02)  # fmt: skip
    adam = make_optimizer(TrainConfig(optimizer="adam", lr=0.02, weight_decay=0.03), net)
    assert type(adam) is torch.optim.Adam
    assert (adam.defaults["lr"], adam.defaults["weight_decay"]) == (0.02, 0.03)
    assert TrainConfig(bn="both").variants == ("bn", "plain")
    assert TrainConfig(bn="plain").variants == ("plain",)
    config = TrainConfig(model="mlp", activation="tanh", init="kaiming", init_scale=2.0,
                         model_options={"depth": 1}, bn_noise="santurkar")  # fmt: skip
    data = load_dataset("synthetic", dim=5, num_classes=3, n=20)
    bn, plain = config.spec(data, True), config.spec(data, False)
    want = ("mlp", True, "tanh", "kaiming", 2.0)
    assert (bn.name, bn.bn, bn.activation, bn.init, bn.init_scale) == want
    assert bn.input_shape == (5,) and bn.num_classes == 3 and bn.options == {"depth": 1}
    assert bn.bn_noise == "santurkar" and plain.bn_noise == "none" and plain.bn is False


def test_the_edges_of_the_allowed_values_and_unknown_stored_options():
    TrainConfig(bn="plain").validate()  # plain, without noise: fine
    TrainConfig(momentum=0.0).validate()
    TrainConfig(steps=10, checkpoint_steps=[0, 10], lr_milestones=[10]).validate()
    with pytest.raises(ValueError, match="checkpoint_steps"):
        TrainConfig(steps=10, checkpoint_steps=[11]).validate()
    with pytest.raises(ValueError, match=r"unknown training options: \['colour'\]"):
        TrainConfig.from_dict({**TrainConfig().to_dict(), "colour": 1})
