"""The batch order: every example once per epoch, a pure function of seed and step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.data import (
    DataError,
    accuracy,
    batch_indices,
    eval_batches,
    mix_seed,
    steps_per_epoch,
)
from tests.cases import SPLITMIX64_GOLDEN, SPLITMIX64_PUBLISHED, splitmix64, splitmix64_stream


def test_batch_indices_cover_each_epoch_once():
    n, bs, seed = 103, 10, 7
    per_epoch = steps_per_epoch(n, bs)
    assert per_epoch == 10
    for epoch in range(3):
        steps = range(epoch * per_epoch, (epoch + 1) * per_epoch)
        seen = torch.cat([batch_indices(n, bs, s, seed) for s in steps])
        assert len(seen) == per_epoch * bs and len(seen.unique()) == len(seen)  # no repeats
        assert int(seen.min()) >= 0 and int(seen.max()) < n


def test_batch_indices_pure_and_seeded():
    first = [batch_indices(50, 8, s, seed=0) for s in range(20)]
    # out of order, after other calls: same answer (what a resumed run relies on)
    batch_indices(50, 8, 0, seed=1)
    for s in reversed(range(20)):
        assert torch.equal(batch_indices(50, 8, s, seed=0), first[s])
    assert first[0].dtype == torch.int64
    assert not torch.equal(first[0], first[6])  # epoch 0 vs epoch 1 (6 steps per epoch)
    assert not torch.equal(first[0], batch_indices(50, 8, 0, seed=1))


def test_batch_indices_full_batch_and_errors():
    assert torch.equal(batch_indices(12, 12, 5, seed=3), torch.arange(12))
    with pytest.raises(DataError, match="batch_size"):
        batch_indices(10, 11, 0, seed=0)
    with pytest.raises(DataError, match="step"):
        batch_indices(10, 5, -1, seed=0)


def test_eval_batches_and_accuracy():
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    batches = list(eval_batches(x, y, 4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(0.75)
    assert np.isnan(accuracy(logits[:0], torch.tensor([], dtype=torch.long)))


MASK64 = (1 << 64) - 1


def test_mix_seed_is_splitmix64_so_the_batch_order_never_changes():
    """The epochs' permutations are seeded by ``mix_seed``: a resumed run, or a pair trained
    by another version, needs the very same numbers. The reference reproduces SplitMix64's
    published first outputs for the seed 1234567; ``mix_seed(seed, salt)`` is its output at
    the state ``seed * golden + salt + 1``, shifted to 63 bits."""
    seed, published = SPLITMIX64_PUBLISHED
    assert [out for _, out in splitmix64_stream(seed, 3)] == published
    for seed, salt in [(0, 0), (1, 0), (0, 1), (7, 3), (2**63 + 5, 11), (-1, 2)]:
        start = ((seed & MASK64) * SPLITMIX64_GOLDEN + salt + 1 - SPLITMIX64_GOLDEN) & MASK64
        assert mix_seed(seed, salt) == splitmix64(start)[1] >> 1, (seed, salt)
        assert 0 <= mix_seed(seed, salt) < 2**63


def test_batches_of_one_example_are_allowed_and_of_none_refused():
    assert steps_per_epoch(5, 1) == 5 and steps_per_epoch(5, 5) == 1
    assert len(batch_indices(5, 1, 3, seed=0)) == 1
    x, y = torch.arange(3.0), torch.arange(3)
    assert [len(b[1]) for b in eval_batches(x, y, 1)] == [1, 1, 1]
    for call in (lambda: steps_per_epoch(5, 0), lambda: list(eval_batches(x, y, 0))):
        with pytest.raises(DataError, match="batch_size"):
            call()
