"""HDF5 sinks for probe results: one row per probed step, arrays over step sizes or layers.

The bridge between the numerical probes (which never touch storage) and the run store::

    sink = H5Sink("run.h5", variant="bn")
    cb = ProbeCallback(every=50, step_sizes=StepSizes.vgg(0.1), sink=sink)
    cb(step, model, loss_fn, (x, y))  # in your loop, before optimizer.step()

Rows go to ``/<kind>/<variant>`` (kind ``probe`` or ``ics``); numbers become float64 columns
(one value per row: ``lr`` follows the schedule, NaN where not applicable), each with its
``description`` (:mod:`.columns`), while strings and lists (direction, BN mode, layer names)
and the ``seed`` become attributes of that group (text and numbers native, lists as JSON).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape import store
from landscape.probes.columns import ICS_COLUMNS, PROBE_COLUMNS

__all__ = ["H5Sink"]

_COLUMNS = {"probe": PROBE_COLUMNS, "ics": ICS_COLUMNS}


class H5Sink:
    """Append each ``(kind, step, result)`` to ``path`` under ``/<kind>/<variant>``.

    Each call commits its row at once (copy-on-write, :class:`landscape.store.SeriesLog`: a
    full disk leaves the file as the previous row left it). Pass a ``log`` to buffer rows in
    it instead and commit them on your own schedule (the trainer does, every 100 steps).

    A file that already holds rows of a kind for this variant (a script run a second time)
    is refused, instead of getting a second run's rows appended to the first's; with
    ``resume`` the rows continue after the last stored step (earlier steps are skipped).

    Args:
        path: the HDF5 file (created with provenance if it does not exist); an existing one
            must be a probe log or a run log (anything else is refused, never written).
        variant: the group name below each kind (default ``"model"``; ``bn``, ``plain``
            for a pair).
        attrs: extra attributes recorded on each group (e.g. the step-size grid): text,
            numbers, and dicts or lists of them (stored as JSON).
        log: a :class:`~landscape.store.SeriesLog` of ``path`` to buffer rows in (its
            owner then decides what a rerun keeps: the trainer cuts its log on resume).
        resume: continue a file's rows of this variant after their last step.
    """

    def __init__(
        self,
        path: str | Path,
        variant: str = "model",
        attrs: Mapping[str, Any] | None = None,
        *,
        log: store.SeriesLog | None = None,
        resume: bool = False,
    ):
        self.path, self.variant, self.attrs = Path(path), variant, dict(attrs or {})
        if log is not None and log.path != self.path:
            raise ValueError(f"log writes {log.path}, not {self.path}: pass one file")
        store.check_output(self.path, ("probe log", "run log"), option="path")
        self.own, self.resume = log is None, resume
        self.log = log or store.SeriesLog(self.path, header=self._header)
        self.last: dict[str, float] = {}  # group -> last step stored before this sink

    def _header(self, f: h5py.File) -> None:
        store.write_provenance(f, store.provenance(self.attrs))
        store.write_attrs(f, {store.KIND_ATTR: "probe log"})

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
        group = f"{kind}/{self.variant}"
        if self.own and group not in self.last:
            self.last[group] = self._last_stored(group)
        if step <= self.last.get(group, -math.inf):
            return  # resume: stored already
        self.log.add(group, **columns)
        known = _COLUMNS.get(kind, {})
        generic = f"{{}} of the {kind} result given to H5Sink, one row per step"
        self.log.describe(group, {k: known.get(k) or generic.format(k) for k in columns})
        self.log.set_attrs(group, **meta)
        if self.own:
            self.log.commit()

    def _last_stored(self, group: str) -> float:
        """The last step the file holds in ``group`` (-inf: none); refused unless resume."""
        if not self.path.exists():
            return -math.inf
        with store.open_run(self.path) as f:
            g = store.group_of(f, group, self.path)
            steps = store.read_series(g).get("step") if g is not None else None
        if steps is None or len(steps) == 0:
            return -math.inf
        if not self.resume:
            raise ValueError(
                f"{self.path} already holds {group} rows (steps {steps[0]:g}..{steps[-1]:g}): "
                "pass resume=True to continue after the last step, or another variant or file"
            )
        return float(steps[-1])


def _numeric(value: Any) -> bool:
    try:
        return np.asarray(value).dtype.kind in "fiub"
    except (TypeError, ValueError):
        return False
