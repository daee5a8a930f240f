"""The trainer's inline Hessian: rows equal the direct calls on the checkpoint of their step,
training is not changed, a killed run resumes to the same rows, bad settings are one line."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from landscape import store
from landscape.curvature import (
    HESSIAN_COLUMNS,
    InlineHessian,
    curvature_along,
    hessian_eigenvalues,
    hessian_trace,
)
from landscape.curvature.inline import (
    EIGEN_PRODUCTS_PER_K,
    EIGEN_TOL,
    TRACE_MAX_PRODUCTS,
    TRACE_RANK,
)
from landscape.data import loss_function
from landscape.train import TrainConfig, train_pair
from landscape.train import loop as training
from tests.cli.helpers import error_line, invoke

#: Tiny and float64: two Hessian batches (64 + 36 examples: size-weighted), rows at steps 0,
#: 3 and the last, 6; momentum, so that an optimizer state is compared too.
CONFIG = TrainConfig(
    model="mlp",
    model_options={"depth": 1, "width": 16},
    dtype="float64",
    optimizer="momentum",
    steps=6,
    batch_size=32,
    eval_every=3,
    checkpoint_every=3,
    device="cpu",
    hessian_every=3,
    hessian_top_k=2,
    hessian_examples=100,
    hessian_batch_size=64,
)
STEPS = [0, 3, 6]
COLUMNS = ["step", "eigenvalues", "residuals", "eigen_products", "trace", "trace_stderr",
           "trace_products", "trace_converged", "curvature_gradient"]  # fmt: skip


#: One intra-op thread for the module (tests/conftest.py), the previous count restored.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("inline_hessian") / "run"
    train_pair(CONFIG, out, dataset=digits)
    return out


def rows_of(run, variant: str) -> dict[str, np.ndarray]:
    with store.open_run(run / "run.h5") as f:
        return store.read_series(f[f"hessian/{variant}"])


def direct(run, variant: str, step: int, digits, bn_mode: str = "train", device="cpu") -> dict:
    """The same three calls on checkpoint ``step``, rebuilt from the file."""
    ckpt = store.load_checkpoint(store.checkpoint_path(run / "checkpoints" / variant, step))
    model = store.build_model(ckpt, device=device)
    x, y = digits.x_train[:100].double().to(device), digits.y_train[:100].to(device)
    data = [(x[:64], y[:64]), (x[64:], y[64:])]
    common = {"bn_mode": bn_mode, "seed": CONFIG.seed}
    args = (model, loss_function(digits.task), data)
    eig = hessian_eigenvalues(*args, k=2, tol=EIGEN_TOL, max_products=2 * EIGEN_PRODUCTS_PER_K,
                              **common)  # fmt: skip
    trace = hessian_trace(*args, rtol=CONFIG.hessian_trace_rtol, rank=TRACE_RANK,
                          max_products=TRACE_MAX_PRODUCTS, **common)  # fmt: skip
    return {
        "eigenvalues": eig.values, "residuals": eig.residuals, "eigen_products": eig.products,
        "trace": trace.value, "trace_stderr": trace.stderr, "trace_products": trace.products,
        "trace_converged": int(trace.converged),
        "curvature_gradient": curvature_along(*args, "gradient", **common),
    }  # fmt: skip


def assert_rows_equal_direct(run, variant, digits, bn_mode="train", device="cpu", rtol=1e-12):
    rows = rows_of(run, variant)
    assert sorted(rows) == sorted(COLUMNS)
    np.testing.assert_array_equal(rows["step"], STEPS)
    assert rows["step"].dtype == rows["eigen_products"].dtype == np.int64
    assert rows["trace_products"].dtype == np.int64 and rows["eigenvalues"].shape == (3, 2)
    for i, step in enumerate(STEPS):
        want = direct(run, variant, step, digits, bn_mode, device)
        for name, value in want.items():
            np.testing.assert_allclose(rows[name][i], value, rtol=rtol, atol=0,
                                       err_msg=f"{variant} step {step} {name}")  # fmt: skip
        assert np.all(np.diff(rows["eigenvalues"][i]) <= 0)  # largest first


def test_rows_equal_direct_calls_on_the_checkpoint_of_their_step(run, digits):
    for v in ("bn", "plain"):
        assert_rows_equal_direct(run, v, digits)
    with store.open_run(run / "run.h5") as f:
        group = f["hessian/bn"]
        assert store.read_attrs(group) == {
            "bn_mode": "train", "top_k": 2, "examples": 100, "batch_size": 64,
            "trace_rtol": 0.05, "trace_rank": TRACE_RANK,
            "trace_max_products": TRACE_MAX_PRODUCTS,
        }  # fmt: skip
        assert {k: group[k].attrs["description"] for k in group} == HESSIAN_COLUMNS


def test_eval_mode_rows_are_of_the_checkpointed_running_statistics(tmp_path, digits):
    """Taken before the step's forward: the running statistics are the checkpoint's, not
    already moved by the step's batch."""
    config = replace(CONFIG, bn="bn", hessian_bn_mode="eval")
    train_pair(config, tmp_path / "run", dataset=digits)
    assert_rows_equal_direct(tmp_path / "run", "bn", digits, bn_mode="eval")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rows_on_cuda_are_the_direct_calls_there(tmp_path, digits):
    """The set lives on the model's device; the rows are those of the checkpoints there."""
    train_pair(replace(CONFIG, device="cuda"), tmp_path / "run", dataset=digits)
    for v in ("bn", "plain"):
        assert_rows_equal_direct(tmp_path / "run", v, digits, device="cuda", rtol=1e-9)


