"""Each family's architecture against its definition, written out by hand: the shape of every
weight, where the BatchNorms sit, ResNet-20's strides, the defaults, and the initialisation's
defaults. Shapes are what the docstrings and the papers define, not read back from a model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from landscape.models import copy_shared_parameters, create_model
from landscape.models.blocks import initialize

BNS = (nn.BatchNorm1d, nn.BatchNorm2d)


def weight_shapes(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in model.parameters() if p.ndim >= 2]


def bn_widths(model: nn.Module) -> list[int]:
    return [m.num_features for m in model.modules() if isinstance(m, BNS)]


def test_vgg_small_is_two_stages_of_two_convolutions_and_one_hidden_layer():
    """cfg [w, w, M, 2w, 2w, M] with w = 16, then 64 hidden units: on 8x8 digits the features
    are 32 x 2 x 2; every layer but the output one is normalised in the BN variant."""
    bn = create_model("vgg_small", bn=True, input_shape=(1, 8, 8))
    assert weight_shapes(bn) == [(16, 1, 3, 3), (16, 16, 3, 3), (32, 16, 3, 3), (32, 32, 3, 3),
                                 (64, 128), (10, 64)]  # fmt: skip
    assert bn_widths(bn) == [16, 16, 32, 32, 64]
    assert bn_widths(create_model("vgg_small", input_shape=(1, 8, 8))) == []
    wide = create_model("vgg_small", width=4, input_shape=(1, 8, 8))
    assert weight_shapes(wide)[:4] == [(4, 1, 3, 3), (4, 4, 3, 3), (8, 4, 3, 3), (8, 8, 3, 3)]


def test_vgg_defaults_are_vgg_a_and_bn_follows_every_hidden_layer():
    default = create_model("vgg", bn=True, input_shape=(3, 32, 32), init="default")
    explicit = create_model("vgg", bn=True, depth=8, width=64, input_shape=(3, 32, 32),
                            init="default")  # fmt: skip
    assert weight_shapes(default) == weight_shapes(explicit)
    convs = [s for s in weight_shapes(default) if len(s) == 4]
    assert [s[0] for s in convs] == [64, 128, 256, 256, 512, 512, 512, 512]  # VGG-A
    linears = [s for s in weight_shapes(default) if len(s) == 2]
    assert bn_widths(default) == [c[0] for c in convs] + [s[0] for s in linears[:-1]]
    assert linears[-1][0] == 10 and linears[-1][1] == linears[-2][0]


def test_mlp_defaults_and_bn_placement():
    """Three hidden layers of 128 units by default, BN after each, none after the output."""
    model = create_model("mlp", bn=True, input_shape=(1, 8, 8))
    assert weight_shapes(model) == [(128, 64), (128, 128), (128, 128), (10, 128)]
    assert bn_widths(model) == [128, 128, 128]


def test_dln_layers_have_no_bias_by_default():
    model = create_model("dln", input_shape=(10,))
    assert [n for n, p in model.named_parameters() if p.ndim == 1] == []


def test_resnet20_is_a_stem_and_three_stages_of_three_blocks():
    """16/32/64 channels, strides 1, 2, 2 (32x32 -> 32, 16, 8), 19 3x3 convolutions, a 1x1
    projection where a stage changes width, a BN after every convolution in the BN variant."""
    model = create_model("resnet20", bn=True, input_shape=(3, 32, 32), init="default")
    shapes = weight_shapes(model)
    three = [s for s in shapes if len(s) == 4 and s[2:] == (3, 3)]
    one = [s for s in shapes if len(s) == 4 and s[2:] == (1, 1)]
    assert len(three) == 19 and three[0] == (16, 3, 3, 3)
    assert [s[0] for s in three[1:]] == [16] * 6 + [32] * 6 + [64] * 6
    assert one == [(32, 16, 1, 1), (64, 32, 1, 1)] and shapes[-1] == (10, 64)
    assert bn_widths(model) == [16] + [16] * 6 + [32] * 7 + [64] * 7
    sizes = []
    for stage in (model.stage1, model.stage2, model.stage3):
        assert len(stage) == 3
        stage.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    model.eval()(torch.randn(1, 3, 32, 32))
    assert sizes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    double = create_model("resnet20", width=2, input_shape=(3, 32, 32), init="default")
    assert weight_shapes(double)[-1] == (10, 128)


def test_initialize_defaults_to_scale_one_and_the_relu_gain():
    """Glorot without a scale stays within sqrt(6 / (fan_in + fan_out)); Kaiming without a
    nonlinearity has the ReLU gain, std sqrt(2 / fan_in)."""
    torch.manual_seed(0)
    glorot = initialize(nn.Linear(200, 300), "glorot")
    bound = math.sqrt(6 / 500)
    top = float(glorot.weight.detach().abs().max())
    assert 0.9 * bound < top <= bound
    kaiming = initialize(nn.Linear(400, 400), "kaiming")
    assert float(kaiming.weight.detach().std()) == pytest.approx(math.sqrt(2 / 400), rel=0.02)


@pytest.mark.parametrize("name", ["mlp", "vgg_small", "resnet20"])
def test_kaiming_takes_the_gain_of_the_networks_activation(name):
    """tanh's gain is 5/3 (ReLU's sqrt 2): the first layer's std is gain / sqrt(fan_in)."""
    torch.manual_seed(0)
    model = create_model(name, activation="tanh", init="kaiming", input_shape=(1, 8, 8))
    w = next(p for p in model.parameters() if p.ndim >= 2 and p.numel() >= 1000)
    fan_in = w[0].numel()
    assert float(w.detach().std()) == pytest.approx((5 / 3) / math.sqrt(fan_in), rel=0.06)


