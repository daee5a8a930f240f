"""ModelSpec and the registry: JSON round trips, import paths, option checks."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

from landscape.models import MODELS, ModelSpec, bn_layer_names, create_model

FACTORY_MODULE = """
from torch import nn

def factory(*, bn, activation, init, init_scale, input_shape, num_classes, hidden=4):
    layers = [nn.Flatten(), nn.Linear(input_shape[0], hidden)]
    if bn:
        layers.append(nn.BatchNorm1d(hidden))
    return nn.Sequential(*layers, nn.Linear(hidden, num_classes))

def narrow(*, bn):
    return nn.Identity()

def not_a_model(**kwargs):
    return 42
"""


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "custom_models_for_test.py").write_text(textwrap.dedent(FACTORY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "custom_models_for_test"


def test_spec_json_round_trip_rebuilds_identical_model():
    spec = ModelSpec(
        "vgg",
        bn=True,
        activation="tanh",
        init="kaiming",
        init_scale=2.5,
        input_shape=(1, 8, 8),
        num_classes=7,
        options={"cfg": (8, "M", 16, "M"), "hidden": (32,)},
    )
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["input_shape"] == [1, 8, 8] and d["options"]["cfg"] == [8, "M", 16, "M"]
    back = ModelSpec.from_dict(d)
    assert back == spec and back.input_shape == (1, 8, 8)
    sa, sb = spec.build(seed=0).state_dict(), back.build(seed=0).state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[n], sb[n]) for n in sa)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown ModelSpec keys"):
        ModelSpec.from_dict({"name": "mlp", "depth": 3})


def test_import_path_factory(factory_module):
    model = create_model(f"{factory_module}:factory", bn=True, input_shape=(6,), hidden=5)
    assert model(torch.randn(3, 6)).shape == (3, 10)
    assert model[1].out_features == 5 and bn_layer_names(model) == ["2"]
    spec = ModelSpec.from_dict(ModelSpec(f"{factory_module}:factory", input_shape=(6,)).to_dict())
    assert isinstance(spec.build(seed=0), nn.Sequential)


@pytest.mark.parametrize(
    "name,match",
    [
        ("no_such_module_xyz:factory", "cannot import model factory"),
        ("{mod}:missing", "cannot import model factory"),
        ("{mod}:not_a_model", "not an nn.Module"),
        ("{mod}:narrow", "must accept the keyword arguments"),
    ],
)
def test_import_path_errors(factory_module, name, match):
    with pytest.raises(ValueError, match=match):
        create_model(name.format(mod=factory_module), input_shape=(6,))


def test_import_path_unknown_option(factory_module):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['depth'\]"):
        create_model(f"{factory_module}:factory", input_shape=(6,), depth=3)


@pytest.mark.parametrize(
    "name,options,match",
    [
        ("nope", {}, "unknown model 'nope': choose one of .*import path"),
        ("mlp", {"depht": 3}, r"unknown option\(s\) \['depht'\] for model 'mlp'"),
        ("vgg11", {"cfg": [8]}, r"unknown option\(s\) \['cfg'\]"),
        ("mlp", {"activation": "gelu"}, "unknown activation 'gelu'"),
        ("mlp", {"init": "orthogonal"}, "unknown init 'orthogonal'"),
        ("mlp", {"init_scale": 0.0}, "init_scale must be a positive"),
        ("dln", {"input_shape": (10,), "num_classes": 3}, "dln is square"),
        ("dln", {"input_shape": (10,), "activation": "tanh"}, "dln has no activation"),
        ("vgg", {"cfg": [8, "M", "M", "M", "M"]}, "pools too often"),
        ("vgg", {"cfg": [8, "X"]}, "positive ints or 'M'"),
        ("vgg", {"cfg": [8], "depth": 3}, "not both"),
        ("resnet20", {"input_shape": (64,)}, r"needs input_shape \(C, H, W\)"),
    ],
)
def test_bad_input_raises_value_error(name, options, match):
    with pytest.raises(ValueError, match=match):
        create_model(name, **options)


def test_options_must_not_shadow_fields():
    with pytest.raises(ValueError, match="ModelSpec fields"):
        ModelSpec("mlp", options={"bn": True})


def test_registry_rejects_duplicates():
    from landscape.models import register_model

    assert {"vgg", "vgg11", "vgg_small", "mlp", "dln", "resnet20"} <= set(MODELS)
    with pytest.raises(ValueError, match="already registered"):
        register_model("mlp")(lambda **kw: nn.Identity())


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("mlp", {"width": 0}, "width must be a positive integer"),
        ("mlp", {"width": 1.5}, "width must be a positive integer"),
        ("mlp", {"depth": -1}, "depth must be a positive integer"),
        ("resnet20", {"width": 0}, "width must be a positive integer"),
        ("resnet20", {"skip": "maybe"}, "skip must be true or false"),
        ("vgg_small", {"hidden": 5}, "hidden must be a list"),
        ("vgg", {"cfg": []}, "at least one conv"),
        ("dln", {"depth": 0}, "depth must be a positive integer"),
    ],
)
def test_nonsense_family_options_are_refused(name, options, match):
    shape = {"input_shape": (10,), "num_classes": 10} if name == "dln" else {}
    with pytest.raises(ValueError, match=match):
        create_model(name, **shape, **options)
