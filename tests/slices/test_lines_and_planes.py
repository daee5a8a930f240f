"""Random lines and planes, interpolation and the plane through three models."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
import torch

from landscape._params import get_params
from landscape.slices import (
    buffer_direction,
    checkpoint_direction,
    evaluate_grid,
    interpolate,
    orthogonalize,
    plane_through,
    random_directions,
    random_line,
    random_plane,
    read_grid,
)
from landscape.slices.coords import parse_range
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


F64 = torch.float64


def tiny() -> tuple[torch.nn.Module, list]:
    """A 3-4-2 network with BatchNorm (non-trivial running statistics) and one batch."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)
    ).double()
    with torch.no_grad():
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(8, 3, generator=g, dtype=F64), torch.randint(0, 2, (8,), generator=g)
    return net, [(x, y)]


def test_the_defaults_grids_seed_and_plain_plane():
    """Called without them: 51 points on [-1, 1] (random line and plane), 401 on
    [-0.5, 1.5] (interpolation) and 51 x 51 on [-0.5, 1.5]^2 (plane through); seed 0;
    no Gram-Schmidt. One point is evaluated (``points``), the grids are the defaults'."""
    model, data = tiny()
    b, c = tiny()[0], tiny()[0]
    with torch.no_grad():
        b[0].weight.add_(0.3)
        c[2].bias.add_(0.2)
    line = random_line(model, CE, data, points=[0])
    assert line.x.tolist() == parse_range("-1:1:51").tolist() and line.meta["seed"] == 0
    d0 = random_directions(model, 2, seed=0)
    assert all(torch.equal(line.directions[0][n], d0[0][n]) for n in d0[0])
    plane = random_plane(model, CE, data, points=[0])
    assert plane.shape == (51, 51) and plane.y.tolist() == line.x.tolist()
    assert plane.meta["seed"] == 0 and plane.meta["orthogonalize"] is False
    for got, want in zip(plane.directions, d0):
        assert all(torch.equal(got[n], want[n]) for n in want)
    assert (
        interpolate(model, b, CE, data, points=[0]).x.tolist()
        == parse_range("-0.5:1.5:401").tolist()
    )
    through = plane_through(model, b, c, CE, data, points=[0])
    assert through.shape == (51, 51) and through.meta["kind"] == "plane_through"
    assert through.x.tolist() == through.y.tolist() == parse_range("-0.5:1.5:51").tolist()


def squared_error(out, y):
    return ((out[:, 1] - y.to(out.dtype)) ** 2).mean()


def options_case(kind: str):
    """(the call, its directions and buffer directions) for each of the four functions, with
    every option away from its default."""
    model, data = tiny()
    b, c = tiny()[0], tiny()[0]
    with torch.no_grad():
        b[0].weight.add_(0.3)
        c[2].bias.add_(0.2)
        b[1].running_mean.add_(0.4)
        c[1].running_var.mul_(1.5)
    pa = get_params(model)
    if kind == "random_line":
        dirs = random_directions(model, 1, seed=4, normalization="layer", ignore="none")
        return (lambda **kw: random_line(model, CE, data, "-1:1:3", seed=4,
                                         normalization="layer", ignore="none", **kw),
                model, data, dirs, None)  # fmt: skip
    if kind == "random_plane":
        d1, d2 = random_directions(model, 2, seed=4, normalization="layer", ignore="none")
        dirs = [d1, orthogonalize(d2, d1)]
        return (lambda **kw: random_plane(model, CE, data, "-1:1:3", "0:1:2", seed=4,
                                          orthogonalize=True, normalization="layer",
                                          ignore="none", **kw),
                model, data, dirs, None)  # fmt: skip
    if kind == "interpolate":
        dirs = [checkpoint_direction(pa, get_params(b))]
        return (lambda **kw: interpolate(model, b, CE, data, "0:1:3", **kw),
                model, data, dirs, [buffer_direction(model, b)])  # fmt: skip
    dirs = [checkpoint_direction(pa, get_params(m)) for m in (b, c)]
    return (lambda **kw: plane_through(model, b, c, CE, data, "0:1:2", "0:1:2", **kw),
            model, data, dirs, [buffer_direction(model, m) for m in (b, c)])  # fmt: skip


@pytest.mark.parametrize("kind", ["random_line", "random_plane", "interpolate", "plane_through"])
def test_every_option_reaches_the_evaluation_and_the_file(kind, tmp_path):
    """bn_mode, metrics, progress and evaluate_grid's own options (accuracy) give what
    evaluate_grid gives on the same directions; random slices record their normalization,
    ignore and orthogonalization; with out= the slice is in that file, options included."""
    call, model, data, dirs, bdirs = options_case(kind)
    opts = dict(bn_mode="train", metrics={"se": squared_error}, accuracy=False)
    done = []
    res = call(progress=lambda k, total: done.append((k, total)), **opts)
    ref = evaluate_grid(model, CE, data, dirs, res.x, res.y, buffer_directions=bdirs, **opts)
    assert set(res.values) == {"loss", "se"} and res.meta["bn_mode"] == "train"
    for name in ("loss", "se"):
        np.testing.assert_allclose(res.values[name], ref.values[name], rtol=1e-12)
    n = res.values["loss"].size
    assert done and done[-1] == (n, n)
    if kind.startswith("random"):
        assert (res.meta["normalization"], res.meta["ignore"]) == ("layer", "none")
    if kind == "random_plane":
        assert res.meta["orthogonalize"] is True
    path = tmp_path / f"{kind}.h5"
    stored = call(out=path, **opts)
    assert path.is_file() and read_grid(path).meta["bn_mode"] == "train"
    assert stored.meta["kind"] == kind and set(stored.values) == {"loss", "se"}
    np.testing.assert_allclose(read_grid(path).values["se"], ref.values["se"], rtol=1e-12)


def test_plane_through_without_moving_buffers_keeps_the_first_model_s():
    (a, b), data = pair(), batches()
    c = bn_net(2)
    res = plane_through(a, b, c, CE, data, "0:1:2", "0:0:1", move_buffers=False)
    assert res.buffer_directions is None
    mixed = copy.deepcopy(b)
    mixed.load_state_dict({**b.state_dict(), **{k: v for k, v in a.state_dict().items()
                                                if "running" in k}})  # fmt: skip
    assert abs(res.values["loss"][0, 1] - full_loss(mixed, data)) < 1e-10
    assert abs(res.values["loss"][0, 1] - full_loss(b, data)) > 1e-6
