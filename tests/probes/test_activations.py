"""Tests for landscape.probes.activations: layer-input quantiles against numpy on hooked copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape import batch_loss
from landscape.probes import ACTIVATION_QUANTILES, activation_quantiles
from tests.cases import assert_same_state, full_state, prepared_bn_net


def inputs_of(model: nn.Module, x: torch.Tensor, names: list[str], train: bool) -> dict:
    """The first input of each named module in one forward pass, the obvious way."""
    seen: dict[str, np.ndarray] = {}
    modules = dict(model.named_modules())

    def keep(name: str):
        def hook(module: nn.Module, args: tuple) -> None:  # None: the input is left as it is
            seen.setdefault(name, args[0].detach().double().numpy().ravel())

        return hook

    hooks = [modules[n].register_forward_pre_hook(keep(n)) for n in names]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    was = {n: m.training for n, m in model.named_modules()}
    model.train(train)
    torch.manual_seed(0)  # the dropout layer draws what the probe's seed=0 draws
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    model.load_state_dict(state)
    for n, m in model.named_modules():
        m.training = was[n]
    return seen


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_quantiles_match_numpy_and_leave_the_model_as_found(bn_mode: str) -> None:
    model, batch = prepared_bn_net()
    expected = inputs_of(model, batch[0], ["0", "4", "8"], train=bn_mode == "train")
    before = full_state(model)
    r = activation_quantiles(model, nn.functional.cross_entropy, batch, bn_mode=bn_mode)
    assert_same_state(before, full_state(model))
    assert r.layers == ["0", "4", "8"] and r.values.shape == (3, len(ACTIVATION_QUANTILES))
    for i, name in enumerate(r.layers):
        v = expected[name]
        np.testing.assert_allclose(r.values[i], np.quantile(v, ACTIVATION_QUANTILES), rtol=1e-5,
                                   atol=1e-6)  # fmt: skip
        np.testing.assert_allclose([r.mean[i], r.std[i]], [v.mean(), v.std()], rtol=1e-5,
                                   atol=1e-6)  # fmt: skip
    # the last layer's input follows BN and ReLU (in train mode BN makes it nonnegative)
    assert r.values[2, 0] >= 0


def test_layers_by_name_quantiles_and_batch_loss() -> None:
    model, (x, y) = prepared_bn_net()
    loss = batch_loss(lambda m, b: nn.functional.cross_entropy(m(b["x"]), b["y"]))
    r = activation_quantiles(model, loss, {"x": x, "y": y}, layers=["8"], quantiles=[0.5, 1])
    plain = activation_quantiles(model, nn.functional.cross_entropy, (x, y), layers=["8"])
    assert r.layers == ["8"] and r.quantiles.tolist() == [0.5, 1.0]
    np.testing.assert_array_equal(r.values[0], plain.values[0, [4, 8]])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"quantiles": [0.5, 1.2]}, "levels in \\[0, 1\\]"),
        ({"quantiles": []}, "levels in \\[0, 1\\]"),
        ({"layers": ["2"]}, "own no trainable weight"),
        ({"bn_mode": "test"}, "unknown bn_mode"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, match: str) -> None:
    model, batch = prepared_bn_net()
    with pytest.raises(ValueError, match=match):
        activation_quantiles(model, nn.functional.cross_entropy, batch, **kwargs)


def test_a_layer_never_called_is_named() -> None:
    model = nn.ModuleDict({"used": nn.Linear(2, 2), "unused": nn.Linear(2, 2)})
    model.forward = lambda x: model["used"](x)  # type: ignore[method-assign]
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="never called layers \\['unused'\\]"):
        activation_quantiles(model, nn.functional.mse_loss, (x, x))
