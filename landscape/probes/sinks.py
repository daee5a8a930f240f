"""HDF5 sinks for probe results: one row per probed step, arrays over step sizes or layers.

The bridge between the numerical probes (which never touch storage) and the run store::

    sink = H5Sink("run.h5", variant="bn")
    cb = ProbeCallback(every=50, step_sizes=StepSizes.vgg(0.1), sink=sink)
    cb(step, model, loss_fn, (x, y))  # in your loop, before optimizer.step()

Rows go to ``/<kind>/<variant>`` (kind ``probe`` or ``ics``); numbers become float64 columns
(one value per row: ``lr`` follows the schedule, NaN where not applicable), while strings and
lists (direction, BN mode, layer names) and the ``seed`` become JSON attributes of that group.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape import store

__all__ = ["H5Sink"]


class H5Sink:
    """Append each ``(kind, step, result)`` to ``path`` under ``/<kind>/<variant>``.

    Args:
        path: the HDF5 file (created with provenance if it does not exist); an existing one
            must be a probe log or a run log (anything else is refused, never written).
        variant: the group name below each kind, e.g. ``bn`` or ``plain``.
        attrs: extra JSON-safe attributes recorded on each group (e.g. the step-size grid).
    """

    def __init__(
        self, path: str | Path, variant: str = "model", attrs: Mapping[str, Any] | None = None
    ):
        self.path, self.variant, self.attrs = Path(path), variant, dict(attrs or {})
        if not store.check_output(self.path, ("probe log", "run log"), option="path"):
            with h5py.File(self.path, "a") as f:
                store.write_provenance(f, store.provenance(self.attrs))
                f.attrs[store.KIND_ATTR] = "probe log"

    def __call__(self, kind: str, step: int, result: Any) -> None:
        row = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        columns: dict[str, Any] = {"step": step}
        meta: dict[str, Any] = dict(self.attrs)
        for key, value in row.items():
            if isinstance(value, (str, list, tuple)) and not _numeric(value):
                meta[key] = value
            elif key == "seed":  # one per run: an attribute
                meta[key] = value
            else:
                columns[key] = np.asarray(value, dtype=np.float64)
        with h5py.File(self.path, "a") as f:
            group = f.require_group(f"{kind}/{self.variant}")
            store.append_series(group, **columns)
            for key, value in meta.items():
                store.write_json_attr(group, key, value)


def _numeric(value: Any) -> bool:
    try:
        return np.asarray(value).dtype.kind in "fiub"
    except (TypeError, ValueError):
        return False
