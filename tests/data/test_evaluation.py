"""The batch/loss protocol and the evaluation data: plain (inputs, targets) batches or any
batch through batch_loss, at every entry point; a dataset by name is a fixed seeded subset."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch import nn

from landscape import batch_loss
from landscape.data import dataset_batches
from landscape.probes import ProbeCallback, gradient_probe, ics
from landscape.slices import random_line


def digits_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 10)
    ).double()


def test_a_dataset_by_name_is_its_fixed_default_subset(digits):
    model = digits_net()
    res = random_line(model, nn.functional.cross_entropy, "digits", "-1:1:3")
    source = {"dataset": "digits", "split": "train", "examples": 1000, "subset_seed": 0}
    assert res.meta["data"] == source and res.meta["eval_examples"] == 1000
    # the same subset, drawn by hand from the training split in float64
    idx = torch.randperm(len(digits.x_train), generator=torch.Generator().manual_seed(0))
    idx = idx[:1000].sort().values
    by_hand = [(digits.x_train[idx].double(), digits.y_train[idx])]
    ref = random_line(model, nn.functional.cross_entropy, by_hand, "-1:1:3")
    assert "data" not in ref.meta
    np.testing.assert_allclose(res.values["loss"], ref.values["loss"], rtol=1e-12)


def test_dataset_batches_sizes_split_seed_and_dtype(digits):
    small = dataset_batches(digits, examples=100, batch_size=32, dtype=torch.float64)
    assert [len(x) for x, _ in small] == [32, 32, 32, 4]
    assert small[0][0].dtype == torch.float64 and small[0][1].dtype == torch.int64
    assert small.source == {"dataset": "digits", "split": "train", "examples": 100,
                            "subset_seed": 0}  # fmt: skip
    again = dataset_batches(digits, examples=100, batch_size=100)
    assert torch.equal(again[0][0].double(), torch.cat([x for x, _ in small]))
    other = dataset_batches(digits, examples=100, batch_size=100, seed=1)
    assert not torch.equal(other[0][0], again[0][0])
    test = dataset_batches(digits, examples=0, batch_size=10_000, split="test")
    assert torch.equal(test[0][0], digits.x_test) and test.source["examples"] == len(digits.x_test)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        dataset_batches(digits, batch_size=0)


# --- one batch/loss protocol for every entry point ------------------------------------------


class DictModel(nn.Module):
    """A HuggingFace-style model: keyword inputs, a mask, labels; returns .loss and .logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(20, 6)
        self.norm = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 3)

    def forward(self, input_ids, attention_mask, labels=None):
        mask = attention_mask.unsqueeze(-1).to(self.embed.weight.dtype)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        logits = self.head(self.norm(pooled))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return types.SimpleNamespace(loss=loss, logits=logits)


def dict_batches(sizes=(5, 8)):
    g = torch.Generator().manual_seed(3)
    out = []
    for n in sizes:
        mask = (torch.rand(n, 7, generator=g) > 0.3).long()
        mask[:, 0] = 1
        ids, labels = (
            torch.randint(0, 20, (n, 7), generator=g),
            torch.randint(0, 3, (n,), generator=g),
        )
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


HF_LOSS = batch_loss(lambda model, b: model(**b).loss)
HF_ACC = batch_loss(lambda model, b: (model(**b).logits.argmax(1) == b["labels"]).double().mean())


