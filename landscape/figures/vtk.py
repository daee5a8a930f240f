"""Slice files -> VTK XML, for ParaView and VisIt (as Li et al.'s users render them).

A slice ``f(a, b)`` becomes a StructuredGrid (``.vts``): one point per grid cell at
``(a, b, z)`` with ``z`` the loss (or its log10, ``log=True``; a 1-D slice lies on ``b = 0``),
and every metric of the file as point data. Written as plain ASCII XML with
``repr``-exact numbers (NaN where a point was not computed or not finite), so nothing beyond
the standard library is needed to write or to read it back.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from landscape._files import write_atomically
from landscape.slices import read_grid
from landscape.store import check_output

__all__ = ["export_vtk"]


def export_vtk(
    slice_file: str | Path, out: str | Path | None = None, *, z: str = "loss", log: bool = False
) -> Path:
    """Write the slice in ``slice_file`` as a VTK StructuredGrid.

    Args:
        slice_file: A slice file (``landscape slice``, ``run_grid``, ``out=``).
        out: The ``.vts`` path (default: beside the slice, same stem); an existing VTK file
            is replaced, anything else refused.
        z: The metric that lifts the surface (``loss``, ``accuracy`` or one of yours).
        log: ``z = log10(metric)`` (non-positive values become NaN).

    Returns:
        The path written.

    Raises:
        ValueError: not a slice file, an unknown metric, or an ``out`` of another kind.
    """
    res = read_grid(slice_file)
    if z not in res.values:
        raise ValueError(f"{slice_file} has no metric {z!r}: choose one of {list(res.values)}")
    out = Path(out) if out is not None else Path(slice_file).with_suffix(".vts")
    check_output(out, "VTK file")
    ys = np.zeros(1) if res.y is None else res.y
    nx, ny = len(res.x), len(ys)
    done = np.ones(res.shape, bool) if res.computed is None else res.computed
    values = {k: np.where(done, np.asarray(v, dtype=float), np.nan) for k, v in res.values.items()}
    lift = values[z].reshape(ny, nx)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            lift = np.where(lift > 0, np.log10(lift), np.nan)
    a, b = np.meshgrid(res.x, ys)  # (ny, nx): x runs fastest, as VTK's points do
    points = np.stack([a.ravel(), b.ravel(), lift.ravel()], axis=1)
    extent = f"0 {nx - 1} 0 {ny - 1} 0 0"
    arrays = "".join(
        f'        <DataArray type="Float64" Name={quoteattr(name)} format="ascii">'
        f"{_numbers(v.ravel())}</DataArray>\n"
        for name, v in values.items()
    )
    xml = (
        '<?xml version="1.0"?>\n'
        '<VTKFile type="StructuredGrid" version="0.1" byte_order="LittleEndian">\n'
        f'  <StructuredGrid WholeExtent="{extent}">\n'
        f'    <Piece Extent="{extent}">\n'
        f"      <PointData Scalars={quoteattr(z)}>\n{arrays}      </PointData>\n"
        "      <Points>\n"
        '        <DataArray type="Float64" NumberOfComponents="3" format="ascii">'
        f"{_numbers(points.ravel())}</DataArray>\n"
        "      </Points>\n"
        "    </Piece>\n"
        "  </StructuredGrid>\n"
        "</VTKFile>\n"
    )
    write_atomically(out, xml.encode())
    return out


def _numbers(values: np.ndarray) -> str:
    """Space-separated, exact (``repr``); NaN as ``nan``, which VTK's reader takes."""
    return " ".join(repr(float(v)) for v in values)
