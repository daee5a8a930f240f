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
    with pytest.raises(ValueError, match=r"features.0.bn has 16 units, not unit 16"):
        ActivationRecorder({"features.0.bn": 16}, every=1).capture(model, digits.x_train[:4])
    assert ActivationRecorder({"features.0.bn": 15}, every=1).capture(model, digits.x_train[:4])
    for bad in [(-0.5, 50.0), (50.0, 100.5)]:
        with pytest.raises(ValueError, match=r"percentiles must lie in \[0, 100\]"):
            ActivationRecorder(UNITS, every=1, percentiles=bad)
    assert ActivationRecorder(UNITS, every=1, percentiles=(0.0, 100.0)).percentiles == (0.0, 100.0)
    with pytest.raises(ValueError, match=r"every must be >= 1"):
        ActivationRecorder(UNITS, every=0)


def test_series_are_in_step_order_and_an_unseen_variant_has_none(digits):
    model = ModelSpec("vgg_small", bn=True, options={"width": 4}).build(seed=0)
    recorder = ActivationRecorder({"features.0.bn": 1}, every=5, percentiles=(0.0, 50.0, 100.0))
    batches = {
        step: (digits.x_train[8 * k : 8 * k + 8], None) for k, step in enumerate((10, 0, 5, 7))
    }
    for step, batch in batches.items():  # out of order; step 7 is not a recording step
        recorder("bn", step, model, None, batch, None)
    recorder("bn", 5, model, None, batches[0], None)  # a step recorded twice: kept in call order
    series = recorder.series("bn")["features.0.bn"]
    assert series["step"].dtype == np.int64 and series["percentiles"].dtype == np.float64
    np.testing.assert_array_equal(series["step"], [0, 5, 5, 10])
    for row, batch in zip(series["percentiles"], [0, 5, 0, 10]):  # the batch of each row
        values = recorder.capture(model, batches[batch][0])["features.0.bn"]
        assert row[0] == values.min() and row[2] == values.max()
        np.testing.assert_allclose(row[1], np.median(values), rtol=1e-12)  # interpolated
    assert recorder.series("plain") == {}