def test_training_is_not_changed(run, tmp_path, digits):
    """Weights, buffers, optimizer state, RNG states and every logged row: bit for bit."""
    train_pair(replace(CONFIG, hessian_every=0), tmp_path / "plain", dataset=digits)
    for v in ("bn", "plain"):
        for step in STEPS:
            a, b = (store.load_checkpoint(store.checkpoint_path(r / "checkpoints" / v, step))
                    for r in (run, tmp_path / "plain"))  # fmt: skip
            assert a.model_state.keys() == b.model_state.keys()
            assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)
            assert str(a.optimizer_state) == str(b.optimizer_state)
            assert str(a.rng) == str(b.rng)
        with store.open_run(run / "run.h5") as f, store.open_run(tmp_path / "plain/run.h5") as g:
            assert "hessian" not in g
            for group in (f"train/{v}", f"eval/{v}"):
                x, y = store.read_series(f[group]), store.read_series(g[group])
                assert all(np.array_equal(x[k], y[k]) for k in y), group


class Killed(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_rows(run, tmp_path, digits, monkeypatch):
    """Killed in step 5 of plain, its log committed past checkpoint 3 (rows 0 and 3): the
    resume cuts row 3 and writes rows 3 and 6 again, equal to the uninterrupted run's."""
    monkeypatch.setattr(training, "LOG_FLUSH_EVERY", 1)  # commit after every step

    def kill(variant, step, *_):
        if variant == "plain" and step == 5:
            raise Killed

    out = tmp_path / "run"
    with pytest.raises(Killed):
        train_pair(CONFIG, out, dataset=digits, hooks=[kill])
    np.testing.assert_array_equal(rows_of(out, "plain")["step"], [0, 3])
    train_pair(CONFIG, out, resume=True, dataset=digits)
    for v in ("bn", "plain"):
        a, b = rows_of(run, v), rows_of(out, v)
        assert all(np.array_equal(a[k], b[k]) for k in COLUMNS), v
    a, b = (store.load_checkpoint(store.checkpoint_path(r / "checkpoints/plain", 6))
            for r in (run, out))  # fmt: skip
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--hessian-every", "-1", r"hessian_every (--hessian-every) must be >= 0, got -1"),
        ("--hessian-top-k", "0", r"hessian_top_k (--hessian-top-k) must be >= 1, got 0"),
        ("--hessian-trace-rtol", "nan", "hessian_trace_rtol (--hessian-trace-rtol) must be a "
         "number, got nan"),
        ("--hessian-examples", "0", "hessian_examples (--hessian-examples) must be >= 1"),
        ("--hessian-batch-size", "0", "hessian_batch_size (--hessian-batch-size) must be >= 1"),
        ("--hessian-bn-mode", "recalibrate", "'recalibrate' is not one of 'train', 'eval'"),
    ],
)  # fmt: skip
def test_bad_values_are_one_error_line(tmp_path, option, value, message):
    result = invoke("train", "--out", tmp_path / "run", "--steps", 2, option, value)
    assert message in error_line(result)
    assert not (tmp_path / "run").exists()


def test_settings_that_would_fail_in_training_are_refused_first(tmp_path, digits):
    bad = {
        "hessian_top_k": (dict(hessian_top_k=10_000), r"must be below the model's \d+ trainable"),
        "a last batch of 1": (dict(hessian_examples=65), r"would hold 1 example, too few"),
        "batches of 1": (dict(hessian_batch_size=1), r"would hold 1 example, too few"),
    }
    for name, (change, match) in bad.items():
        with pytest.raises(ValueError, match=match):
            train_pair(replace(CONFIG, **change), tmp_path / name, dataset=digits)
        assert not (tmp_path / name).exists()


def test_the_cli_options_reach_the_run(tmp_path):
    out = tmp_path / "run"
    result = invoke("train", "--out", out, "--model", "mlp", "--model-option", "depth=1",
                    "--model-option", "width=8", "--bn", "plain", "--steps", 2,
                    "--batch-size", 16, "--hessian-every", 1, "--hessian-top-k", 1,
                    "--hessian-examples", 40, "--hessian-batch-size", 16,
                    "--hessian-bn-mode", "eval", "--hessian-trace-rtol", 0.2, "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    with store.open_run(out / "run.h5") as f:
        attrs = store.read_attrs(f["hessian/plain"])
        steps = store.read_series(f["hessian/plain"])["step"]
    assert (attrs["bn_mode"], attrs["examples"], attrs["batch_size"]) == ("eval", 40, 16)
    assert attrs["trace_rtol"] == 0.2
    np.testing.assert_array_equal(steps, [0, 1, 2])


def test_a_row_at_weights_with_no_finite_loss_is_nan(tmp_path, digits):
    """A diverging run: no products spent, no error, the model and RNGs left as found."""
    model = CONFIG.spec(digits, bn=True).build(seed=0).double()
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("inf")
    log = store.SeriesLog(tmp_path / "log.h5", header=lambda f: None)
    hessian = InlineHessian(CONFIG, log, "bn", training._to_dtype(digits, torch.float64), "cpu")
    before, rng = {k: t.clone() for k, t in model.state_dict().items()}, torch.get_rng_state()
    row = hessian.row(4, model)
    assert row["step"] == 4 and row["eigen_products"] == row["trace_products"] == 0
    assert np.all(np.isnan(row["eigenvalues"])) and np.isnan(row["trace"])
    assert np.isnan(row["curvature_gradient"]) and row["eigenvalues"].shape == (2,)
    assert all(torch.equal(t, before[k]) for k, t in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)
