"""The order of training batches and consecutive evaluation batches.

Training batches come from :func:`batch_indices`, a pure function of ``(seed, step)``, so
the BN and plain runs of a pair, and a run resumed from a checkpoint, see exactly the same
batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import torch
from torch import Tensor

from landscape.data.formats import DataError

__all__ = ["batch_indices", "eval_batches", "mix_seed", "steps_per_epoch"]

_MASK64 = (1 << 64) - 1


def mix_seed(seed: int, salt: int) -> int:
    """SplitMix64 of ``(seed, salt)`` as a 63-bit seed: stable across versions and platforms."""
    z = ((seed & _MASK64) * 0x9E3779B97F4A7C15 + salt + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches in one pass over ``n`` examples (the last partial batch is dropped)."""
    if not 1 <= batch_size <= n:
        raise DataError(
            f"batch_size must lie in [1, {n}] (the training set size), got {batch_size}"
        )
    return n // batch_size


@lru_cache(maxsize=4)
def _epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(seed, epoch)))


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> Tensor:
    """Indices of training batch ``step``, a pure function of ``(n, batch_size, step, seed)``.

    Epoch ``e = step // (n // batch_size)`` is the permutation
    ``randperm(n, generator=manual_seed(splitmix64(seed, e)))``, cut into ``n // batch_size``
    batches (drop-last). Full batch (``batch_size == n``, gradient descent on the deep linear
    network) gives ``arange(n)`` at every step.

    >>> batch_indices(4, 4, step=7, seed=0).tolist()
    [0, 1, 2, 3]
    """
    per_epoch = steps_per_epoch(n, batch_size)
    if step < 0:
        raise DataError(f"step must be >= 0, got {step}")
    if batch_size == n:
        return torch.arange(n)
    epoch, k = divmod(step, per_epoch)
    return _epoch_permutation(n, seed, epoch)[k * batch_size : (k + 1) * batch_size].clone()


def eval_batches(x: Tensor, y: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Consecutive ``(x, y)`` slices of ``batch_size`` in order; the last may be shorter."""
    if batch_size < 1:
        raise DataError(f"batch_size must be positive, got {batch_size}")
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size], y[i : i + batch_size]
