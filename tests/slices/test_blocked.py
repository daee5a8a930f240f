"""The conv trunk in oneDNN's blocked layout (float32, CPU) against the plain model.

A right rewrite differs from the model by float32 rounding; a wrong one (a missing
``to_dense``, a stale weight, a lost bias or stride) by O(1). References: the model's own
forward in float32 and the grid's slow per-point copy in float64.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import landscape.slices as S
import landscape.slices.blocked as B
import landscape.slices.fold as F
from landscape.models import create_model
from landscape.slices import random_directions
from tests.slices.helpers import CE, reference
from tests.slices.test_fold import data, trained_like

ONEDNN = torch.backends.mkldnn.is_available()  # every x86 and ARM wheel of torch has it
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not ONEDNN, reason="torch built without oneDNN: nothing is blocked"),
]
F32_RTOL = 2e-5  # a 3x3 conv sums <= 300 products: float32 rounding, well above 1e-7 per op


def model_of(name: str, bn: bool, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    shape = (1, 8, 8) if name != "resnet20" else (3, 8, 8)
    model = create_model(name, bn=bn, input_shape=shape, num_classes=10)
    return trained_like(model.to(dtype)).eval()


def inputs(channels: int = 1, n: int = 9) -> torch.Tensor:
    return torch.randn(n, channels, 8, 8, generator=torch.Generator().manual_seed(2))


def close(got: torch.Tensor, want: torch.Tensor, rtol: float) -> None:
    scale = float(want.abs().max())
    torch.testing.assert_close(got, want, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("bn", [True, False])
@pytest.mark.parametrize("name", ["vgg_small", "resnet20"])
def test_vehicle_equals_model_in_float32(name, bn):
    model = model_of(name, bn)
    x = inputs(3 if name == "resnet20" else 1)
    vehicle = F.Vehicle.build(copy.deepcopy(model), channels_last=True, block=True)
    assert vehicle is not None
    n_convs = sum(type(m) is nn.Conv2d for m in model.modules())
    assert len(vehicle.convs) == n_convs  # every convolution runs blocked
    vehicle.refresh()
    with torch.inference_mode():
        got, want = vehicle(x), model(x)
    assert not got.is_mkldnn and got.dtype == torch.float32
    close(got, want, F32_RTOL)


def test_blocked_convolution_keeps_stride_groups_dilation_and_no_bias():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, bias=False)
    x = torch.randn(5, 4, 9, 9)
    blocked = B.BlockedConv(conv)
    with torch.inference_mode():
        close(blocked(x).to_dense(), conv(x), F32_RTOL)
        with torch.no_grad():
            conv.weight.mul_(-3.0)  # the source moves: float32 reads it at the call
        close(blocked(x).to_dense(), conv(x), F32_RTOL)


def test_a_bfloat16_convolution_without_bias_casts_its_weight_only():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    x = torch.randn(5, 4, 9, 9)
    cast = B.BlockedConv(conv, torch.bfloat16)
    with torch.inference_mode():
        cast.repack()
        assert cast.cast_bias is None and cast.cast_weight.dtype == torch.bfloat16
        close(cast(x).to_dense().float(), conv(x), 2e-2)


def test_bfloat16_follows_its_source_from_the_next_repack():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(4, 3, 6, 6)
    blocked = B.BlockedConv(conv, torch.bfloat16)
    with torch.inference_mode():
        before = blocked(x).to_dense()
        assert before.dtype == torch.bfloat16
        close(before.float(), conv(x), 2e-2)
        with torch.no_grad():
            conv.weight.mul_(-3.0)
        assert torch.equal(blocked(x).to_dense(), before)  # the cast copy, until a repack
        blocked.repack()
        close(blocked(x).to_dense().float(), conv(x), 2e-2)


def test_only_convertible_convolutions_are_blocked():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding="same"),  # string padding: left as it is
        nn.ReLU(),  # its input is dense: it stays dense
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),  # not zeros: left
        nn.Conv2d(4, 4, 3, padding=1),  # blocked
        nn.ReLU(),  # follows it
        nn.Flatten(),
        nn.Linear(256, 3),
    )
    gm = torch.fx.symbolic_trace(net)
    convs = B.block(gm)
    assert len(convs) == 1 and convs[0]._source[0] is net[3]
    ops = [(n.op, str(n.target)) for n in gm.graph.nodes]
    assert ops.count(("call_method", "to_dense")) == 1  # once, between the ReLU and Flatten
    x = torch.randn(3, 1, 8, 8)
    with torch.inference_mode():
        close(gm(x), net(x), F32_RTOL)
    assert B.block(torch.fx.symbolic_trace(net.double())) == []  # float64: never blocked


def test_blocked_value_used_by_two_consumers():
    class Fork(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pool = nn.Conv2d(2, 16, 3, padding=1), nn.MaxPool2d(2)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            return self.pool(h).sum() + h.mean()  # blocked (pool) and dense (mean) users

    net, x = Fork(), torch.randn(4, 2, 6, 6)
    gm = torch.fx.symbolic_trace(copy.deepcopy(net))
    assert len(B.block(gm)) == 1
    with torch.inference_mode():
        close(gm(x), net(x), F32_RTOL)


@pytest.mark.parametrize("bn_mode", ["eval", "recalibrate"])
def test_float32_grid_equals_float64_reference(bn_mode, monkeypatch):
    """The issue's check: a float32 slice through the blocked vehicle is within float32
    rounding of the plain model's slice computed in float64."""
    model = model_of("vgg_small", True)
    batches = [(x.float(), y) for x, y in data()]
    dirs = random_directions(model, 2, seed=0)
    xs, ys = np.linspace(-1, 1, 3), np.array([-0.5, 1.0])
    built = []
    real_build = F.Vehicle.build

    def spy(*args, **kwargs):
        built.append(real_build(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(F.Vehicle, "build", spy)
    got = S.evaluate_grid(model, CE, batches, dirs, xs, ys, bn_mode=bn_mode, recalibrate_batches=2)
    assert built and built[0] is not None and len(built[0].convs) == 4
    m64 = copy.deepcopy(model).double()
    d64 = [{n: t.double() for n, t in d.items()} for d in dirs]
    b64 = [(x.double(), y) for x, y in batches]
    if bn_mode == "eval":
        want = reference(m64, b64, d64, xs, ys)[0]
    else:
        want = S.evaluate_grid(m64, CE, b64, d64, xs, ys, bn_mode=bn_mode,
                               recalibrate_batches=2).values["loss"]  # fmt: skip
    np.testing.assert_allclose(got.values["loss"], want, rtol=1e-5)


def test_bf16_trunk_is_within_bf16_rounding():
    model = model_of("vgg_small", True)
    x = inputs()
    vehicle = F.vehicle(copy.deepcopy(model), x, channels_last=True, running_stats=True, bf16=True)
    assert vehicle is not None and all(c.dtype == torch.bfloat16 for c in vehicle.convs)
    vehicle.refresh()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = vehicle(x).float()
    with torch.inference_mode():
        want = model(x)
    close(got, want, 3e-2)  # bf16 keeps 8 bits: ~4e-3 per op
    assert float((got - want).abs().max()) > 1e-6  # and it did run in bf16


def test_switch_off_and_batch_statistics_leave_the_model_alone(monkeypatch):
    model = model_of("vgg_small", True)
    x = inputs()
    assert F.vehicle(model, x, channels_last=True, running_stats=False, bf16=False) is None
    monkeypatch.setattr(F, "BLOCKED", False)
    vehicle = F.vehicle(model, x, channels_last=True, running_stats=True, bf16=False)
    assert vehicle is not None and vehicle.convs == []  # folded only
    plain = model_of("vgg_small", False)
    assert F.vehicle(plain, x, channels_last=True, running_stats=True, bf16=False) is None


# --- which operations run blocked, hooks, in-place ReLUs, the trunk's dtype ----------------


def to_dense_inputs(net: nn.Module) -> tuple[list[tuple[str, str]], torch.fx.GraphModule]:
    """Where ``block`` leaves the layout: the nodes whose values ``to_dense`` reads."""
    gm = torch.fx.symbolic_trace(copy.deepcopy(net))
    B.block(gm)
    reads = []
    for n in gm.graph.nodes:
        if n.op == "call_method" and n.target == "to_dense":
            src = n.args[0]
            name = getattr(src.target, "__name__", str(src.target))
            reads.append((src.op, "conv" if name.startswith("_landscape_blocked") else name))
    return reads, gm


class Functions(nn.Module):
    """ReLUs as functions and methods; dense ReLUs of the input first; torch.flatten last."""

    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.c1, self.c2, self.c3 = conv(), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        x = self.act(torch.relu(torch.nn.functional.relu(x - 0.5).relu()))  # dense input
        h = torch.nn.functional.relu(self.c1(x))
        h = torch.relu(self.c2(h))
        return torch.flatten(self.c3(h).relu(), 1)


class PoolWithIndices(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.pool = nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2, return_indices=True)

    def forward(self, x):
        return self.pool(self.conv(x))[0].flatten(1)


class DensePool(nn.Module):
    """A max pooling of a dense value stays out of the layout (nothing to convert back)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool, self.conv = nn.MaxPool2d(2), conv()

    def forward(self, x):
        return self.conv(x).flatten(1)[:, :4] + self.pool(x).flatten(1)[:, :4]


def conv(*args, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(3, 4, 3, *args, padding=1, **kwargs)


@pytest.mark.parametrize(
    "net, reads",
    [
        (lambda: nn.Sequential(conv(), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()),
         [("call_module", "2")]),  # ReLU and pooling in the layout: to dense after the pool
        (lambda: nn.Sequential(conv(), nn.ReLU(), nn.Flatten()),
         [("call_function", "relu_")]),  # the ReLU module, in place
        (lambda: nn.Sequential(conv(), nn.MaxPool2d(2, dilation=(1, 1)), nn.Flatten()),
         [("call_module", "1")]),
        (lambda: nn.Sequential(conv(), nn.MaxPool2d(2, dilation=2), nn.Flatten()),
         [("call_module", "conv")]),  # oneDNN pools without dilation only
        (PoolWithIndices, [("call_module", "conv")]),  # nor does it give indices
        (lambda: nn.Sequential(conv(), nn.Flatten(), nn.Linear(256, 3)),
         [("call_module", "conv")]),
        (Functions, [("call_function", "relu_")]),  # the last ReLU, in place
        (DensePool, [("call_module", "conv")]),
    ],
)  # fmt: skip
def test_relu_and_pooling_follow_the_layout_and_nothing_else(net, reads):
    net = net()
    got, gm = to_dense_inputs(net)
    assert got == reads
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        close(gm(x.clone()), net(x), F32_RTOL)


def test_hooked_convolutions_are_not_blocked():
    net = nn.Sequential(conv(), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.Flatten())
    net[0].register_forward_hook(lambda m, i, o: o * 2)
    net[2].register_forward_pre_hook(lambda m, i: (i[0] - 1,))
    gm = torch.fx.symbolic_trace(copy.deepcopy(net))
    assert B.block(gm) == []
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        close(gm(x), net(x), F32_RTOL)


def test_a_relu_is_in_place_only_where_its_input_has_no_other_use():
    class TwoUsers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.pool = conv(), nn.MaxPool2d(2)

        def forward(self, x):
            c = self.conv(x)  # read by the ReLU and, after it, by the second pooling
            return self.pool(torch.relu(c)).flatten(1) - self.pool(c).flatten(1)

    net, x = TwoUsers(), torch.randn(2, 3, 8, 8)
    gm = torch.fx.symbolic_trace(copy.deepcopy(net))
    assert len(B.block(gm)) == 1
    with torch.inference_mode():
        close(gm(x), net(x), F32_RTOL)


def test_block_in_bf16_runs_the_trunk_in_bf16():
    net = nn.Sequential(conv(), nn.ReLU(), nn.Flatten())
    gm = torch.fx.symbolic_trace(copy.deepcopy(net))
    convs = B.block(gm, torch.bfloat16)
    assert [c.dtype for c in convs] == [torch.bfloat16]
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        got, want = gm(x), net(x)
    assert got.dtype == torch.bfloat16
    close(got.float(), want, 3e-2)


def test_available_needs_the_cpu_and_float32():
    cpu = torch.device("cpu")
    assert B.available(cpu, torch.float32)
    assert not B.available(cpu, torch.float64) and not B.available(cpu, torch.bfloat16)
    assert not B.available(torch.device("cuda"), torch.float32)
    assert not B.available(torch.device("meta"), torch.float32)


class ReluFirst(nn.Module):
    """ReLUs of the input (module, function, method), each its input's only use."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind, self.act, self.conv = kind, nn.ReLU(), conv()

    def forward(self, x):
        if self.kind == "module":
            h = self.act(x)
        elif self.kind == "function":
            h = torch.nn.functional.relu(x)
        else:
            h = x.relu()
        return self.conv(h).flatten(1)


@pytest.mark.parametrize("kind", ["module", "function", "method"])
def test_a_relu_of_a_dense_value_leaves_it_alone(kind):
    """Only a ReLU of a blocked value runs in place: the caller's inputs are not overwritten."""
    net = ReluFirst(kind)
    gm = torch.fx.symbolic_trace(copy.deepcopy(net))
    assert len(B.block(gm)) == 1
    x = torch.randn(2, 3, 8, 8)
    before = x.clone()
    with torch.inference_mode():
        close(gm(x), net(before), F32_RTOL)
    assert torch.equal(x, before)


def test_folded_weights_feeding_blocked_convolutions_are_nchw():
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),  # folded and blocked
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(4),  # folded only
        nn.Flatten(), nn.Linear(256, 3),
    ).eval()  # fmt: skip
    vehicle = F.Vehicle.build(trained_like(net), channels_last=True, block=True)
    assert vehicle is not None and len(vehicle.convs) == 1
    (first, _, blocked_source), (_, _, dense_source) = vehicle.folds[0], vehicle.folds[1]
    assert vehicle.convs[0]._source[0] is blocked_source and first is net[0]
    assert blocked_source.weight.is_contiguous()  # read as it is by oneDNN: no copy per call
    assert dense_source.weight.is_contiguous(memory_format=torch.channels_last)
    vehicle.refresh()
    x = torch.randn(5, 2, 8, 8)
    with torch.inference_mode():
        close(vehicle(x), net(x), F32_RTOL)
