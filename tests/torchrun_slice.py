"""A slice run under torchrun by tests/test_distributed.py: ``torchrun ... torchrun_slice.py
OUT [DIE_AFTER]``. With DIE_AFTER, rank 1 dies (os._exit) after that many of its points,
like a process killed mid-run. Not a test module: pytest does not collect it."""

from __future__ import annotations

import os
import sys

import torch
from torch import nn

from landscape import distributed
from landscape.slices import random_directions, run_grid

GRID = ("-1:1:9", "-1:1:7")
META = {"kind": "random_plane", "seed": 5}


def model_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                          nn.Linear(16, 10)).double().eval()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(40, 1, 8, 8, generator=g, dtype=torch.float64),
             torch.randint(0, 10, (40,), generator=g)) for _ in range(2)]  # fmt: skip
    return model, data, random_directions(model, 2, seed=5)


class Dying(nn.CrossEntropyLoss):
    """Counts its rank's points (two batches each); rank 1 exits after ``after`` of them."""

    def __init__(self, after: int | None) -> None:
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, out, target):
        self.calls += 1
        if self.after is not None and distributed.ranks().rank == 1:
            if self.calls > 2 * self.after:
                os._exit(1)
        return super().forward(out, target)


if __name__ == "__main__":
    out, after = sys.argv[1], (int(sys.argv[2]) if len(sys.argv) > 2 else None)
    model, data, dirs = model_and_data()
    with distributed.session("cpu"):
        run_grid(out, model, Dying(after), data, dirs, *GRID, meta=META, chunk=4)
