"""``landscape hessian``: the Hessian of every checkpoint into one resumable HDF5 file, and
``landscape plot hessian``.

The file's numbers are checked against dense Hessians of the checkpoints (float64, built row
by row by double backward over the same first-N examples, batches weighted by size), and the
rerun, settings and damage rules the probe files follow.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

from landscape import store
from landscape.curvature.from_checkpoints import (
    HessianConfig,
    evaluation_batches,
    hessian_checkpoints,
)
from landscape.curvature.hessian_file import read_hessian_file
from landscape.data import load_dataset
from landscape.figures import hessian_series, plot_hessian
from landscape.train import TrainConfig, train_pair
from tests.cli.helpers import error_line, invoke
from tests.curvature.helpers import dense_hessian, full_loss

TINY = TrainConfig(model="mlp", model_options={"depth": 1, "width": 8}, steps=6, batch_size=32,
                   eval_every=3, checkpoint_every=3, dtype="float64", device="cpu")  # fmt: skip
#: 40 + 24 examples: unequal batches, so the weighting by size matters.
CONFIG = HessianConfig(top_k=3, tol=1e-12, trace_rtol=0.02, trace_max_products=400, density=True,
                       density_probes=2, density_steps=20, density_points=101, examples=64,
                       batch_size=40)  # fmt: skip


#: One intra-op thread for the module (tests/conftest.py), the previous count restored.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("hessian") / "run"
    train_pair(TINY, out, dataset=digits)
    return out


def files_of(run, variants=("bn", "plain")):
    return {v: [p for _, p in store.list_checkpoints(run / "checkpoints" / v)] for v in variants}


@pytest.fixture(scope="module")
def computed(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("hessian_file") / "hessian.h5"
    return hessian_checkpoints(files_of(run), out, CONFIG)


def test_every_row_is_the_dense_hessian_of_its_checkpoint(run, computed) -> None:
    stored = read_hessian_file(computed)
    data = load_dataset("digits", seed=0)
    assert set(stored.rows) == {"bn", "plain"}
    for variant, rows in stored.rows.items():
        assert rows["step"].tolist() == [0, 3, 6]
        for i, step in enumerate(rows["step"]):
            path = store.checkpoint_path(run / "checkpoints" / variant, int(step))
            model = store.build_model(store.load_checkpoint(path))
            batches = evaluation_batches(data, 64, 40, torch.float64, torch.device("cpu"))
            assert [len(y) for _, y in batches] == [40, 24]
            dense = dense_hessian(model, batches, train=True).numpy()
            exact = np.linalg.eigvalsh(dense)[::-1]
            np.testing.assert_allclose(rows["eigenvalues"][i], exact[:3], rtol=1e-6)
            assert np.all(rows["residuals"][i] <= 1e-6 * np.abs(exact[:3]).max())
            # Hutch++ within four of its standard errors (and that error small)
            assert abs(rows["trace"][i] - np.trace(dense)) <= 4 * rows["trace_stderr"][i]
            assert (
                rows["trace_stderr"][i] <= 0.02 * abs(rows["trace"][i])
                or not rows["trace_converged"][i]
            )
            # g^T H g / |g|^2 with the full-data gradient
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]
            g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(
                full_loss(model, batches), params)]).numpy()  # fmt: skip
            np.testing.assert_allclose(rows["curvature_gradient"][i], g @ dense @ g / (g @ g),
                                       rtol=1e-9)  # fmt: skip
            grid, dens = rows["density_grid"][i], rows["density"][i]
            assert abs(np.trapezoid(dens, grid) - 1) < 1e-3  # a density
            assert rows["eigen_products"][i] > 0 and rows["density_products"][i] == 2 * 20


def test_a_rerun_computes_only_what_is_missing_and_gets_the_same_numbers(
    run, computed, tmp_path
) -> None:
    out = tmp_path / "h.h5"
    hessian_checkpoints(files_of(run, ("bn",)), out, CONFIG)  # as if killed after bn
    calls = []
    hessian_checkpoints(files_of(run), out, CONFIG, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]  # the three plain checkpoints only
    again, whole = read_hessian_file(out).rows, read_hessian_file(computed).rows
    for v in whole:
        for k in whole[v]:
            if k != "file":
                np.testing.assert_array_equal(again[v][k], whole[v][k], err_msg=f"{v}/{k}")
    before = out.read_bytes()
    hessian_checkpoints(files_of(run), out, CONFIG, progress=lambda d, t: calls.append(0))
    assert len(calls) == 3 and out.read_bytes() == before  # nothing to do, nothing written


def test_other_settings_a_changed_checkpoint_and_foreign_files_are_refused(
    run, computed, tmp_path
) -> None:
    out = tmp_path / "h.h5"
    shutil.copy(computed, out)
    before = out.read_bytes()
    other = HessianConfig(**{**CONFIG.__dict__, "top_k": 2})
    with pytest.raises(ValueError, match=r"other settings \(top_k\).*--overwrite"):
        hessian_checkpoints(files_of(run), out, other)
    assert out.read_bytes() == before
    hessian_checkpoints(files_of(run, ("bn",)), out, other, overwrite=True)
    assert read_hessian_file(out).settings["top_k"] == 2
    assert list(read_hessian_file(out).rows) == ["bn"]
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.copy(computed, out)
    changed = store.checkpoint_path(copy / "checkpoints" / "bn", 3)
    ckpt = torch.load(changed, weights_only=True)
    ckpt["model_state"] = {k: v + 1e-3 for k, v in ckpt["model_state"].items()}
    torch.save(ckpt, changed)
    with pytest.raises(ValueError, match=r"step_0000003.pt changed since"):
        hessian_checkpoints(files_of(copy), out, CONFIG)
    text = tmp_path / "notes.txt"
    text.write_text("mine")
    for target in (text, copy / "run.h5"):
        with pytest.raises(ValueError, match="never replaced"):
            hessian_checkpoints(files_of(run), target, CONFIG, overwrite=True)
    assert text.read_text() == "mine"


def test_bad_settings_are_named() -> None:
    for field, value in (("top_k", 0), ("trace_rtol", float("nan")), ("tol", 2.0),
                         ("bn_mode", "batch"), ("examples", True)):  # fmt: skip
        with pytest.raises(ValueError, match=field):
            HessianConfig(**{field: value}).validate()


def test_a_damaged_file_is_named_and_left_as_it_was(computed, tmp_path) -> None:
    out = tmp_path / "h.h5"
    for damage, message in (
        (lambda f: f["hessian/bn/eigenvalues"].resize(2, axis=0), "unequal lengths"),
        (lambda f: f.attrs.__setitem__("hessian_settings", "[1]"), "not a JSON object"),
        (lambda f: f["hessian/plain/step"].__setitem__(1, 0), "holds step 0 twice"),
    ):
        shutil.copy(computed, out)
        with h5py.File(out, "r+") as f:
            damage(f)
        before = out.read_bytes()
        with pytest.raises(ValueError, match=message) as info:
            read_hessian_file(out)
        assert "--overwrite" in str(info.value)
        assert out.read_bytes() == before


def test_the_cli_computes_resumes_and_draws(run, tmp_path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    args = ["hessian", copy, "--top-k", "2", "--examples", "64", "--density",
            "--density-steps", "10", "--trace-rtol", "0.2", "-q"]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "plain" in result.output and f"written to {copy / 'hessian.h5'}" in result.output
    result = invoke(*args)
    assert "nothing to do" in result.output
    assert "--top-k" in error_line(invoke("hessian", copy, "--top-k", "0"))
    assert "other settings" in error_line(invoke(*args[:-1], "--seed", "1"))
    result = invoke("plot", "hessian", copy, "--format", "png")
    assert result.exit_code == 0, result.output
    drawn = sorted(p.name for p in (copy / "figures").iterdir())
    assert drawn == ["hessian_density.png", "hessian_over_training.png"]
    assert store.kind_of(copy / "figures" / "hessian_density.png") == "figure"
    assert "no density at step 4" in error_line(invoke("plot", "hessian", copy, "--step", "4"))


def test_the_figure_draws_the_offline_probes_beta_beside_the_curvature(run, tmp_path) -> None:
    from landscape.probes import OfflineProbeConfig, probe_checkpoints

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    hessian_checkpoints(files_of(copy), copy / "hessian.h5", HessianConfig(top_k=1, trace=False,
                        examples=64))  # fmt: skip
    series = hessian_series(copy)
    assert "beta" not in series["Standard"] and "trace" not in series["Standard"]
    probe_checkpoints(files_of(copy), copy / "probes.h5", OfflineProbeConfig(count=3,
                      num_batches=1))  # fmt: skip
    series = hessian_series(copy)
    assert series["Standard"]["beta_step"].tolist() == [0, 3, 6]
    assert np.all(np.isfinite(series["Standard + BatchNorm"]["beta"]))
    written = plot_hessian(copy, tmp_path / "figs")
    assert [p.name for p in written] == ["hessian_over_training.png", "hessian_over_training.pdf"]


def test_the_cli_takes_the_steps_asked_for(run, tmp_path) -> None:
    out = tmp_path / "h.h5"
    args = ["hessian", run, "--at", "0,6", "--top-k", "1", "--no-trace", "--examples", "32"]
    result = invoke(*args, "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert {v: r["step"].tolist() for v, r in read_hessian_file(out).rows.items()} == {
        "bn": [0, 6], "plain": [0, 6]
    }  # fmt: skip
    assert "choose from 0, 3, 6" in error_line(invoke(*args[:3], "2", "--out", out))
    assert "--at takes steps" in error_line(invoke(*args[:3], "x", "--out", out))


def test_checkpoints_of_other_data_are_refused_unless_the_data_is_given(run, tmp_path) -> None:
    other = tmp_path / "other"
    train_pair(TrainConfig(**{**TINY.to_dict(), "seed": 1, "steps": 3}), other)
    files = {"bn": [files_of(run)["bn"][-1], files_of(other)["bn"][-1]]}  # steps 6 and 3
    with pytest.raises(ValueError, match=r"trained on other data \(\['seed'\]\)"):
        hessian_checkpoints(files, tmp_path / "h.h5", HessianConfig(top_k=1, trace=False,
                            examples=32))  # fmt: skip
    digits = load_dataset("digits", seed=0)
    hessian_checkpoints(files, tmp_path / "h.h5", HessianConfig(top_k=1, trace=False,
                        examples=32), dataset=digits)  # fmt: skip
    assert read_hessian_file(tmp_path / "h.h5").rows["bn"]["step"].tolist() == [3, 6]
