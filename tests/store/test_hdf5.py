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


@pytest.fixture
def h5(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        yield f


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
