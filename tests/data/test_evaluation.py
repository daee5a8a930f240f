"""The batch/loss protocol and the evaluation data: plain (inputs, targets) batches or any
batch through batch_loss, at every entry point; a dataset by name is a fixed seeded subset."""

from __future__ import annotations

import collections
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


# --- the protocol's small parts, from the data wing's mutants ---------------------------


def factory_dict_batches() -> list[dict]:
    """A factory of batches that are dicts (import path ``tests.data.test_evaluation:``)."""
    return [
        {"x": torch.ones(3, 2), "y": torch.arange(3)},
        {"x": torch.ones(2, 2), "y": torch.arange(2)},
    ]


def a_dataset():
    """A factory returning a loaded Dataset: the digits, as named."""
    from landscape.data import load_dataset

    return load_dataset("digits")


def test_move_walks_containers_and_casts_only_floating_tensors():
    from landscape.data.evaluation import move

    point = collections.namedtuple("point", "a b")(torch.zeros(1), 2)
    batch = {
        "x": torch.zeros(2),
        "ids": torch.arange(2),
        "more": [torch.zeros(1), (torch.ones(1),)],
    }
    got = move({**batch, "point": point}, "cpu", torch.float64)
    assert got["x"].dtype == torch.float64 and got["ids"].dtype == torch.int64
    assert isinstance(got["more"], list) and isinstance(got["more"][1], tuple)
    assert got["more"][0].dtype == torch.float64 and got["more"][1][0].dtype == torch.float64
    assert got["point"] is point  # a namedtuple cannot be rebuilt from a generator: kept


def test_example_counts_of_scalar_missing_and_batch_loss_targets():
    """A 0-d target is one example, as are targets that hold no tensor; a batch_loss batch
    counts its first tensor's length, 1-D included, and refuses a 0-d one."""
    from landscape.data.evaluation import objective

    mse = nn.functional.mse_loss
    assert objective(mse, (torch.zeros(1), torch.tensor(3.0)))[1] == 1
    assert objective(mse, (torch.zeros(4), None))[1] == 1
    assert objective(mse, (torch.zeros(4, 2), torch.zeros(4)))[1] == 4
    counted = batch_loss(lambda m, b: torch.zeros(()))
    assert counted.count({"y": torch.arange(4)}) == 4
    assert counted.count({"x": torch.zeros(5, 3), "y": torch.arange(5)}) == 5
    with pytest.raises(ValueError, match="cannot tell how many examples"):
        counted.count({"s": torch.tensor(2.0)})
    for bad in (3, None):
        with pytest.raises(ValueError, match="batch_loss needs fn"):
            batch_loss(bad)
    with pytest.raises(ValueError, match="batch_loss needs fn"):
        batch_loss(lambda m, b: torch.zeros(()), size=3)


def test_dataset_batches_of_one_example_and_of_a_subset_of_one(digits):
    one = dataset_batches("digits", examples=3, batch_size=1)
    assert [len(y) for _, y in one] == [1, 1, 1] and one.source["examples"] == 3
    single = dataset_batches("digits", examples=1)
    assert single.source["examples"] == 1 and len(single[0][1]) == 1
    with pytest.raises(ValueError, match="batch_size >= 1"):
        dataset_batches("digits", batch_size=0)


def test_dataset_batches_from_a_factory_of_batches_or_of_a_dataset(digits):
    path = "tests.data.test_evaluation:factory_dict_batches"
    got = dataset_batches(path, dtype=torch.float64)
    assert got.source == {"dataset": path, "split": None, "examples": 5, "subset_seed": None}
    assert got[0]["x"].dtype == torch.float64
    made = dataset_batches("tests.data.test_evaluation:a_dataset", examples=7)
    assert made.source == {"dataset": "digits", "split": "train", "examples": 7, "subset_seed": 0}
    with pytest.raises(ValueError, match="data factory 'nope:none'"):
        dataset_batches("nope:none")


@pytest.mark.parametrize("model", [None, nn.ReLU(), nn.Linear(64, 10).double()])
def test_a_dataset_name_follows_the_models_dtype_whatever_tensors_it_has(model, digits):
    """No model, a model without tensors (defaults: float32 on the CPU) or a float64 one."""
    from landscape.data.evaluation import as_batches

    batches = as_batches("digits", model)
    want = torch.float64 if isinstance(model, nn.Linear) else torch.float32
    assert batches[0][0].dtype == want and batches.source["examples"] == 1000


def test_describe_data_keeps_the_first_batch_and_refuses_batches_without_examples():
    from landscape.data.evaluation import describe_data

    batches = [(torch.zeros(2, 1), torch.arange(2)), (torch.ones(3, 1), torch.arange(3))]
    summary = describe_data(batches)
    assert summary.first is batches[0] and (summary.examples, summary.batches) == (5, 2)
    assert summary.classification
    assert not describe_data([(torch.zeros(2, 1), torch.tensor([True, False]))]).classification
    assert not describe_data(
        [(torch.zeros(2, 1), torch.zeros(2, 3, dtype=torch.long))]
    ).classification
    with pytest.raises(ValueError, match="the evaluation data is empty"):
        describe_data([(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long))])


def test_loss_function_and_the_accuracy_of_one_example():
    from landscape.data import accuracy
    from landscape.data.evaluation import loss_function

    assert loss_function("classification") is nn.functional.cross_entropy
    assert loss_function("regression") is nn.functional.mse_loss
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        loss_function("ranking")
    logits = torch.tensor([[0.0, 2.0]])
    assert accuracy(logits, torch.tensor([1])) == 1.0 and accuracy(logits, torch.tensor([0])) == 0.0
