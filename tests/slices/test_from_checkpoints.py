"""Slices of checkpoints whose training config is not the trainer's: what they ask for."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.models import ModelSpec
from landscape.slices import SliceConfig, read_grid, slice_checkpoint
from landscape.store import save_checkpoint

SPEC = ModelSpec("mlp", bn=True, input_shape=(1, 8, 8), options={"depth": 1, "width": 8})


def foreign(tmp_path, config: dict):
    """A checkpoint of a digits-shaped MLP saved with ``config`` as its training config."""
    path = tmp_path / "mine.pt"
    save_checkpoint(path, model=SPEC.build(seed=0), step=3, spec=SPEC, config=config)
    return path


def test_a_config_without_a_data_set_asks_for_one(tmp_path):
    path, out = foreign(tmp_path, {"note": "my own loop"}), tmp_path / "s.h5"
    line = SliceConfig(x="-1:1:3", examples=50, device="cpu")
    with pytest.raises(ValueError, match=r"records no training data set: pass dataset \(--dataset"):
        slice_checkpoint(path, out, line)
    assert not out.exists()
    slice_checkpoint(
        path, out, SliceConfig(x="-1:1:3", examples=50, device="cpu", dataset="digits")
    )
    res = read_grid(out)
    assert res.meta["dataset"] == "digits" and res.meta["eval_examples"] == 50
    assert np.isfinite(res.values["loss"]).all()


def test_batch_statistics_without_a_recorded_batch_size_ask_for_one(tmp_path):
    path, out = foreign(tmp_path, {"dataset": "digits"}), tmp_path / "s.h5"
    train_mode = SliceConfig(x="-1:1:3", examples=50, device="cpu", bn_mode="train")
    with pytest.raises(ValueError, match=r"records no training batch size: pass eval_batch_size"):
        slice_checkpoint(path, out, train_mode)
    assert not out.exists()
    slice_checkpoint(path, out, SliceConfig(x="-1:1:3", examples=50, device="cpu"))  # eval: 1024
    assert read_grid(out).meta["eval_batch_size"] == 1024
