"""Standard, Standard + BN and Standard + noisy BN from one seed: the same initial weights,
the same batches, runs that repeat and resume bit for bit (Santurkar et al. Fig. 2)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from landscape import store
from landscape.train import TrainConfig, train_pair
from tests.train.helpers import TINY

VGG = {**TINY, "model": "vgg_small", "model_options": {"width": 4, "hidden": [16]}}
NOISY = TrainConfig(**VGG, bn="bn", bn_noise="santurkar")


def state(run, variant: str, step: int) -> dict[str, torch.Tensor]:
    ckpt = store.load_checkpoint(store.checkpoint_path(run / "checkpoints" / variant, step))
    return ckpt.model_state


def series(run, group: str) -> dict[str, np.ndarray]:
    with h5py.File(run / "run.h5", "r") as f:
        return store.read_series(f[group])


def test_the_three_variants_share_initial_weights_and_batches(tmp_path, digits):
    seen: dict[str, list[torch.Tensor]] = {}

    def batches(variant, step, model, loss_fn, batch, base):
        seen.setdefault(f"{variant}/{model.features[0].bn.__class__.__name__}", []).append(
            batch[0].clone()
        )

    train_pair(TrainConfig(**VGG), tmp_path / "pair", dataset=digits, hooks=[batches])
    train_pair(NOISY, tmp_path / "noisy", dataset=digits, hooks=[batches])
    assert set(seen) == {"plain/Identity", "bn/BatchNorm2d", "bn/NoisyBatchNorm2d"}
    first = next(iter(seen.values()))
    assert all(all(map(torch.equal, xs, first)) for xs in seen.values())  # one data order
    noisy0, bn0 = state(tmp_path / "noisy", "bn", 0), state(tmp_path / "pair", "bn", 0)
    assert all(torch.equal(noisy0[k], t) for k, t in bn0.items())  # one initialisation
    assert {k for k in noisy0 if k not in bn0} == {
        f"{layer}.bn.{buffer}"
        for layer in ("features.0", "features.1", "features.3", "features.4", "classifier.0")
        for buffer in ("noise_seed", "noise_draws")
    }
    # the noise changes training from the first step on; evaluation (eval mode) starts equal
    noisy_train, bn_train = (
        series(tmp_path / "noisy", "train/bn"),
        series(tmp_path / "pair", "train/bn"),
    )
    assert noisy_train["loss"][0] != bn_train["loss"][0]
    noisy_eval, bn_eval = (
        series(tmp_path / "noisy", "eval/bn"),
        series(tmp_path / "pair", "eval/bn"),
    )
    assert noisy_eval["loss"][0] == bn_eval["loss"][0]
    assert int(state(tmp_path / "noisy", "bn", 30)["features.0.bn.noise_draws"]) == 30


def test_a_noisy_run_repeats_and_resumes_bit_for_bit(tmp_path, digits):
    train_pair(NOISY, tmp_path / "full", dataset=digits)
    train_pair(NOISY, tmp_path / "again", dataset=digits)
    train_pair(NOISY, tmp_path / "cut", dataset=digits)
    store.checkpoint_path(tmp_path / "cut" / "checkpoints" / "bn", 30).unlink()
    train_pair(NOISY, tmp_path / "cut", resume=True, dataset=digits)
    full = state(tmp_path / "full", "bn", 30)
    for run in ("again", "cut"):
        other = state(tmp_path / run, "bn", 30)
        assert all(torch.equal(full[k], other[k]) for k in full), run
        np.testing.assert_array_equal(
            series(tmp_path / run, "train/bn")["loss"],
            series(tmp_path / "full", "train/bn")["loss"],
        )


def test_noise_needs_a_bn_variant():
    with pytest.raises(ValueError, match=r"--bn plain trains none: train --bn bn or --bn both"):
        TrainConfig(**VGG, bn="plain", bn_noise="santurkar").validate()
    for measured in ({"probe_every": 5}, {"ics_every": 5}, {"hessian_every": 5}):
        with pytest.raises(ValueError, match=r"would measure a different function at every"):
            TrainConfig(**VGG, bn_noise="santurkar", **measured).validate()
    TrainConfig(**VGG, bn_noise="santurkar", probe_every=5, probe_bn_mode="eval").validate()
    with pytest.raises(ValueError, match=r"bn_noise must be one of none, santurkar"):
        TrainConfig(**VGG, bn_noise="loud").validate()  # type: ignore[arg-type]
