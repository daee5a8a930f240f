"""HDF5 files and attributes: fixed arrays, JSON attributes, opening modes and errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from landscape.store import (
    append_series,
    open_run,
    read_json_attr,
    read_series,
    set_attrs,
    write_array,
)


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


def test_a_truncated_file_is_called_damaged_not_locked(tmp_path):
    """Before: a truncated file was reported "open for writing by another process" (the text
    of HDF5's error held "superblock", which holds "lock")."""
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(1000.0)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ValueError, match=r"cannot be opened as HDF5 \(truncated or damaged\?\)"):
        open_run(path)


def test_a_held_lock_is_named_for_what_it_is(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    hold = "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); print(1, flush=True); "
    writer = subprocess.Popen(
        [sys.executable, "-c", hold + "time.sleep(60)", str(path)], stdout=subprocess.PIPE
    )
    try:
        assert writer.stdout.readline().strip() == b"1"
        with pytest.raises(ValueError, match="open for writing by another process"):
            open_run(path)
    finally:
        writer.kill()
        writer.wait()
    with open_run(path) as f:  # the holder is gone: readable again
        assert f["x"].shape == (3,)


@pytest.mark.parametrize(
    ("version", "match"),
    [
        ("2.0", r"written with schema 2\.0; this landscape reads schema 1\.0 and older: upgrade"),
        ("one", r"schema_version 'one', not MAJOR\.MINOR: it is damaged"),
    ],
)
def test_a_schema_this_package_cannot_read_is_refused(tmp_path, version, match):
    path = tmp_path / "new.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = version
    with pytest.raises(ValueError, match=match):
        open_run(path)
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = "1.7"  # a newer minor only adds things: read
    open_run(path).close()


def test_group_of_names_what_is_in_the_wrong_place(tmp_path):
    from landscape.store import group_of

    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["train/bn"] = np.zeros(3)
        f.create_group("train/plain")
        assert group_of(f, "train/plain", "r.h5").name == "/train/plain"
        assert group_of(f, "eval/bn", "r.h5") is None
        with pytest.raises(ValueError, match=r"r\.h5: /train/bn is a dataset, not a group"):
            group_of(f, "train/bn", "r.h5")


@pytest.mark.parametrize("bad", [np.nan, -1.0, 2.5])
def test_a_step_column_holds_steps(h5, bad):
    g = h5.create_group("probe/model")
    for step in (0.0, bad, 2.0):
        append_series(g, step=step, beta=1.0)
    with pytest.raises(ValueError, match=r"/probe/model/step holds .* at row 1, not a step number"):
        read_series(g)
