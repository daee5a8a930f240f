"""The vehicle's graph run traced: the same values, following every move, taken only where
a trace cannot differ from the graph (and refused, with the graph kept, everywhere else)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import landscape.slices.fold as F
from landscape.slices import traced
from tests.slices.test_blocked import close, inputs, model_of

pytestmark = pytest.mark.usefixtures("one_thread")


def vehicle(model: nn.Module, bf16: bool = False) -> F.Vehicle:
    v = F.vehicle(model, inputs(), channels_last=True, running_stats=True, bf16=bf16)
    assert v is not None and v.convs
    return v


def move(model: nn.Module, factor: float) -> None:
    """Parameters scaled by ``factor``, running statistics by ``|factor|`` (variances > 0)."""
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)
        for b in model.buffers():
            if b.is_floating_point():
                b.mul_(abs(factor))


@pytest.mark.parametrize("bf16", [False, True])
def test_the_trace_runs_and_follows_a_moved_point(bf16):
    model = model_of("vgg_small", True)
    v = vehicle(model, bf16)
    assert isinstance(v.run, torch.jit.ScriptModule)
    x = inputs()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    for factor in (1.0, 1.3, -0.7):  # parameters and running statistics moved in place
        move(model, factor)
        v.refresh()
        with torch.inference_mode(), autocast:
            got, graph = v(x), v.graph(x)
        assert torch.equal(got, graph)  # the same operations on the same tensors
        if not bf16:
            with torch.inference_mode():
                close(got, model(x), 2e-5)


def test_a_batch_of_another_size_runs_through_the_trace():
    model = model_of("vgg_small", True)
    v = vehicle(model)
    x = torch.randn(37, 1, 8, 8)
    with torch.inference_mode():
        close(v(x), model(x), 2e-5)


def vgg_with(extra: nn.Module) -> nn.Module:
    model = model_of("vgg_small", True)
    model.features.append(extra)
    return model


def test_only_pure_graphs_without_hooks_are_traced():
    assert isinstance(vehicle(vgg_with(nn.Identity())).run, torch.jit.ScriptModule)
    v = vehicle(vgg_with(nn.Hardswish()))  # a module type not on the list: not traced
    assert v.run is v.graph

    hooked = vgg_with(nn.Identity())
    seen = []
    hooked.features[-1].register_forward_hook(lambda m, i, o: seen.append(1))
    v = vehicle(hooked)
    assert v.run is v.graph
    with torch.inference_mode():
        v(inputs())
    assert seen  # the hook ran at the call

    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        v = vehicle(model_of("vgg_small", True))
        assert v.run is v.graph
        assert not traced.pure(torch.fx.symbolic_trace(model_of("vgg_small", True)))
    finally:
        handle.remove()


def test_a_parametrized_module_is_not_traced():
    class Double(nn.Module):
        def forward(self, w):
            return 2 * w

    model = model_of("vgg_small", True)
    nn.utils.parametrize.register_parametrization(model.classifier[1], "weight", Double())
    assert not traced.pure(torch.fx.symbolic_trace(model))


def test_modes_that_read_training_are_refused_in_training():
    model = model_of("vgg_small", True)
    gm = torch.fx.symbolic_trace(model)
    assert traced.pure(gm)
    gm.get_submodule("features.0.bn").train()
    assert not traced.pure(gm)
    drop = torch.fx.symbolic_trace(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)).eval())
    assert traced.pure(drop)
    drop.train()
    assert not traced.pure(drop)
    blocked = torch.fx.symbolic_trace(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval())
    from landscape.slices.blocked import block

    (conv,) = block(blocked)
    conv.train()  # its forward does not read the mode
    assert traced.pure(blocked)


def test_a_trace_that_disagrees_or_fails_is_not_used(monkeypatch):
    model = model_of("vgg_small", True)
    v = vehicle(copy.deepcopy(model))
    graph = v.graph
    x = inputs()

    def doubled(g, i):
        return lambda t: 2 * g(t)

    def sized(g, i):  # as if the trace had baked the batch size in
        n = len(i)
        return lambda t: g(t) if len(t) == n else g(t)[:1]

    def raising(g, i):
        raise RuntimeError("the tracer cannot take this graph")

    def fails_elsewhere(g, i):  # runs only at the traced batch size
        n = len(i)

        def run(t):
            if len(t) != n:
                raise RuntimeError("shape mismatch")
            return g(t)

        return run

    for fake in (doubled, sized, fails_elsewhere):
        v.run = graph
        monkeypatch.setattr(traced, "trace", fake)
        assert v.interpret(x) is False and v.run is graph
    monkeypatch.undo()
    assert v.interpret(x) is True and v.run is not graph  # the real trace agrees
    monkeypatch.setattr(traced.torch.jit, "trace", raising)
    assert traced.trace(graph, x) is None


def test_the_switch_leaves_the_python_graph(monkeypatch):
    monkeypatch.setattr(traced, "TRACE", False)
    v = vehicle(model_of("vgg_small", True))
    assert v.run is v.graph
    assert v.interpret(inputs()) is False and v.run is v.graph


def test_a_grid_traces_its_vehicle_only_when_it_runs_enough_batches(monkeypatch):
    import landscape.slices as S
    from tests.slices.helpers import CE

    traces = []
    real = traced.trace
    monkeypatch.setattr(traced, "trace", lambda g, i: traces.append(type(g)) or real(g, i))
    monkeypatch.setattr(traced, "MIN_CALLS", 6)
    model = model_of("vgg_small", True)
    x = inputs(n=8)
    batches = [(x[:4], torch.arange(4)), (x[4:], torch.arange(4))]
    dirs = S.random_directions(model, 1, seed=0)
    S.evaluate_grid(model, CE, batches, dirs, "-1:1:2")  # 2 points x 2 batches
    assert traces == []
    got = S.evaluate_grid(model, CE, batches, dirs, "-1:1:3")  # 3 x 2 = MIN_CALLS
    assert traces[0] is not traced._Scored and traces[1:] == [traced._Scored]  # then its scorer
    want = S.evaluate_grid(model, CE, batches, dirs, "-1:1:3", points=[0, 1, 2][:2])
    np.testing.assert_allclose(got.values["loss"][:2], want.values["loss"][:2], rtol=1e-6)


def grid_both_ways(monkeypatch, model, batches, dirs, xs):
    """The same grid through the traced scorer and through the Python evaluation."""
    import landscape.slices as S
    from tests.slices.helpers import CE

    used = []
    real = traced.scorer
    monkeypatch.setattr(traced, "MIN_CALLS", 1)
    monkeypatch.setattr(traced, "scorer", lambda *a: used.append(1) or real(*a))
    fast = S.evaluate_grid(copy.deepcopy(model), CE, batches, dirs, xs)
    monkeypatch.setattr(traced, "scorer", lambda *a: None)
    slow = S.evaluate_grid(copy.deepcopy(model), CE, batches, dirs, xs)
    return used, fast, slow


def digits_like(sizes=(6, 5)):
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))
            for n in sizes]  # fmt: skip


def test_the_scorer_gives_the_python_path_s_loss_and_accuracy(monkeypatch):
    import landscape.slices as S

    model = model_of("vgg_small", True)
    with torch.no_grad():  # labels the model gets right at 0: the accuracy moves with the point
        batches = [(x, model(x).argmax(1)) for x, _ in digits_like((40, 30))]
    dirs = S.random_directions(model, 1, seed=0)
    scored = []
    real = traced.score
    monkeypatch.setattr(traced, "score", lambda *a: scored.append(real(*a)) or scored[-1])
    used, fast, slow = grid_both_ways(monkeypatch, model, batches, dirs, "-2:2:5")
    assert used == [1] and len(scored) == 5 and all(s is not None for s in scored)
    np.testing.assert_allclose(fast.values["loss"], slow.values["loss"], rtol=1e-6)
    np.testing.assert_array_equal(fast.values["accuracy"], slow.values["accuracy"])
    assert len(set(fast.values["accuracy"].tolist())) > 1  # the points differ


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_logit_makes_the_scorer_s_accuracy_nan(monkeypatch, bad):
    model = model_of("vgg_small", True)
    bias = torch.zeros(10)
    bias[3] = bad  # the classifier's bias moves to `bad` at coefficient 1 (0 is not moved)
    dirs = [{"classifier.1.bias": bias}]
    used, fast, slow = grid_both_ways(monkeypatch, model, digits_like(), dirs, [0.0, 1.0])
    assert used == [1]
    assert math.isfinite(fast.values["accuracy"][0]) and math.isnan(fast.values["accuracy"][1])
    np.testing.assert_array_equal(fast.values["accuracy"], slow.values["accuracy"])
    np.testing.assert_array_equal(fast.values["loss"], slow.values["loss"])


def test_an_empty_batch_leaves_the_point_to_the_python_path(monkeypatch):
    import landscape.slices as S

    model = model_of("vgg_small", True)
    batches = digits_like((6, 0, 5))
    dirs = S.random_directions(model, 1, seed=1)
    scored = []
    real = traced.score
    monkeypatch.setattr(traced, "score", lambda *a: scored.append(real(*a)) or scored[-1])
    used, fast, slow = grid_both_ways(monkeypatch, model, batches, dirs, "-1:1:2")
    assert used == [1] and scored and all(s is None for s in scored)
    np.testing.assert_array_equal(fast.values["accuracy"], slow.values["accuracy"])


def test_the_scorer_is_refused_where_it_could_differ(monkeypatch):
    model = model_of("vgg_small", True)
    graph = vehicle(model).graph
    x, y = inputs(n=6), torch.arange(6)
    assert traced.scorer(graph, x, y) is not None
    assert traced.scorer(graph, x[:0], y[:0]) is None  # no example
    assert traced.scorer(graph, x, torch.softmax(torch.randn(6, 10), 1)) is None  # soft targets

    def doubled(g, i):
        return lambda a, b: 2 * g(a, b)

    def sized(g, i):
        n = len(i[1])

        def run(a, b):
            if len(b) != n:
                raise RuntimeError("shape mismatch")
            return g(a, b)

        return run

    def loss_off(g, i):  # only the loss off, by less than 1
        return lambda a, b: g(a, b) + torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64)

    for fake in (doubled, sized, loss_off):
        monkeypatch.setattr(traced, "trace", fake)
        assert traced.scorer(graph, x, y) is None
    monkeypatch.setattr(traced, "trace", lambda g, i: None)
    assert traced.scorer(graph, x, y) is None


@pytest.mark.parametrize("kind", ["another loss", "no accuracy"])
def test_only_the_cross_entropy_with_accuracy_is_scored(monkeypatch, kind):
    import torch.nn.functional as nnf

    import landscape.slices as S

    def doubled_ce(out, y):
        return 2 * nnf.cross_entropy(out, y)

    model = model_of("vgg_small", True)
    monkeypatch.setattr(traced, "MIN_CALLS", 1)
    built = []
    real = traced.scorer
    monkeypatch.setattr(traced, "scorer", lambda *a: built.append(1) or real(*a))
    loss, accuracy = (doubled_ce, None) if kind == "another loss" else (nnf.cross_entropy, False)
    batches = digits_like()
    dirs = S.random_directions(model, 1, seed=2)
    got = S.evaluate_grid(model, loss, batches, dirs, [0.0, 0.5], accuracy=accuracy)
    assert built == []
    factor = 2.0 if kind == "another loss" else 1.0
    with torch.inference_mode():
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        want = factor * nnf.cross_entropy(model(x), y).item()
    assert got.values["loss"][0] == pytest.approx(want, rel=1e-5)