def test_a_dict_batch_model_through_every_entry_point():
    model = DictModel().double()
    data = dict_batches()
    probe = gradient_probe(model, HF_LOSS, data[0], [0.01, 0.1])
    with torch.no_grad():
        assert probe.base_loss == pytest.approx(float(model.train()(**data[0]).loss), rel=1e-12)
    assert np.isfinite(probe.beta)
    shift = ics(model, HF_LOSS, data[0], lr=0.1)
    assert shift.layers == ["embed", "head"] and np.all(np.isfinite(shift.l2))
    seen = []
    ProbeCallback(every=1, step_sizes=[0.1], sink=lambda k, s, r: seen.append(k))(
        0, model, HF_LOSS, data[0]
    )
    assert seen == ["probe"]
    res = random_line(model, HF_LOSS, data, "-1:1:3", accuracy=HF_ACC,
                      metrics={"half": batch_loss(lambda m, b: 0.5 * m(**b).loss)})  # fmt: skip
    assert res.meta["eval_examples"] == 13 and res.meta["metrics"] == ["loss", "accuracy", "half"]
    with torch.no_grad():  # the origin: the example-weighted mean over the two batches (eval)
        losses = [float(model.eval()(**b).loss) for b in data]
    assert res.values["loss"][1] == pytest.approx((5 * losses[0] + 8 * losses[1]) / 13, rel=1e-12)
    np.testing.assert_allclose(res.values["half"], 0.5 * res.values["loss"], rtol=1e-12)
    assert np.all((0 <= res.values["accuracy"]) & (res.values["accuracy"] <= 1))


def test_size_weights_the_batches():
    model = DictModel().double()
    data = dict_batches()
    tokens = batch_loss(HF_LOSS.fn, size=lambda b: int(b["attention_mask"].sum()))
    res = random_line(model, tokens, data, "0:0:1")
    counts = [int(b["attention_mask"].sum()) for b in data]
    with torch.no_grad():
        losses = [float(model.eval()(**b).loss) for b in data]
    assert res.meta["eval_examples"] == sum(counts)
    expected = (counts[0] * losses[0] + counts[1] * losses[1]) / sum(counts)
    assert res.values["loss"][0] == pytest.approx(expected, rel=1e-12)


def test_tuple_inputs_and_both_routes_agree_on_a_plain_model():
    model = digits_net()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 1, 8, 8, generator=g, dtype=torch.float64), torch.arange(12) % 10
    ce = nn.functional.cross_entropy
    routed = batch_loss(lambda m, b: ce(m(b[0]), b[1]))
    a, b = (
        gradient_probe(model, ce, (x, y), [0.1, 0.3]),
        gradient_probe(model, routed, (x, y), [0.1, 0.3]),
    )
    for k in ("loss", "grad_distance", "ratio"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert np.array_equal(ics(model, ce, (x, y), lr=0.1).l2, ics(model, routed, (x, y), lr=0.1).l2)
    acc = batch_loss(lambda m, b: (m(b[0]).argmax(1) == b[1]).double().mean())
    plain = random_line(model, ce, [(x, y)], "-1:1:5")
    other = random_line(model, routed, [(x, y)], "-1:1:5", accuracy=acc)
    assert np.array_equal(plain.values["accuracy"], other.values["accuracy"])
    np.testing.assert_allclose(plain.values["loss"], other.values["loss"], rtol=1e-12)
    masked = batch_loss(lambda m, b: ce(m(b[0][0] * b[0][1]), b[1]))  # ((x, mask), y)
    ones = torch.ones_like(x)
    tupled = random_line(model, masked, [((x, ones), y)], "-1:1:5")
    np.testing.assert_allclose(tupled.values["loss"], other.values["loss"], rtol=1e-12)


def test_a_dict_without_batch_loss_is_refused_by_name():
    model = DictModel().double()
    batch, ce = dict_batches()[0], nn.functional.cross_entropy
    for call in (
        lambda: gradient_probe(model, ce, batch, [0.1]),
        lambda: ics(model, ce, batch, lr=0.1),
        lambda: random_line(model, ce, [batch], "-1:1:3"),
        lambda: gradient_probe(model, ce, {"x": 1, "y": 2}, [0.1]),  # 2 keys: not unpacked
    ):
        with pytest.raises(ValueError, match=r"the batch is a dict .*landscape\.batch_loss"):
            call()
    with pytest.raises(ValueError, match="metrics take the same form"):
        random_line(model, HF_LOSS, [batch], "-1:1:3", metrics={"m": ce})
    with pytest.raises(ValueError, match="pass accuracy=batch_loss"):
        random_line(model, HF_LOSS, [batch], "-1:1:3", accuracy=True)
    with pytest.raises(ValueError, match="cannot tell how many examples"):
        random_line(model, batch_loss(lambda m, b: m(b)), [object()], "-1:1:3")
