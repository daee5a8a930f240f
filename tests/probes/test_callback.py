"""ProbeCallback and H5Sink: when probes run, what they record, that training is unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape.probes import ICSResult, ProbeCallback, ProbeResult, StepSizes, gradient_probe, ics
from tests.cases import (
    ETAS,
    bn_net,
    image_batch,
    regression_batch,
    sq_loss,
    three_layer,
)


def test_callback_calls_sink_at_the_right_steps():
    model, batch = three_layer(), regression_batch()
    seen = []
    cb = ProbeCallback(
        every=3,
        step_sizes=StepSizes.vgg(0.1, count=2),
        ics_every=4,
        sink=lambda kind, step, result: seen.append((kind, step, type(result))),
    )
    for step in range(10):
        cb(step, model, sq_loss, batch)
    probes = [(k, s) for k, s, t in seen if t is ProbeResult]
    icss = [(k, s) for k, s, t in seen if t is ICSResult]
    assert probes == [("probe", 0), ("probe", 3), ("probe", 6), ("probe", 9)]
    assert icss == [("ics", 0), ("ics", 4), ("ics", 8)]
    assert cb.records == []


def test_callback_lr_rescales_the_grid_and_the_ics_step():
    model, batch = three_layer(), regression_batch()
    cb = ProbeCallback(every=1, step_sizes=StepSizes.vgg(0.1, count=3), ics_every=1)
    cb(0, model, sq_loss, batch, lr=0.02)
    (_, _, probe), (_, _, shift) = cb.records
    np.testing.assert_allclose(probe.step_sizes, StepSizes.vgg(0.02, count=3).values())
    assert shift.lr == 0.02
    np.testing.assert_array_equal(shift.l2, ics(model, sq_loss, batch, lr=0.02).l2)
    # the loop's lr was used, not the grid's 0.1
    assert not np.array_equal(shift.l2, ics(model, sq_loss, batch, lr=0.1).l2)
    with pytest.raises(ValueError, match="rescales a StepSizes grid"):
        ProbeCallback(every=1, step_sizes=[0.1])(0, model, sq_loss, batch, lr=0.02)


def test_callback_default_sink_and_validation():
    cb = ProbeCallback(every=2, step_sizes=[0.1])
    model, batch = three_layer(), regression_batch()
    for step in range(4):
        cb(step, model, sq_loss, batch)
    assert [(k, s) for k, s, _ in cb.records] == [("probe", 0), ("probe", 2)]
    with pytest.raises(ValueError, match="learning rate"):
        ProbeCallback(every=2, step_sizes=[0.1], ics_every=5)
    with pytest.raises(ValueError, match="every"):
        ProbeCallback(every=0, step_sizes=[0.1])
    with pytest.raises(ValueError, match="no step sizes"):
        ProbeCallback(every=1, step_sizes=[])


def test_callback_does_not_change_training():
    """Training with probes every step ends bit for bit where training without them does."""

    def train(with_probes: bool) -> nn.Module:
        model = bn_net()
        x, y = image_batch()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        cb = ProbeCallback(every=1, step_sizes=StepSizes.vgg(0.1, count=2), ics_every=2)
        torch.manual_seed(123)  # the dropout masks of training
        for step in range(4):
            opt.zero_grad()
            if with_probes:
                cb(step, model, nn.functional.cross_entropy, (x, y))
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return model

    plain, probed = train(False), train(True)
    for (n, a), b in zip(plain.state_dict().items(), probed.state_dict().values()):
        assert torch.equal(a, b), n


def test_sink_keeps_each_rows_lr(tmp_path):
    """ICS rows of a schedule keep their own lr (a column, NaN for a given update); the seed
    and the strings stay group attributes."""
    import h5py

    from landscape import store
    from landscape.probes import H5Sink

    model, batch = three_layer(), regression_batch()
    sink = H5Sink(tmp_path / "run.h5", "bn")
    sink("ics", 0, ics(model, sq_loss, batch, lr=0.1))
    sink("ics", 10, ics(model, sq_loss, batch, lr=0.05))
    update = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    sink("ics", 20, ics(model, sq_loss, batch, update=update))
    sink("probe", 0, gradient_probe(model, sq_loss, batch, ETAS, seed=3))
    with h5py.File(tmp_path / "run.h5") as f:
        rows = store.read_series(f["ics/bn"])
        np.testing.assert_array_equal(rows["step"], [0, 10, 20])
        np.testing.assert_array_equal(rows["lr"], [0.1, 0.05, np.nan])
        assert "lr" not in f["ics/bn"].attrs
        assert store.read_attrs(f["ics/bn"]) == {
            "update": "given", "layers": ["0", "3", "6"], "bn_mode": "train"
        }  # fmt: skip
        assert f["ics/bn"].attrs["update"] == "given"  # text and numbers natively, lists JSON
        assert f["probe/bn"].attrs["seed"] == 3 and f["probe/bn"].attrs["seed"].dtype == np.int64
        assert f["ics/bn"].attrs["layers"] == '["0", "3", "6"]'
        assert f["ics/bn/l2"].attrs["description"].startswith("‖G − G′‖₂ per layer")
        assert "seed" not in f["probe/bn"]


def test_a_second_run_into_one_probe_file_is_refused_or_resumed(tmp_path):
    """Before: running a training script twice appended its rows to the first run's, and the
    figure zigzagged between the two."""
    from landscape import store
    from landscape.probes import H5Sink

    path = tmp_path / "probes.h5"

    def run(sink, steps):
        for step in steps:
            sink("probe", step, {"beta": float(step), "loss": [1.0, 2.0]})

    run(H5Sink(path), range(0, 50, 10))
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"already holds probe/model rows \(steps 0\.\.40\)"):
        run(H5Sink(path), range(0, 50, 10))
    assert path.read_bytes() == before
    run(H5Sink(path, resume=True), range(0, 80, 10))  # a rerun from the start: 50, 60, 70 new
    run(H5Sink(path, variant="other"), range(0, 20, 10))  # another variant: its own rows
    with store.open_run(path) as f:
        steps = store.read_series(f["probe/model"])["step"]
        betas = store.read_series(f["probe/model"])["beta"]
        assert steps.tolist() == list(range(0, 80, 10)) and betas.tolist() == steps.tolist()
        assert store.read_series(f["probe/other"])["step"].tolist() == [0, 10]