def test_copy_shared_parameters_skips_names_or_shapes_the_source_lacks():
    src = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    dst = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 5), nn.Linear(5, 1))
    copied = copy_shared_parameters(src, dst)
    assert copied == ["0.weight", "0.bias"]  # 1.* differ in shape, 2.* are not in src
    assert torch.equal(dst[0].weight, src[0].weight)


@pytest.mark.parametrize(
    "name, options, family",
    [("vgg", {"hidden": [0]}, "vgg"), ("vgg_small", {"width": 0}, "vgg_small"),
     ("vgg_small", {"hidden": [8, 0]}, "vgg"), ("mlp", {"depth": 0}, "mlp"),
     ("mlp", {"width": 0}, "mlp"), ("dln", {"depth": 0}, "dln"),
     ("resnet20", {"width": 0}, "resnet20")],
)  # fmt: skip
def test_a_size_that_is_not_positive_is_refused_naming_the_family(name, options, family):
    """(vgg_small's hidden widths are checked by the vgg it builds, which names itself.)"""
    shape = (10,) if name == "dln" else (1, 8, 8)
    with pytest.raises(ValueError, match=rf"^{family}: .* must be a positive integer, got 0"):
        create_model(name, input_shape=shape, **options)
    if name == "vgg":
        for bad in ({"depth": 0}, {"width": 0}):
            with pytest.raises(ValueError, match="vgg needs depth >= 1 and width >= 1"):
                create_model("vgg", input_shape=shape, **bad)


def test_vgg_by_depth_and_width_pools_as_often_as_the_input_allows():
    """Stages: min(5, depth, log2 of the smaller side); sizes of one are allowed; a cfg
    entry of 1 too, 0 is not; a cfg that pools the input away, or VGG-A on 8x8, is refused."""

    def pools(model):
        return sum(isinstance(m, nn.MaxPool2d) for m in model.modules())

    assert pools(create_model("vgg", depth=8, width=4, input_shape=(1, 8, 8))) == 3
    assert pools(create_model("vgg", depth=8, width=4, input_shape=(1, 64, 64))) == 5
    assert pools(create_model("vgg", depth=2, width=4, input_shape=(1, 32, 32))) == 2
    assert pools(create_model("vgg", depth=8, width=4, input_shape=(1, 8, 32))) == 3
    one = create_model("vgg", depth=1, width=1, input_shape=(1, 8, 8))
    assert weight_shapes(one)[0] == (1, 1, 3, 3) and pools(one) == 1
    assert weight_shapes(create_model("vgg", cfg=[1, "M"], hidden=[3], input_shape=(1, 4, 4)))[
        0
    ] == (1, 1, 3, 3)
    with pytest.raises(ValueError, match="cfg entries must be positive ints"):
        create_model("vgg", cfg=[0, "M"], input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="pools too often"):
        create_model("vgg", cfg=[4, "M", "M"], input_shape=(1, 2, 8))
    with pytest.raises(ValueError, match="pools too often"):
        create_model("vgg11", input_shape=(1, 8, 8))


