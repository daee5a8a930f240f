"""HDF5 run store: provenance, series round trips, truncation, describe()."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape.checkpoints import checkpoint_path, save_checkpoint
from landscape.describe import describe
from landscape.storage import (
    PROVENANCE_KEYS,
    SCHEMA_VERSION,
    append_rows,
    append_series,
    dumps,
    open_run,
    provenance,
    read_json_attr,
    read_provenance,
    read_series,
    set_attrs,
    truncate_series,
    write_array,
    write_provenance,
)


@pytest.fixture
def h5(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        yield f


def test_provenance_keys_and_config_json():
    config = {"lr": 0.1, "shape": (1, 8, 8), "seed": np.int64(3), "z": {"b": 1, "a": 2}}
    prov = provenance(config, device="cuda:0")
    assert tuple(prov) == PROVENANCE_KEYS
    assert all(isinstance(v, str) for v in prov.values())
    assert prov["schema_version"] == SCHEMA_VERSION and prov["package"] == "landscape"
    assert prov["device"] == "cuda:0" and prov["git_commit"]
    assert json.loads(prov["config_json"]) == {
        "lr": 0.1,
        "shape": [1, 8, 8],
        "seed": 3,
        "z": {"a": 2, "b": 1},
    }
    assert prov["created"].endswith("+00:00")
    assert provenance()["config_json"] == "{}" and provenance()["device"] == "cpu"


def test_provenance_rejects_unserialisable_config():
    with pytest.raises(ValueError, match="config cannot be recorded as JSON"):
        provenance({"f": object()})


def test_dumps_is_canonical_and_names_what_failed(tmp_path):
    @dataclasses.dataclass
    class Cfg:
        z: int = 1
        path: Path = tmp_path

    assert dumps(Cfg(), "config") == json.dumps({"path": str(tmp_path), "z": 1})
    assert dumps({"b": np.float32(0.5), "a": np.arange(2)}, "meta") == '{"a": [0, 1], "b": 0.5}'
    with pytest.raises(ValueError, match=r"^meta cannot be recorded as JSON"):
        dumps({"f": object()}, "meta")


def test_write_read_provenance(h5):
    prov = provenance({"a": 1})
    write_provenance(h5, prov)
    h5.attrs["status"] = "running"  # not provenance: not returned
    assert read_provenance(h5) == prov


def test_append_series_round_trip_values_and_dtypes(h5):
    g = h5.create_group("train/bn")
    rows = [(0, 2.5, np.float32(0.25), [1.0, 2.0]), (1, 2.25, np.float32(0.5), [3.0, np.nan])]
    for step, loss, acc, vec in rows:
        append_series(g, step=step, loss=loss, accuracy=acc, vec=np.array(vec))
    out = read_series(g)
    assert set(out) == {"step", "loss", "accuracy", "vec"}
    assert out["step"].dtype == np.int64 and out["loss"].dtype == np.float64
    assert out["accuracy"].dtype == np.float64 and out["vec"].shape == (2, 2)
    np.testing.assert_array_equal(out["step"], [0, 1])
    np.testing.assert_array_equal(out["loss"], [2.5, 2.25])
    np.testing.assert_array_equal(out["accuracy"], [0.25, 0.5])
    np.testing.assert_array_equal(out["vec"], [[1.0, 2.0], [3.0, np.nan]])
    assert g["vec"].maxshape == (None, 2)


def test_append_rows_matches_append_series(h5):
    rng = np.random.default_rng(0)
    step = np.arange(7)
    loss = rng.standard_normal((7, 3, 2))
    a, b = h5.create_group("a"), h5.create_group("b")
    append_rows(a, step=step[:4], loss=loss[:4])
    append_rows(a, step=step[4:], loss=loss[4:])
    append_rows(a, step=step[:0], loss=loss[:0])  # zero rows: no-op
    for s, row in zip(step, loss):
        append_series(b, step=s, loss=row)
    for g in (a, b):
        out = read_series(g)
        np.testing.assert_array_equal(out["step"], step)
        np.testing.assert_array_equal(out["loss"], loss)


def test_append_accepts_tensors(h5):
    g = h5.create_group("g")
    append_series(g, step=torch.tensor(3), loss=torch.tensor(0.5, requires_grad=True))
    append_rows(g, step=torch.tensor([4]), loss=torch.tensor([0.25]))
    np.testing.assert_array_equal(read_series(g)["loss"], [0.5, 0.25])


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"step": 1}, r"missing \['loss'\]"),
        ({"step": 1, "loss": 1.0, "lr": 0.1}, r"adds \['lr'\]"),
        ({"step": 1, "loss": np.zeros(2)}, "row shape"),
        ({"step": 1.5, "loss": 1.0}, "got floats"),
        ({"step": 1, "loss": "high"}, "numbers only"),
    ],
)
def test_mismatched_columns_raise_and_write_nothing(h5, columns, match):
    g = h5.create_group("g")
    append_series(g, step=0, loss=1.0)
    with pytest.raises(ValueError, match=match):
        append_series(g, **columns)
    assert {k: len(v) for k, v in read_series(g).items()} == {"step": 1, "loss": 1}


def test_append_rows_unequal_counts_and_scalars(h5):
    g = h5.create_group("g")
    with pytest.raises(ValueError, match="unequal row counts"):
        append_rows(g, step=np.arange(3), loss=np.zeros(2))
    with pytest.raises(ValueError, match="no row axis"):
        append_rows(g, step=1)
    assert len(g) == 0


def test_write_array_and_attrs_are_not_series(h5):
    g = h5.create_group("probe/bn")
    set_attrs(g, {"eta_grid": {"spacing": "log", "n": 8}, "status": "running", "n": 3})
    write_array(g, "step_sizes", np.linspace(0.05, 0.4, 8), attrs={"layers": ["a", "b"]})
    write_array(g, "step_sizes", np.linspace(0.05, 0.4, 4))  # overwrite
    append_series(g, step=0, loss=np.zeros(4))
    assert set(read_series(g)) == {"step", "loss"}
    assert g["step_sizes"].shape == (4,)
    assert read_json_attr(g, "eta_grid") == {"spacing": "log", "n": 8}
    assert read_json_attr(g, "absent", default=[]) == []
    assert g.attrs["status"] == "running" and g.attrs["n"] == 3


def test_truncate_series_prefix_and_general(h5):
    g = h5.create_group("g")
    append_rows(g, step=np.arange(10), loss=np.arange(10.0), vec=np.ones((10, 3)))
    truncate_series(g, "step", 6)
    out = read_series(g)
    np.testing.assert_array_equal(out["step"], np.arange(7))
    assert out["vec"].shape == (7, 3)
    truncate_series(g, "step", 100)  # nothing to drop
    assert len(read_series(g)["step"]) == 7
    append_rows(g, step=np.array([2, 9, 1]), loss=np.zeros(3), vec=np.zeros((3, 3)))
    truncate_series(g, "step", 2)
    np.testing.assert_array_equal(read_series(g)["step"], [0, 1, 2, 2, 1])
    truncate_series(g, "step", -1)
    assert all(len(v) == 0 for v in read_series(g).values())
    append_series(g, step=0, loss=1.0, vec=np.zeros(3))  # still appendable
    out = read_series(g)
    assert len(out["step"]) == 1 and out["vec"].shape == (1, 3)


def test_truncate_series_errors_and_empty_group(h5):
    empty = h5.create_group("empty")
    truncate_series(empty, "step", 3)
    assert len(empty) == 0
    g = h5.create_group("g")
    append_series(g, step=0, vec=np.zeros(2))
    with pytest.raises(ValueError, match="no column 'epoch'"):
        truncate_series(g, "epoch", 3)
    with pytest.raises(ValueError, match="not 1-D"):
        truncate_series(g, "vec", 3)


def test_read_series_detects_inconsistent_lengths(h5):
    g = h5.create_group("g")
    append_rows(g, step=np.arange(3), loss=np.zeros(3))
    g["loss"].resize(2, axis=0)
    with pytest.raises(ValueError, match="unequal lengths"):
        read_series(g)


def _make_run(run):
    with open_run(run / "run.h5", "w") as f:
        write_provenance(f, provenance({"lr": 0.1}))
        for variant in ("bn", "plain"):
            g = f.create_group(f"train/{variant}")
            g.attrs["status"] = "finished"
            append_rows(g, step=np.arange(5), loss=np.linspace(2, 1, 5))
        p = f.create_group("probe/bn")
        append_rows(p, step=np.arange(2), loss=np.array([[1.0, np.nan], [1.0, 2.0]]))
        grid = np.full((3, 3), np.nan)
        grid[0] = 1.0
        write_array(f, "slice/loss", grid)
    model = torch.nn.Linear(2, 2)
    for variant, steps in (("bn", (0, 10, 20)), ("plain", (0,))):
        for s in steps:
            path = checkpoint_path(run / "checkpoints" / variant, s)
            save_checkpoint(path, model=model, step=s, spec={}, config={})
    (run / "figures").mkdir()
    (run / "figures" / "probe_loss.png").write_bytes(b"png")
    with open_run(run / "slices" / "plane.h5", "w") as f:
        write_provenance(f, provenance())


def test_describe_file_and_run_directory(tmp_path):
    run = tmp_path / "run"
    _make_run(run)
    text = describe(run / "run.h5")
    for expected in (
        f"schema {SCHEMA_VERSION}",
        "command:",
        "train/",
        "bn/  series: 5 rows x 2 columns",
        "@status: finished",
        "loss  float64 (5)",
        "step  int64 (5)",
        "loss  float64 (2x2)  rows of (2,)  1 NaN",
        "3/9 computed",
    ):
        assert expected in text, (expected, text)
    assert "config_json" not in text  # provenance is summarised, not dumped

    text = describe(run)
    for expected in (
        "run directory",
        "bn: 3 checkpoints, steps 0..20",
        "plain: 1 checkpoint, steps 0..0",
        "figures: 1",
        "probe_loss.png",
        "slices/plane.h5",
        "bn/  series: 5 rows",
    ):
        assert expected in text, (expected, text)


def test_describe_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="no such file or directory"):
        describe(tmp_path / "missing.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        describe(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a run directory"):
        describe(tmp_path / "empty")


def test_open_run_modes(tmp_path):
    path = tmp_path / "a" / "b.h5"
    with pytest.raises(ValueError, match="no such file"):
        open_run(path)
    with open_run(path, "a") as f:
        f.attrs["x"] = 1
    with open_run(path) as f:
        assert f.attrs["x"] == 1
    with pytest.raises(ValueError, match="unknown mode"):
        open_run(path, "rw")  # type: ignore[arg-type]
