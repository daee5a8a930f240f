"""What a slice returns: its shape, and the one-line summary of its values."""

from __future__ import annotations

import numpy as np
import torch

from landscape.slices import SliceResult


def test_shape_and_the_summary_line():
    x, y = np.array([-1.0, 0.0, 1.0]), np.array([0.5, 2.0])
    loss = np.array([[0.25, np.nan, 2.0], [np.inf, 1.5, 3.0]])  # x runs along the columns
    res = SliceResult(
        x,
        y,
        {"loss": loss, "accuracy": np.full((2, 3), np.nan)},
        {"kind": "random_plane", "bn_mode": "eval"},
        [{"w": torch.zeros(2), "b": torch.zeros(1)}, {"w": torch.zeros(2)}],
        np.isfinite(loss),
    )
    assert res.shape == (2, 3)
    assert repr(res) == (
        "SliceResult(random_plane 3×2 over x -1..1, y 0.5..2; loss 0.25..3, accuracy no finite "
        "value; 4 of 6 computed; bn_mode eval; 2 direction(s), 3 tensors)"
    )
    line = SliceResult(x, None, {"loss": np.array([3, 1, 2])})  # integers are numbers too
    assert line.shape == (3,)
    assert repr(line) == (
        "SliceResult(grid 3 over x -1..1; loss 1..3; ? of 3 computed; bn_mode ?; 0 direction(s), "
        "0 tensors)"
    )