def test_the_output_layer_reads_the_last_hidden_width():
    vgg = create_model("vgg", cfg=[4, "M"], hidden=[16, 8], input_shape=(1, 4, 4))
    assert weight_shapes(vgg)[-3:] == [(16, 16), (8, 16), (10, 8)]
    mlp = create_model("mlp", depth=1, width=7, input_shape=(1, 8, 8))
    assert weight_shapes(mlp) == [(7, 64), (10, 7)]


def test_sigmoid_networks_and_the_dlns_options():
    """activation="sigmoid" puts sigmoids in; a DLN takes biases when asked and is linear:
    Kaiming there has gain 1, std 1 / sqrt(d)."""
    net = create_model("vgg_small", activation="sigmoid", input_shape=(1, 8, 8))
    assert sum(isinstance(m, nn.Sigmoid) for m in net.modules()) == 5
    assert not any(isinstance(m, nn.ReLU) for m in net.modules())
    biased = create_model("dln", bias=True, input_shape=(10,))
    assert len([p for p in biased.parameters() if p.ndim == 1]) == 25
    torch.manual_seed(0)
    deep = create_model("dln", init="kaiming", input_shape=(200,), num_classes=200, depth=3)
    w = torch.cat([p.detach().flatten() for p in deep.parameters()])
    assert float(w.std()) == pytest.approx(1 / math.sqrt(200), rel=0.02)


def test_noisy_bn_in_3d_and_through_create_model():
    """Noise after a BatchNorm3d too; ``create_model(..., bn_noise="santurkar")`` passes the
    option on; a spec built without a seed draws its noise seed (two builds differ)."""
    from landscape.models import ModelSpec, add_bn_noise
    from landscape.models.noisy_bn import NoisyBatchNorm3d

    net = nn.Sequential(nn.Conv3d(1, 2, 1), nn.BatchNorm3d(2, eps=1e-3, momentum=0.2))
    assert add_bn_noise(net, seed=0) == ["1"] and isinstance(net[1], NoisyBatchNorm3d)
    assert (net[1].num_features, net[1].eps, net[1].momentum) == (2, 1e-3, 0.2)
    y = torch.randn(3, 2, 2, 2, 2)
    plain = nn.functional.batch_norm(y, None, None, training=True)
    assert not torch.allclose(net[1].train()(y), plain)  # noise added in training mode
    noisy = create_model("vgg_small", bn=True, bn_noise="santurkar", input_shape=(1, 8, 8))
    assert any(type(m).__name__.startswith("Noisy") for m in noisy.modules())
    spec = ModelSpec(name="mlp", bn=True, bn_noise="santurkar", options={"depth": 1, "width": 4})
    seeds = [
        [int(b) for n, b in spec.build().named_buffers() if n.endswith("noise_seed")]
        for _ in range(2)
    ]
    assert len(seeds[0]) == 1 and seeds[0] != seeds[1]


def test_spec_refusals_name_what_is_accepted():
    from landscape.models import ModelSpec

    with pytest.raises(ValueError, match=r"vgg: cfg must hold at least one conv width"):
        create_model("vgg", cfg=["M"], input_shape=(1, 8, 8))
    with pytest.raises(
        ValueError, match=r"unknown option\(s\) \['colour'\] .* accepts \['depth', 'width'\]"
    ):
        create_model("mlp", colour=1, input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="model options must be JSON-serialisable"):
        ModelSpec(name="mlp", options={"depth": object()})
