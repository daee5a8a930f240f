"""ActivationRecorder: percentiles of a unit's activations over training, recorded without
changing the run (noisy BN included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape import store
from landscape.models import ModelSpec
from landscape.train import ActivationRecorder, TrainConfig, train_pair
from tests.train.helpers import TINY

VGG = {**TINY, "model": "vgg_small", "model_options": {"width": 4, "hidden": [16]}}
UNITS = {"features.1.bn": 2, "classifier.0.bn": 5}


def final(run, variant: str) -> dict[str, torch.Tensor]:
    path = store.checkpoint_path(run / "checkpoints" / variant, 30)
    return store.load_checkpoint(path).model_state


@pytest.mark.parametrize("noise", ["none", "santurkar"])
def test_recording_leaves_the_run_as_it_would_have_been(tmp_path, digits, noise):
    config = TrainConfig(**VGG, bn="bn" if noise != "none" else "both", bn_noise=noise)
    recorder = ActivationRecorder(UNITS, every=10)
    train_pair(config, tmp_path / "with", dataset=digits, hooks=[recorder])
    train_pair(config, tmp_path / "without", dataset=digits)
    for v in config.variants:
        a, b = final(tmp_path / "with", v), final(tmp_path / "without", v)
        assert all(torch.equal(a[k], b[k]) for k in b), v
        series = recorder.series(v)
        assert set(series) == set(UNITS)  # the plain twin's bn is an Identity: the conv output
        for s in series.values():
            np.testing.assert_array_equal(s["step"], [0, 10, 20])
            assert s["percentiles"].shape == (3, 7)
            assert np.all(np.diff(s["percentiles"], axis=1) >= 0)


def test_capture_is_the_unit_of_the_module_output(digits):
    model = ModelSpec("vgg_small", bn=True, options={"width": 4}).build(seed=0).eval()
    x = digits.x_train[:32]
    got = ActivationRecorder({"features.0.bn": 1}, every=1).capture(model, x)
    assert not model.training  # modes come back
    model.train()
    expected = model.features[0].bn(model.features[0].conv(x))[:, 1].double().flatten()
    np.testing.assert_allclose(got["features.0.bn"], expected.detach().numpy(), rtol=1e-6)


def test_bad_settings_are_refused(digits):
    model = ModelSpec("vgg_small", bn=True).build(seed=0)
    with pytest.raises(ValueError, match=r"no module\(s\) \['features.9.bn'\]"):
        ActivationRecorder({"features.9.bn": 0}, every=1).capture(model, digits.x_train[:4])
    with pytest.raises(ValueError, match=r"features.0.bn has 16 units, not unit 99"):
        ActivationRecorder({"features.0.bn": 99}, every=1).capture(model, digits.x_train[:4])
    with pytest.raises(ValueError, match=r"every must be >= 1"):
        ActivationRecorder(UNITS, every=0)
