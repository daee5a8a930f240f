"""Random lines and planes, interpolation and the plane through three models."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
import torch

from landscape.slices import (
    interpolate,
    plane_through,
    random_line,
    random_plane,
)
from tests.slices.helpers import CE, assert_same_state, batches, bn_net, state


def pair():
    a, b = bn_net(0), bn_net(1)
    with torch.no_grad():
        for m, (mu, var) in ((a, (0.1, 1.5)), (b, (-0.4, 0.6))):
            m[1].running_mean.fill_(mu)
            m[1].running_var.fill_(var)
    return a, b


def full_loss(model, data) -> float:
    m = copy.deepcopy(model).eval()
    x_all, y_all = torch.cat([x for x, _ in data]), torch.cat([y for _, y in data])
    with torch.no_grad():
        return float(CE(m(x_all), y_all))


def test_interpolate_endpoints_move_running_statistics():
    (a, b), data = pair(), batches()
    before_b = state(b)
    res = interpolate(a, b, CE, data, "0:1:3")
    assert res.meta["kind"] == "interpolate" and res.meta["moves_buffers"]
    assert abs(res.values["loss"][0] - full_loss(a, data)) < 1e-10
    assert abs(res.values["loss"][2] - full_loss(b, data)) < 1e-10
    fixed = interpolate(a, b, CE, data, "0:1:3", move_buffers=False)
    assert abs(fixed.values["loss"][2] - full_loss(b, data)) > 1e-6
    assert_same_state(b, before_b)
    assert inspect.signature(interpolate).parameters["x"].default == "-0.5:1.5:401"


def test_plane_through_three_models():
    (a, b), data = pair(), batches()
    c = bn_net(2)
    res = plane_through(a, b, c, CE, data, "0:1:2", "0:1:2")
    assert abs(res.values["loss"][0, 0] - full_loss(a, data)) < 1e-10
    assert abs(res.values["loss"][0, 1] - full_loss(b, data)) < 1e-10  # (x=1, y=0)
    assert abs(res.values["loss"][1, 0] - full_loss(c, data)) < 1e-10  # (x=0, y=1)


def test_random_line_is_plane_axis_and_meta():
    model, data = bn_net(), batches()
    line = random_line(model, CE, data, "-1:1:3", seed=5)
    plane = random_plane(model, CE, data, "-1:1:3", "0:0:1", seed=5)
    np.testing.assert_allclose(plane.values["loss"][0], line.values["loss"], rtol=0, atol=1e-12)
    assert line.meta["kind"] == "random_line" and line.meta["seed"] == 5
    assert plane.meta["kind"] == "random_plane"
    assert plane.meta["seed"] == 5 and plane.meta["normalization"] == "filter"
    ortho = random_plane(model, CE, data, "0:0:1", "0:0:1", seed=5, orthogonalize=True)
    d1, d2 = ortho.directions
    assert abs(sum(float((d1[n] * d2[n]).sum()) for n in d1)) < 1e-10


def test_out_writes_the_resumable_file_and_a_second_call_returns_it(tmp_path):
    """Before: random_plane could not write its file, and run_grid returned None on a
    complete one."""
    calls = []

    def counting(out, target):
        calls.append(1)
        return CE(out, target)

    model, data, path = bn_net(), batches(), tmp_path / "plane.h5"
    first = random_plane(model, counting, data, "-1:1:4", "-1:1:3", seed=7, out=path)
    assert first.computed.all() and calls
    assert {k: first.meta[k] for k in ("kind", "seed", "normalization", "ignore", "bn_mode")} == {
        "kind": "random_plane", "seed": 7, "normalization": "filter", "ignore": "biasbn",
        "bn_mode": "eval"}  # fmt: skip
    calls.clear()
    again = random_plane(model, counting, data, "-1:1:4", "-1:1:3", seed=7, out=path)
    assert calls == [] and np.array_equal(again.values["loss"], first.values["loss"])
    memory = random_plane(model, CE, data, "-1:1:4", "-1:1:3", seed=7)
    np.testing.assert_array_equal(memory.values["loss"], first.values["loss"])
    line = interpolate(bn_net(0), bn_net(1), CE, data, "-0.5:1.5:5", out=tmp_path / "line.h5")
    assert line.meta["kind"] == "interpolate" and line.computed.all()
    with pytest.raises(ValueError, match="holds a different slice"):
        random_plane(model, CE, data, "-1:1:4", "-1:1:3", seed=8, out=path)
