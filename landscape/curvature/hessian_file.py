"""Hessian files (``landscape hessian``): their layout, and the one checked reader.

Layout (``docs/hdf5-schema.md``, "Hessian files"): the root holds the provenance, the
settings (attribute ``hessian_settings``, a JSON object) and ``landscape_kind = "hessian
file"``; per variant, the series ``/hessian/<variant>``, one row per checkpoint, written
whole in one copy-on-write edit (a row is there completely or not at all):

    step, sha256, file                      the checkpoint
    eigenvalues, residuals (k,)             top-k, algebraically largest first; ||Hv - lv||
    eigen_products                          Hessian-vector products the eigenvalues took
    trace, trace_stderr, trace_products     Hutch++ (with ``trace``); trace_converged 0/1
    curvature_gradient                      g^T H g / ||g||^2 on the same data
    density_grid, density (G,)              stochastic Lanczos quadrature (with ``density``)
    ritz_values, ritz_weights (P, S)        its nodes and weights (NaN-padded)
    density_sigma, density_products
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landscape import store

__all__ = ["GROUP", "HessianFile", "SETTINGS_ATTR", "read_hessian_file"]

GROUP, SETTINGS_ATTR, KIND = "hessian", "hessian_settings", "hessian file"
#: The columns every row has; the trace and density columns come with their settings.
NEEDS = ("step", "eigenvalues", "residuals", "eigen_products", "curvature_gradient")
TRACE = ("trace", "trace_stderr", "trace_products", "trace_converged")
DENSITY = ("density_grid", "density", "ritz_values", "ritz_weights", "density_sigma",
           "density_products")  # fmt: skip
#: What to do about a damaged Hessian file (the reader never changes it).
FIX = "compute again into a new file (landscape hessian ... --out NEW, or --overwrite)"


@dataclass
class HessianFile:
    """The checked content of a Hessian file.

    Attributes:
        settings: the settings it was computed with (``hessian_settings``).
        rows: per variant, its series sorted by step (``sha256`` and ``file`` as ``str``).
    """

    settings: dict[str, Any]
    rows: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def done(self, variant: str) -> dict[int, str]:
        """``{step: sha256}`` of the checkpoints of ``variant`` already in the file."""
        rows = self.rows.get(variant, {})
        return dict(zip(rows.get("step", np.empty(0)).tolist(), rows.get("sha256", [])))


def read_hessian_file(path: str | Path) -> HessianFile:
    """Read and check a Hessian file written by :func:`hessian_checkpoints`.

    Checked: the settings are a JSON object; every variant below ``/hessian`` a group of
    equal-length numeric columns (``sha256``, ``file``: text), each step once, with the
    columns the settings promise and ``top_k`` eigenvalues per row.

    Raises:
        ValueError: naming the file and what in it is damaged (the file is not changed).
    """
    path = Path(path)
    try:
        with store.open_run(path) as f:
            settings = store.read_json_object(f, SETTINGS_ATTR, path)
            needs = NEEDS + (TRACE if settings.get("trace") else ())
            needs += DENSITY if settings.get("density") else ()
            out = HessianFile(settings)
            for variant in store.group_of(f, GROUP, path) or ():
                group = store.group_of(f, f"{GROUP}/{variant}", path)
                if group is None or not len(group):
                    continue
                rows = store.read_series(group, steps="unique", columns=needs,
                                         text=("sha256", "file"))  # fmt: skip
                k = settings.get("top_k")
                if rows["eigenvalues"].ndim != 2 or rows["eigenvalues"].shape[1] != k:
                    raise ValueError(
                        f"{path}: {group.name}/eigenvalues has shape "
                        f"{rows['eigenvalues'].shape}, not (rows, top_k={k}): the file is damaged"
                    )
                order = np.argsort(rows["step"], kind="stable")
                out.rows[variant] = {name: col[order] for name, col in rows.items()}
    except ValueError as exc:
        raise ValueError(f"{exc}; {FIX}") from None
    return out
