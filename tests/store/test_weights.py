"""Your own weights as a checkpoint (landscape.store.weights): state_dict files, wrappers,
pickled models only when trusted, and the factory that builds their model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.store import CheckpointError, build_model
from landscape.store.weights import load_state_dict_file, weights_checkpoint

FACTORY = "tests.store.test_weights:make"


def make(width: int = 4) -> nn.Module:
    torch.manual_seed(width)
    return nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, 2))


class Box:
    """A pickled object that is not a model."""


NOT_CALLABLE = 3


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_state_dict_file_is_a_checkpoint_of_step_zero_with_its_factory(tmp_path):
    mine = make(6)
    with torch.no_grad():
        mine[0].weight.mul_(2.0)  # not what the factory draws
    path = tmp_path / "m.pt"
    torch.save(mine.state_dict(), path)
    ckpt = weights_checkpoint(path, FACTORY, {"width": 6})
    assert (ckpt.step, ckpt.config, ckpt.path) == (0, {}, path)
    assert (ckpt.rng, ckpt.optimizer_state) == ({}, None)  # no RNG states, no optimizer
    assert ckpt.spec == {"factory": FACTORY, "options": {"width": 6}}
    assert ckpt.extra == {"form": "state_dict"}
    assert same_weights(build_model(ckpt), mine)
    assert weights_checkpoint(str(path), FACTORY, {"width": 6}).path == path  # a str path too
    torch.save(make().state_dict(), tmp_path / "d.pt")
    default = weights_checkpoint(tmp_path / "d.pt", FACTORY)  # no options: factory()
    assert default.spec == {"factory": FACTORY, "options": {}}
    assert same_weights(build_model(default), make())


def test_weights_that_do_not_fit_and_factories_that_do_not_import(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(make(6).state_dict(), path)
    with pytest.raises(CheckpointError):
        weights_checkpoint(path, FACTORY, {"width": 5})  # refused at once, not later
    with pytest.raises(ValueError, match=r"cannot import model factory '.*nosuch:make'"):
        weights_checkpoint(path, "tests.store.nosuch:make")
    with pytest.raises(ValueError, match=r"model factory '.*:NOT_CALLABLE' is not callable"):
        weights_checkpoint(path, "tests.store.test_weights:NOT_CALLABLE")


def test_a_whole_pickled_model_only_when_trusted(tmp_path):
    model = make(5)
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(CheckpointError, match="is a whole pickled model: loading it runs code"):
        weights_checkpoint(path, FACTORY, {"width": 5})
    ckpt = weights_checkpoint(path, FACTORY, {"width": 5}, trust_pickle=True)
    assert ckpt.extra == {"form": "pickled model"} and same_weights(build_model(ckpt), model)
    torch.save(Box(), tmp_path / "box.pt")
    with pytest.raises(CheckpointError, match="holds a Box, not a model"):
        weights_checkpoint(tmp_path / "box.pt", FACTORY, trust_pickle=True)


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model_state", "model"])
def test_every_wrapper_key_and_what_is_not_a_state_dict(tmp_path, key):
    sd = make().state_dict()
    path = tmp_path / "w.pt"
    torch.save({key: sd, "epoch": 3}, path)
    loaded = load_state_dict_file(path)
    assert loaded.keys() == sd.keys() and all(torch.equal(loaded[k], sd[k]) for k in sd)
    torch.save({"state_dict": {}, "model": sd}, path)  # an empty one is passed over
    assert load_state_dict_file(path).keys() == sd.keys()
    for holds_none in ({}, {"w": torch.ones(1), "step": 3}, {key: {"w": 1.0}}):
        torch.save(holds_none, path)
        with pytest.raises(CheckpointError, match="holds no state_dict"):
            load_state_dict_file(path)


def one_weight() -> nn.Module:
    return nn.Linear(3, 1, bias=False)


def test_a_state_dict_of_one_tensor_is_a_state_dict(tmp_path):
    mine = one_weight()
    path = tmp_path / "w.pt"
    torch.save(mine.state_dict(), path)
    assert load_state_dict_file(path).keys() == {"weight"}
    ckpt = weights_checkpoint(path, "tests.store.test_weights:one_weight")
    assert same_weights(build_model(ckpt), mine)


def test_a_landscape_checkpoint_gives_its_model_state_even_when_empty(tmp_path):
    from landscape.store import save_checkpoint

    save_checkpoint(tmp_path / "c.pt", model=nn.ReLU(), step=0, spec={}, config={})
    assert load_state_dict_file(tmp_path / "c.pt") == {}


def test_weights_that_do_not_fit_say_why_in_one_line(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(make(6).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        weights_checkpoint(path, FACTORY, {"width": 5})
    head, why = str(err.value).split(": cannot rebuild its model: ")
    assert head == str(path) and len(why) == 300  # torch's message, cut to 300 characters
    assert why.startswith(
        "Error(s) in loading state_dict for Sequential: size mismatch for 0.weight:"
    )
