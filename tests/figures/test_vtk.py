"""landscape.figures.vtk: a slice file as a VTK StructuredGrid, read back with the stdlib.

The reader here is independent of the writer: it parses the XML with ``xml.etree`` and
checks the extents, that every point sits at ``(a, b, loss)`` in VTK's order (``a``
fastest), and that every metric array equals what :func:`landscape.read_grid` returns.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import landscape as L
from landscape.figures import export_vtk
from tests.cli.helpers import error_line, invoke


def _slice(path, ys="-1:1:3"):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    data = [(torch.randn(16, 4), torch.randint(0, 3, (16,)))]
    dirs = L.random_directions(model, 1 if ys is None else 2, seed=0)
    L.run_grid(path, model, nn.CrossEntropyLoss(), data, dirs, "-1:1:4", ys, meta={})
    return path


def _read(path):
    """(extent, points (n, 3), {name: values}) parsed from the .vts file."""
    root = ET.parse(path).getroot()
    assert root.get("type") == "StructuredGrid"
    piece = root.find("StructuredGrid/Piece")
    extent = [int(v) for v in piece.get("Extent").split()]
    pts = np.array(piece.find("Points/DataArray").text.split(), dtype=float).reshape(-1, 3)
    data = {
        a.get("Name"): np.array(a.text.split(), dtype=float)
        for a in piece.find("PointData").findall("DataArray")
    }
    return extent, pts, data


def test_points_and_arrays_are_the_slice(tmp_path) -> None:
    path = _slice(tmp_path / "s.h5")
    with h5py.File(path, "r+") as f:  # a point never computed must come out as NaN
        f["computed"][1, 2] = False
    out = export_vtk(path)
    assert out == tmp_path / "s.vts"
    res = L.read_grid(path)
    extent, pts, data = _read(out)
    assert extent == [0, 3, 0, 2, 0, 0]
    assert len(pts) == 12
    for j, b in enumerate(res.y):
        for i, a in enumerate(res.x):
            p = pts[j * 4 + i]
            assert p[0] == a and p[1] == b
            want = res.values["loss"][j, i] if res.computed[j, i] else np.nan
            np.testing.assert_array_equal(p[2], want)
    assert np.isnan(pts[1 * 4 + 2, 2]) and np.isfinite(pts[:6, 2]).all()
    assert set(data) == set(res.values)
    for name, v in res.values.items():
        want = np.where(res.computed, v, np.nan).ravel()
        np.testing.assert_array_equal(data[name], want)
        assert np.isnan(data[name][6]) and np.isfinite(data[name][:6]).all()


def test_log_and_other_metric_and_1d(tmp_path) -> None:
    path = _slice(tmp_path / "line.h5", ys=None)
    res = L.read_grid(path)
    _, pts, _ = _read(export_vtk(path, tmp_path / "acc.vts", z="accuracy"))
    np.testing.assert_array_equal(pts[:, 0], res.x)
    assert (pts[:, 1] == 0).all()
    np.testing.assert_array_equal(pts[:, 2], res.values["accuracy"])
    _, pts, _ = _read(export_vtk(path, tmp_path / "log.vts", log=True))
    np.testing.assert_allclose(pts[:, 2], np.log10(res.values["loss"]), rtol=0, atol=0)


def test_bad_input_is_one_line_and_nothing_is_replaced(tmp_path) -> None:
    path = _slice(tmp_path / "s.h5")
    with pytest.raises(ValueError, match="no metric 'nope'"):
        export_vtk(path, z="nope")
    before = path.read_bytes()
    line = error_line(invoke("export", "vtk", path, "--out", path))
    assert "slice file" in line
    assert path.read_bytes() == before
    assert "no metric" in error_line(invoke("export", "vtk", path, "--z", "nope"))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    error_line(invoke("export", "vtk", path, "--out", notes))
    assert notes.read_text() == "mine"


def test_cli_writes_and_replaces_its_own_output(tmp_path) -> None:
    path = _slice(tmp_path / "s.h5")
    first = invoke("export", "vtk", path)
    assert first.exit_code == 0, first.output
    assert first.output.strip() == str(tmp_path / "s.vts")
    again = invoke("export", "vtk", path, "--log")
    assert again.exit_code == 0, again.output
    _, pts, _ = _read(tmp_path / "s.vts")
    assert np.nanmax(pts[:, 2]) < 1.0  # log10 of a loss near ln 3
