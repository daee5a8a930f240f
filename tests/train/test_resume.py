"""Resume checks first: a damaged log or last checkpoint is refused with the run untouched.

Before: ``train --resume`` dropped a log row whose step was NaN (and exited 0), "finished" a
run whose ``/train`` was gone with no training series at all, accepted a text column, took
a checkpoint named for step 30 that held step 7, and crashed with KeyError or a size
mismatch on a damaged optimizer state or weight; a finished run printed "train loss nan".
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape import store
from landscape.train import TrainConfig, train_pair
from tests.train.helpers import TINY

CONFIG = TrainConfig(**{**TINY, "optimizer": "momentum", "probe_every": 10})


@pytest.fixture(scope="module")
def finished(tmp_path_factory, digits) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    train_pair(CONFIG, out, dataset=digits)
    return out


def files_of(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def copy_of(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def replace_column(group: h5py.Group, name: str, data: np.ndarray) -> None:
    del group[name]
    group.create_dataset(name, data=data, maxshape=(None, *data.shape[1:]))


def nan_at(group: h5py.Group, row: int) -> None:
    steps = group["step"][()].astype(float)
    steps[row] = np.nan
    replace_column(group, "step", steps)


LOG_DAMAGE = {
    "NaN train step": (lambda f: nan_at(f["train/bn"], 5), r"/train/bn/step holds nan at row 5"),
    "NaN eval step": (lambda f: nan_at(f["eval/bn"], 2), r"/eval/bn/step holds nan at row 2"),
    "NaN probe step": (lambda f: nan_at(f["probe/plain"], 1), r"/probe/plain/step holds nan"),
    "no /train": (lambda f: f.__delitem__("train"), r"/train/bn holds 0 rows before step 30"),
    "/train a dataset": (
        lambda f: (f.__delitem__("train"), f.create_dataset("train", data=[1])),
        r"/train is a dataset, not a group",
    ),
    "text loss": (
        lambda f: replace_column(f["train/bn"], "loss", np.array([b"x"] * 30)),
        r"/train/bn/loss holds text, not numbers",
    ),
    "no loss": (lambda f: f["train/bn"].__delitem__("loss"), r"/train/bn has no column loss"),
    "unequal columns": (
        lambda f: f["train/plain/lr"].resize(10, axis=0),
        r"the columns of /train/plain have unequal lengths",
    ),
    "short log": (
        lambda f: (
            [ds.resize(25, axis=0) for ds in f["train/bn"].values()]
            + [f["train/bn"].attrs.__setitem__("status", "running")]
        ),
        r"/train/bn holds 25 rows before step 30, where the checkpoint step_0000030\.pt needs "
        r"one per step",
    ),
    "config_json": (
        lambda f: f.attrs.__setitem__("config_json", "{x"),
        r"its attribute config_json holds '\{x', not a JSON object",
    ),
    "variants": (
        lambda f: f.attrs.__setitem__("variants", "[bn"),
        r"its attribute variants holds '\[bn'",
    ),
    "finished, short": (
        lambda f: [ds.resize(25, axis=0) for ds in f["train/bn"].values()],
        r"/train/bn says finished, but its log ends at step 24 of 30",
    ),
    "status": (
        lambda f: f["train/bn"].attrs.__setitem__("status", "done"),
        r"/train/bn has status 'done', not one of running, finished, diverged",
    ),
}


@pytest.mark.parametrize("damage", LOG_DAMAGE)
def test_a_damaged_log_is_refused_and_the_run_left_as_it_was(finished, tmp_path, digits, damage):
    run = copy_of(finished, tmp_path)
    change, match = LOG_DAMAGE[damage]
    with h5py.File(run / "run.h5", "a") as f:
        change(f)
    before = files_of(run)
    with pytest.raises(ValueError, match=match) as refused:
        train_pair(CONFIG, run, resume=True, dataset=digits)
    assert str(run / "run.h5") in str(refused.value) or damage == "config_json"
    assert "nothing was changed: train again with --overwrite" in str(refused.value)
    assert files_of(run) == before


def _damage_checkpoint(path: Path, damage: str) -> None:
    obj = torch.load(path, weights_only=True)
    if damage == "optimizer state":
        obj["optimizer_state"] = {"state": 5}
    elif damage == "weight shape":
        name = next(k for k, t in obj["model_state"].items() if t.ndim == 2)
        obj["model_state"][name] = torch.zeros(3, 3)
    elif damage == "momentum shape":
        for state in obj["optimizer_state"]["state"].values():
            state["momentum_buffer"] = torch.zeros(2)
    elif damage == "stored step":
        obj["step"] = 7
    elif damage == "other variant":
        obj["extra"] = '{"variant": "plain"}'
    elif damage == "other config":
        obj["config"] = obj["config"].replace('"lr": 0.1', '"lr": 0.2')
    elif damage == "rng":
        obj["rng"] = {"python": 5}
    else:
        raise ValueError(damage)
    torch.save(obj, path)


CHECKPOINT_DAMAGE = {
    "optimizer state": r"optimizer_state is not an optimizer's state_dict",
    "weight shape": r"its weights do not fit the model \(.*size mismatch",
    "momentum shape": r"its optimizer state does not fit the model \(momentum_buffer of shape",
    "stored step": r"it is named for step 30 but holds step 7",
    "other variant": r"it holds the plain variant, not bn",
    "other config": r"its training configuration differs from the run's in \['lr'\]",
    "rng": r"its RNG states do not restore",
}


@pytest.mark.parametrize(
    ("damage", "interrupted"),
    [(d, False) for d in CHECKPOINT_DAMAGE]
    + [(d, True) for d in CHECKPOINT_DAMAGE if d != "stored step"],
)
def test_a_damaged_last_checkpoint_is_named_and_the_run_left_as_it_was(
    finished, tmp_path, digits, damage, interrupted
):
    run = copy_of(finished, tmp_path)
    last = store.checkpoint_path(run / "checkpoints" / "bn", 30)
    if interrupted:  # killed before its last checkpoint: step 20's is the last
        for v in ("bn", "plain"):
            store.checkpoint_path(run / "checkpoints" / v, 30).unlink()
        last = store.checkpoint_path(run / "checkpoints" / "bn", 20)
    _damage_checkpoint(last, damage)
    before = files_of(run)
    with pytest.raises(store.CheckpointError, match=CHECKPOINT_DAMAGE[damage]) as refused:
        train_pair(CONFIG, run, resume=True, dataset=digits)
    assert str(last) in str(refused.value)
    assert str(refused.value).endswith(
        "nothing was changed: delete that file and --resume goes on from the checkpoint before it"
    )
    assert files_of(run) == before


def test_following_the_advice_reaches_the_uninterrupted_run(finished, tmp_path, digits):
    run = copy_of(finished, tmp_path)
    last = store.checkpoint_path(run / "checkpoints" / "bn", 30)
    _damage_checkpoint(last, "optimizer state")
    with pytest.raises(store.CheckpointError, match="delete that file"):
        train_pair(CONFIG, run, resume=True, dataset=digits)
    last.unlink()
    result = train_pair(CONFIG, run, resume=True, dataset=digits)
    assert not result.variants["bn"].already_ended and result.variants["plain"].already_ended
    assert files_of(run) == files_of(finished) | {"run.h5": (run / "run.h5").read_bytes()}
    with store.open_run(run / "run.h5") as f, store.open_run(finished / "run.h5") as g:
        for group in ("train/bn", "eval/bn", "probe/bn"):
            a, b = store.read_series(f[group]), store.read_series(g[group])
            assert all(np.array_equal(a[k], b[k]) for k in b), group
    a = store.load_checkpoint(store.checkpoint_path(run / "checkpoints" / "bn", 30))
    b = store.load_checkpoint(store.checkpoint_path(finished / "checkpoints" / "bn", 30))
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in b.model_state)


def test_a_finished_run_is_reported_from_its_log_and_not_touched(finished, tmp_path, digits):
    """Before: nothing was trained, yet the report said "30 steps, train loss nan"."""
    run = copy_of(finished, tmp_path)
    before = files_of(run)
    result = train_pair(CONFIG, run, resume=True, dataset=digits)
    assert files_of(run) == before
    with store.open_run(run / "run.h5") as f:
        for v, r in result.variants.items():
            train, evals = store.read_series(f[f"train/{v}"]), store.read_series(f[f"eval/{v}"])
            assert r.already_ended and r.status == "finished" and r.steps_done == 30
            assert r.final_loss == train["loss"][-1] and r.eval_loss == evals["loss"][-1]
            assert r.eval_accuracy == evals["accuracy"][-1]


def _as_before_the_hessian_fields(run: Path) -> None:
    """The run as written before ``hessian_*`` existed: its log's and checkpoints'
    configurations lack them."""

    def old(config: dict) -> dict:
        return {k: v for k, v in config.items() if not k.startswith("hessian_")}

    with h5py.File(run / "run.h5", "r+") as f:
        f.attrs["config_json"] = json.dumps(old(json.loads(f.attrs["config_json"])), sort_keys=True)
    for path in run.glob("checkpoints/*/*.pt"):
        payload = torch.load(path, weights_only=True)
        payload["config"] = json.dumps(old(json.loads(payload["config"])))
        torch.save(payload, path)


def test_a_run_written_before_the_hessian_fields_resumes(finished, tmp_path, digits):
    """Its stored configuration lacks the new keys: they count as their defaults, so the same
    options resume it (to the uninterrupted run), and others are refused by name."""
    run = copy_of(finished, tmp_path)
    _as_before_the_hessian_fields(run)
    store.checkpoint_path(run / "checkpoints" / "bn", 30).unlink()
    other = replace(CONFIG, hessian_every=10)
    with pytest.raises(ValueError, match=r"differs in \['hessian_every'\]"):
        train_pair(other, run, resume=True, dataset=digits)
    result = train_pair(CONFIG, run, resume=True, dataset=digits)
    assert not result.variants["bn"].already_ended and result.variants["plain"].already_ended
    a = store.load_checkpoint(store.checkpoint_path(run / "checkpoints" / "bn", 30))
    b = store.load_checkpoint(store.checkpoint_path(finished / "checkpoints" / "bn", 30))
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in b.model_state)
    with store.open_run(run / "run.h5") as f, store.open_run(finished / "run.h5") as g:
        for group in ("train/bn", "eval/bn", "probe/bn"):
            x, y = store.read_series(f[group]), store.read_series(g[group])
            assert all(np.array_equal(x[k], y[k]) for k in y), group
