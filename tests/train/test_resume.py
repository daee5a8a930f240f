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
from landscape.models import ModelSpec
from landscape.store.checkpoint import REPAIR
from landscape.train import TrainConfig, resume, train_pair
from landscape.train.loop import EVAL_COLUMNS, TRAIN_COLUMNS
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
    "diverged, finite": (
        lambda f: f["train/bn"].attrs.__setitem__("status", "diverged"),
        r"/train/bn says diverged, but its log does not end at a non-finite loss after one row "
        r"per step \(it ends at step 29\)",
    ),
    "diverged, no row": (
        lambda f: (
            [ds.resize(0, axis=0) for ds in f["train/plain"].values()]
            + [f["train/plain"].attrs.__setitem__("status", "diverged")]
        ),
        r"/train/plain says diverged, .* \(it ends at no row\)",
    ),
    "diverged, a step missing": (
        lambda f: (
            replace_column(f["train/bn"], "step", np.delete(np.arange(31), 7)),
            replace_column(f["train/bn"], "loss", np.r_[np.ones(29), np.inf]),
            f["train/bn"].attrs.__setitem__("status", "diverged"),
        ),
        r"/train/bn says diverged, .* \(it ends at step 30\)",
    ),
    "/train/bn a dataset": (
        lambda f: (f.__delitem__("train/bn"), f.create_dataset("train/bn", data=[1])),
        r"/train/bn is a dataset, not a group",
    ),
    "diverged, no series": (
        lambda f: (
            f.__delitem__("train/plain"),
            f.create_group("train/plain").attrs.__setitem__("status", "diverged"),
        ),
        r"/train/plain says diverged, .* \(it ends at no row\)",
    ),
    "finished, no evaluation": (
        lambda f: f.__delitem__("eval/bn"),
        r"/train/bn says finished, but its log ends at step 29 of 30 \(or has no final "
        r"evaluation\)",
    ),
    "a step back": (
        lambda f: replace_column(f["train/bn"], "step", np.r_[0:5, 4, 6:30]),
        r"/train/bn/step goes from 4 to 4 at row 5, where steps only increase",
    ),
    "no config_json": (
        lambda f: f.attrs.__delitem__("config_json"),
        r"it holds no training configuration \(attribute config_json\): the file is damaged",
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
    assert str(run / "run.h5") in str(refused.value)
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
    elif damage == "a key of another version":
        obj["config"] = obj["config"].replace('"lr": 0.1', '"bogus": 1, "lr": 0.1')
    elif damage == "no variant (before it was recorded)":
        obj["extra"] = "{}"
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
    "a key of another version": r"its training configuration differs from the run's in \['bogus'\]",
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
    assert REPAIR not in str(refused.value)  # the loader's own advice, replaced by ours
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


def test_a_stored_configuration_with_a_key_of_another_version_differs(finished, tmp_path, digits):
    run = copy_of(finished, tmp_path)
    with h5py.File(run / "run.h5", "a") as f:
        f.attrs["config_json"] = f.attrs["config_json"].replace(
            '"lr": 0.1', '"bogus": 1, "lr": 0.1'
        )
    with pytest.raises(ValueError, match=r"its configuration differs in \['bogus'\]"):
        train_pair(CONFIG, run, resume=True, dataset=digits)


def test_an_empty_configuration_is_damage_even_where_the_defaults_would_match(tmp_path):
    """``{}`` filled with today's defaults would equal a default configuration."""
    with h5py.File(tmp_path / "run.h5", "w") as f:
        f.attrs["config_json"] = "{}"
    with pytest.raises(ValueError, match="holds no training configuration"):
        resume.check_config(tmp_path, TrainConfig())


def test_a_log_without_the_variants_attribute_trains_its_configurations(finished, tmp_path, digits):
    run = copy_of(finished, tmp_path)
    with h5py.File(run / "run.h5", "a") as f:
        del f.attrs["variants"]
    result = train_pair(CONFIG, run, resume=True, dataset=digits)
    assert sorted(result.variants) == ["bn", "plain"]
    assert all(r.already_ended for r in result.variants.values())


def _models(run: Path) -> dict[str, torch.nn.Module]:
    models = {}
    for v in ("bn", "plain"):
        ckpt = store.load_checkpoint(store.checkpoint_path(run / "checkpoints" / v, 0))
        models[v] = ModelSpec.from_dict(ckpt.spec).build()
    return models


def test_planning_leaves_the_models_it_is_given_unchanged(finished):
    models = _models(finished)
    before = {v: {k: t.clone() for k, t in m.state_dict().items()} for v, m in models.items()}
    columns = {"train": TRAIN_COLUMNS, "eval": EVAL_COLUMNS}
    restarts = resume.plan(finished, CONFIG, models, columns)
    assert {v: r.ended.status for v, r in restarts.items()} == {
        "bn": "finished",
        "plain": "finished",
    }
    for v, m in models.items():
        state = m.state_dict()
        assert all(
            torch.equal(state[k], t) and state[k].dtype == t.dtype for k, t in before[v].items()
        )


def test_truncating_drops_the_later_rows_and_marks_the_variant_running(finished, tmp_path):
    run = copy_of(finished, tmp_path)
    with h5py.File(run / "run.h5", "a") as f:
        f["train/bn"].attrs["message"] = "an old note"
    resume.truncate(run / "run.h5", "bn", 20)
    with store.open_run(run / "run.h5") as f, store.open_run(finished / "run.h5") as g:
        for analysis in ("train", "eval", "probe"):
            cut, whole = (
                store.read_series(f[f"{analysis}/bn"]),
                store.read_series(g[f"{analysis}/bn"]),
            )
            keep = whole["step"] < 20
            assert all(np.array_equal(cut[k], whole[k][keep]) for k in whole), analysis
            other = store.read_series(f[f"{analysis}/plain"])
            assert np.array_equal(other["step"], store.read_series(g[f"{analysis}/plain"])["step"])
        marked = store.read_attrs(f["train/bn"])
        assert marked["status"] == "running" and marked["message"] == ""
        assert store.read_attrs(f["train/plain"])["status"] == "finished"


def test_a_float64_run_resumes_and_a_float32_checkpoint_is_refused(tmp_path, digits):
    config = replace(CONFIG, dtype="float64", steps=20)
    whole = train_pair(config, tmp_path / "whole", dataset=digits)
    run = Path(shutil.copytree(tmp_path / "whole", tmp_path / "run"))
    last = store.checkpoint_path(run / "checkpoints" / "bn", 20)
    last.unlink()
    result = train_pair(config, run, resume=True, dataset=digits)
    assert result.variants["bn"].final_loss == whole.variants["bn"].final_loss
    obj = torch.load(last, weights_only=True)
    obj["model_state"] = {k: t.float() if t.is_floating_point() else t
                          for k, t in obj["model_state"].items()}  # fmt: skip
    torch.save(obj, last)
    with pytest.raises(
        store.CheckpointError, match=r"its weights do not fit the model \(.* is torch\.float32\)"
    ):
        train_pair(config, run, resume=True, dataset=digits)


def test_a_variant_whose_checkpoints_are_all_gone_trains_again_from_scratch(tmp_path, digits):
    config = replace(CONFIG, steps=1, eval_every=1, checkpoint_every=1, probe_every=0)
    first = train_pair(config, tmp_path / "run", dataset=digits)
    for p in (tmp_path / "run" / "checkpoints" / "bn").glob("*.pt"):
        p.unlink()
    result = train_pair(config, tmp_path / "run", resume=True, dataset=digits)
    assert not result.variants["bn"].already_ended and result.variants["plain"].already_ended
    assert result.variants["bn"].final_loss == first.variants["bn"].final_loss


def test_a_run_killed_before_its_first_log_rows_resumes_from_step_0(finished, tmp_path, digits):
    """Its step-0 checkpoint is written before any row: the variant's groups are empty."""
    run = copy_of(finished, tmp_path)
    with h5py.File(run / "run.h5", "a") as f:
        for analysis in ("train", "eval", "probe"):
            del f[f"{analysis}/bn"]
            f.create_group(f"{analysis}/bn")
    for p in (run / "checkpoints" / "bn").glob("*.pt"):
        if store.checkpoint_path(p.parent, 0) != p:
            p.unlink()
    result = train_pair(CONFIG, run, resume=True, dataset=digits)
    assert not result.variants["bn"].already_ended
    with store.open_run(run / "run.h5") as f, store.open_run(finished / "run.h5") as g:
        for group in ("train/bn", "eval/bn", "probe/bn"):
            x, y = store.read_series(f[group]), store.read_series(g[group])
            assert all(np.array_equal(x[k], y[k]) for k in y), group


def test_a_checkpoint_written_before_variants_were_recorded_resumes(finished, tmp_path, digits):
    run = copy_of(finished, tmp_path)
    last = store.checkpoint_path(run / "checkpoints" / "bn", 30)
    last.unlink()
    _damage_checkpoint(store.checkpoint_path(run / "checkpoints" / "bn", 20),
                       "no variant (before it was recorded)")  # fmt: skip
    result = train_pair(CONFIG, run, resume=True, dataset=digits)
    assert not result.variants["bn"].already_ended
    a = store.load_checkpoint(last)
    b = store.load_checkpoint(store.checkpoint_path(finished / "checkpoints" / "bn", 30))
    assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in b.model_state)
