"""Helpers shared by the data tests: CIFAR-10 batch files written like the real ones."""

from __future__ import annotations

import pickle

import numpy as np

from landscape.data import formats


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def write_cifar(folder, n=4) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, name in enumerate(formats.CIFAR_FILES):
        batches[name] = cifar_batch(n if name != "test_batch" else 3, seed=i)
        with open(folder / name, "wb") as f:
            pickle.dump(batches[name], f, protocol=2)  # as the originals
    return batches
