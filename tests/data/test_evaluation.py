"""The evaluation data: a dataset by name is a fixed seeded subset, in batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape.data import dataset_batches
from landscape.slices import (
    random_line,
)


def digits_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 10)
    ).double()


def test_a_dataset_by_name_is_its_fixed_default_subset(digits):
    model = digits_net()
    res = random_line(model, nn.functional.cross_entropy, "digits", "-1:1:3")
    source = {"dataset": "digits", "split": "train", "examples": 1000, "subset_seed": 0}
    assert res.meta["data"] == source and res.meta["eval_examples"] == 1000
    # the same subset, drawn by hand from the training split in float64
    idx = torch.randperm(len(digits.x_train), generator=torch.Generator().manual_seed(0))
    idx = idx[:1000].sort().values
    by_hand = [(digits.x_train[idx].double(), digits.y_train[idx])]
    ref = random_line(model, nn.functional.cross_entropy, by_hand, "-1:1:3")
    assert "data" not in ref.meta
    np.testing.assert_allclose(res.values["loss"], ref.values["loss"], rtol=1e-12)


def test_dataset_batches_sizes_split_seed_and_dtype(digits):
    small = dataset_batches(digits, examples=100, batch_size=32, dtype=torch.float64)
    assert [len(x) for x, _ in small] == [32, 32, 32, 4]
    assert small[0][0].dtype == torch.float64 and small[0][1].dtype == torch.int64
    assert small.source == {"dataset": "digits", "split": "train", "examples": 100,
                            "subset_seed": 0}  # fmt: skip
    again = dataset_batches(digits, examples=100, batch_size=100)
    assert torch.equal(again[0][0].double(), torch.cat([x for x, _ in small]))
    other = dataset_batches(digits, examples=100, batch_size=100, seed=1)
    assert not torch.equal(other[0][0], again[0][0])
    test = dataset_batches(digits, examples=0, batch_size=10_000, split="test")
    assert torch.equal(test[0][0], digits.x_test) and test.source["examples"] == len(digits.x_test)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        dataset_batches(digits, batch_size=0)
