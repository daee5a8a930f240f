"""The built-in families: shapes, BN/plain pairing, initialisation, seeds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from landscape.models import ModelSpec, bn_layer_names, copy_shared_parameters, create_model

# name -> (spec fields and options, input batch shape, output shape); small but exercising
CASES = {
    "vgg_small": (dict(name="vgg_small"), (4, 1, 8, 8), (4, 10)),
    "vgg_cfg": (
        dict(name="vgg", options={"cfg": [8, "M", 8], "hidden": [16]}),
        (3, 1, 8, 8),
        (3, 10),
    ),
    "vgg_depth": (dict(name="vgg", options={"depth": 3, "width": 4}), (3, 1, 8, 8), (3, 10)),
    "mlp": (dict(name="mlp", options={"depth": 2, "width": 16}), (5, 1, 8, 8), (5, 10)),
    "dln": (dict(name="dln", input_shape=(10,), options={"depth": 5}), (5, 10), (5, 10)),
    "resnet20_8": (dict(name="resnet20"), (2, 1, 8, 8), (2, 10)),
    "resnet20_8_noskip": (dict(name="resnet20", options={"skip": False}), (2, 1, 8, 8), (2, 10)),
}


def spec_of(case: str, **changes) -> ModelSpec:
    fields = dict(CASES[case][0]) | changes
    return ModelSpec(**fields)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.ndim >= 2}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("bn", [False, True])
def test_output_shape_and_backward(case, bn):
    _, x_shape, y_shape = CASES[case]
    model = spec_of(case, bn=bn).build(seed=0)
    out = model(torch.randn(x_shape))
    assert out.shape == y_shape
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    "name,options", [("vgg11", {}), ("resnet20", {}), ("resnet20", {"skip": False})]
)
def test_cifar_shapes(name, options):
    model = create_model(name, input_shape=(3, 32, 32), init="default", **options)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_dln_is_25_square_layers():
    model = create_model("dln", bn=True, input_shape=(10,))
    ws = list(weights(model).values())
    assert len(ws) == 25 and all(w.shape == (10, 10) for w in ws)
    assert len(bn_layer_names(model)) == 24  # BN after every layer but the last


def test_vgg_depth_width_reproduces_vgg_a():
    a = create_model("vgg", depth=8, width=64, input_shape=(3, 32, 32), init="default")
    b = create_model("vgg11", input_shape=(3, 32, 32), init="default")
    assert {n: p.shape for n, p in a.named_parameters()} == {
        n: p.shape for n, p in b.named_parameters()
    }


@pytest.mark.parametrize("case", CASES)
def test_bn_variant_differs_only_by_bn_layers(case):
    plain, bn = spec_of(case).build(seed=0), spec_of(case, bn=True).build(seed=1)
    assert bn_layer_names(plain) == []
    plain_names, bn_names = set(plain.state_dict()), set(bn.state_dict())
    assert plain_names < bn_names
    bn_modules = set(bn_layer_names(bn))
    assert bn_modules and all(n.rsplit(".", 1)[0] in bn_modules for n in bn_names - plain_names)

    copied = copy_shared_parameters(bn, plain)
    assert set(copied) == plain_names
    shared = bn.state_dict()
    assert all(torch.equal(t, shared[n]) for n, t in plain.state_dict().items())


def test_same_seed_gives_same_shared_weights_in_both_variants():
    plain, bn = spec_of("vgg_small").build(seed=3), spec_of("vgg_small", bn=True).build(seed=3)
    shared = bn.state_dict()
    assert all(torch.equal(t, shared[n]) for n, t in plain.state_dict().items())


@pytest.mark.parametrize("init", ["glorot", "kaiming", "default"])
@pytest.mark.parametrize("case", ["vgg_small", "resnet20_8", "dln"])
def test_init_scale_multiplies_every_weight_tensor(case, init):
    one = spec_of(case, bn=True, init=init).build(seed=0)
    three = spec_of(case, bn=True, init=init, init_scale=3.0).build(seed=0)
    big = dict(three.named_parameters())
    for name, p in one.named_parameters():
        expected = 3 * p if p.ndim >= 2 else p  # biases and BN affine parameters untouched
        assert torch.equal(big[name], expected), name


@pytest.mark.parametrize("case", ["vgg_small", "mlp", "resnet20_8"])
def test_glorot_bounds_and_zero_biases(case):
    model = spec_of(case, bn=True, init="glorot").build(seed=0)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_out, fan_in = m.weight.shape[:2]
            field = m.weight[0, 0].numel()
            bound = math.sqrt(6 / ((fan_in + fan_out) * field))
            assert m.weight.abs().max() <= bound
            if m.weight.numel() > 1000:  # uniform: the extreme is close to the bound
                assert m.weight.abs().max() > 0.95 * bound
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_kaiming_std():
    model = create_model("mlp", init="kaiming", depth=1, width=2000, input_shape=(500,))
    w = model.layers[0].linear.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / 500), rel=0.02)


def test_seed_reproducible_and_global_rng_untouched():
    spec = spec_of("resnet20_8")
    state = torch.get_rng_state()
    a, b, c = spec.build(seed=0), spec.build(seed=0), spec.build(seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[n], sb[n]) for n in sa)
    assert not all(torch.equal(sa[n], sc[n]) for n in weights(a))


def test_resnet_without_skip_has_no_shortcut_path():
    with_skip = spec_of("resnet20_8", bn=True).build(seed=0)
    no_skip = spec_of("resnet20_8_noskip", bn=True).build(seed=0)
    extra = set(with_skip.state_dict()) - set(no_skip.state_dict())
    assert extra and all(".shortcut." in n for n in extra)  # projection shortcuts only
    assert set(no_skip.state_dict()) < set(with_skip.state_dict())
    copy_shared_parameters(with_skip, no_skip)
    x = torch.randn(2, 1, 8, 8)
    assert not torch.allclose(with_skip(x), no_skip(x))

    for model, identity in [(no_skip, 0), (with_skip, 1)]:
        block = model.stage1[1]  # 16 -> 16 channels: the shortcut, if any, is the identity
        h = torch.randn(2, 16, 4, 4)
        main = block.bn2(block.conv2(block.act1(block.bn1(block.conv1(h)))))
        torch.testing.assert_close(block(h), block.act2(main + identity * h))


def test_vgg_small_is_cheap():
    model = create_model("vgg_small")
    n = sum(p.numel() for p in model.parameters())
    assert n < 50_000  # CPU-sized: a step on a batch of 128 takes milliseconds
