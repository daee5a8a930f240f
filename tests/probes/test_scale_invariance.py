"""BN's scale invariance (Ioffe & Szegedy Sec. 3.3): it holds to round-off for every layer
that feeds BN, and fails by O(1) for the same layers of the plain twin."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape.models import ModelSpec, copy_shared_parameters
from landscape.probes.scale_invariance import (
    DEFAULT_TOLERANCE,
    IDENTITIES,
    bn_inputs,
    scale_invariance,
)

VGG_LAYERS = {
    "features.0.conv": "features.0.bn",
    "features.1.conv": "features.1.bn",
    "features.3.conv": "features.3.bn",
    "features.4.conv": "features.4.bn",
    "classifier.0.linear": "classifier.0.bn",
}


@pytest.fixture(scope="module")
def batch(digits):
    return digits.x_train[:64], digits.y_train[:64]


def twins(name: str = "vgg_small", **options):
    bn = ModelSpec(name, bn=True, options=options).build(seed=0)
    plain = ModelSpec(name, bn=False, options=options).build(seed=0)
    copy_shared_parameters(bn, plain)
    return bn, plain


def test_every_layer_that_feeds_bn_is_found_from_the_data_flow(batch):
    bn, plain = twins()
    fed = bn_inputs(bn, lambda m: m(batch[0]))
    assert fed == {**VGG_LAYERS, "classifier.1": None}  # the output layer feeds no BN
    assert set(bn_inputs(plain, lambda m: m(batch[0])).values()) == {None}


def test_the_identities_hold_to_round_off_for_the_bn_network(batch):
    bn, _ = twins()
    result = scale_invariance(bn, F.cross_entropy, batch)
    assert [(c.layer, c.bn) for c in result.layers] == list(VGG_LAYERS.items())
    assert result.passed and not result.failures()
    assert result.largest() < DEFAULT_TOLERANCE
    for check in result.layers:
        for identity in IDENTITIES:
            assert check.deviations[identity].shape == (3,)
            assert np.all(check.deviations[identity] < 1e-12), (check.layer, identity)


def test_the_identities_fail_by_order_one_for_the_plain_twin(batch):
    _, plain = twins()
    result = scale_invariance(plain, F.cross_entropy, batch, layers=list(VGG_LAYERS))
    assert [c.bn for c in result.layers] == [None] * 5
    assert not result.passed and not result.claimed  # nothing is claimed to hold
    for check in result.layers:
        for identity in IDENTITIES:
            assert np.all(check.deviations[identity] > 0.5), (check.layer, identity)
        # zero biases at init: (aW)u = a Wu exactly, so (i) deviates by |a - 1|
        np.testing.assert_allclose(check.deviations["output"], [0.9, 9.0, 999.0], rtol=1e-12)


def test_the_bias_cancels_and_nothing_else_needs_scaling(batch):
    """BN removes each unit's batch mean, and with it any bias: no need to scale it."""
    bn, _ = twins()
    with torch.no_grad():
        for name, p in bn.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    assert scale_invariance(bn, F.cross_entropy, batch, scales=[0.01, 3.0, 1e4]).passed


def test_bn_eps_is_what_breaks_exactness(batch):
    """With the layers' own eps = 1e-5 the deviation is of order |1 - 1/a^2| eps / var."""
    bn, _ = twins()
    result = scale_invariance(bn, F.cross_entropy, batch, scales=[10.0], eps="model")
    assert not result.passed
    worst = result.largest()
    assert 1e-9 < worst < 1.0


@pytest.mark.parametrize(
    "name, options, expected",
    [
        ("mlp", {"depth": 2, "width": 16}, 2),
        ("dln", {"depth": 3}, 2),  # no bias; BN after all but the last layer
        ("resnet20", {}, 21),  # 19 convs and 2 projection shortcuts feed BN
    ],
)
def test_other_families_hold_too(digits, name, options, expected):
    kw = {"input_shape": (64,), "num_classes": 64} if name == "dln" else {}
    spec = ModelSpec(name, bn=True, options=options, **kw)
    x = digits.x_train[:16]
    batch = (x.flatten(1), x.flatten(1)) if name == "dln" else (x, digits.y_train[:16])
    loss = F.mse_loss if name == "dln" else F.cross_entropy
    result = scale_invariance(spec.build(seed=0), loss, batch, scales=[1000.0])
    assert len(result.claimed) == expected
    assert result.passed, result.failures()[:3]


def test_noisy_bn_holds_too_and_the_model_is_left_as_found(batch):
    model = ModelSpec("vgg_small", bn=True, bn_noise="santurkar").build(seed=0).eval()
    before = {k: t.clone() for k, t in model.state_dict().items()}
    assert scale_invariance(model, F.cross_entropy, batch, scales=[10.0]).passed
    assert not model.training
    after = model.state_dict()
    assert all(torch.equal(after[k], t) and after[k].dtype == t.dtype for k, t in before.items())


def test_bad_arguments_are_refused(batch):
    bn, plain = twins()
    with pytest.raises(ValueError, match=r"scales must be positive numbers, got \[0.0\]"):
        scale_invariance(bn, F.cross_entropy, batch, scales=[0.0])
    with pytest.raises(ValueError, match=r"unknown eps policy 'small'"):
        scale_invariance(bn, F.cross_entropy, batch, eps="small")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\['features.2'\] are not Conv/Linear layers"):
        scale_invariance(bn, F.cross_entropy, batch, layers=["features.2"])
    with pytest.raises(ValueError, match=r"no Conv/Linear layer of the model feeds a BatchNorm"):
        scale_invariance(plain, F.cross_entropy, batch)


def test_the_docstring_examples_run():
    module = importlib.import_module("landscape.probes.scale_invariance")  # not the function
    assert doctest.testmod(module).failed == 0
