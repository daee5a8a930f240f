"""Resumable slice grids in HDF5: evaluate what is missing, never rewrite what is there.

A slice file is created complete in shape (coordinates, directions, NaN values, a zero
``computed`` mask, the grid allocated in full) with its first point evaluated, built in
memory and written atomically (temporary file + rename) under the writer lock: a run that
fails before then leaves the path as it was. Evaluation then only changes value cells and
mask cells in place, a chunk at a time (:mod:`.cells`: values, fdatasync, then the mask).
An interrupted run loses at most one chunk, and a second call with the same configuration
evaluates exactly the points whose mask is still 0, so its final values are identical to
those of an uninterrupted run. Layout: :data:`DATASETS` and ``docs/hdf5-schema.md``; the
root holds the provenance (``config_json`` = the full slice configuration), ``slice_format``,
``config_hash`` and ``meta`` (JSON).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor, nn

from landscape import distributed
from landscape._device import device_of
from landscape._files import write_atomically
from landscape._params import Params
from landscape.data.evaluation import BatchLoss, Data, Loss, Metric, as_batches
from landscape.slices.cells import (
    REMAKE,
    Cells,
    CellWriter,
    DamagedSliceFile,
    cells_of,
    checked,
    ordered,
    torch_dtype,
    writing,
)
from landscape.slices.coords import Coords
from landscape.slices.engine import (
    DEFAULT_RECALIBRATE_BATCHES,
    Precision,
    SliceBNMode,
    SliceResult,
    evaluate_grid,
)
from landscape.store.hdf5 import describe_datasets, dumps, open_run, write_attrs
from landscape.store.outputs import KIND_ATTR, check_output
from landscape.store.provenance import provenance, write_provenance

__all__ = ["DATASETS", "SLICE_FORMAT", "read_grid", "run_grid", "slice_file_hash"]

log = logging.getLogger(__name__)

SLICE_FORMAT = "landscape.slice/1"
#: Every dataset of a slice file and its ``description``; ``values/<metric>`` (other metrics)
#: and ``[buffer_]directions/d<k>/<parameter or buffer>`` fill in ``{name}`` and ``{k}``.
DATASETS = {
    "coords/x": "coordinates x along d1 (the columns of the grid)",
    "coords/y": "coordinates y along d2 (the rows of the grid); 2-D slices only",
    "values/loss": "mean loss over the evaluation examples at θ + x d1 + y d2; NaN until computed",
    "values/accuracy": "accuracy over the evaluation examples at each point; NaN until computed",
    "values": "metric {name} at each point of the grid; NaN until computed",
    "computed": "1 once the point's values are written, 0 until then",
    "directions": "direction d{k}: its part in parameter {name}",
    "buffer_directions": "direction d{k}: its part in buffer {name} (moved with the parameters)",
    "trajectory/coords": "(x, y) of each trajectory checkpoint: θ_t − θ projected on d1, d2",
    "trajectory/steps": "step of each trajectory checkpoint (the origin is the last)",
}


def _digest(dicts: Iterable[Mapping[str, Tensor]] | None) -> str | None:
    """SHA-256 of names, dtypes, shapes and bytes of the tensors (key order ignored)."""
    if dicts is None:
        return None
    h = hashlib.sha256()
    for k, d in enumerate(dicts):
        for name in sorted(n for n, v in d.items() if isinstance(v, Tensor)):
            t = d[name].detach().cpu().contiguous().reshape(-1)
            h.update(f"{k}|{name}|{t.dtype}|{tuple(d[name].shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _key(name: str) -> str:
    """HDF5 link name for a parameter name ('/' separates groups; '%' escapes it)."""
    return name.replace("%", "%25").replace("/", "%2F")


def _write_params(group: h5py.Group, params: Mapping[str, Tensor], text: str) -> None:
    for name, t in params.items():
        t = t.detach().cpu()
        arr = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
        ds = group.create_dataset(_key(name), data=arr)
        dtype = str(t.dtype).removeprefix("torch.")
        write_attrs(ds, {"name": name, "dtype": dtype, "description": text.format(name=name)})


def _read_params(group: h5py.Group, device: str | torch.device) -> Params:
    return {
        str(ds.attrs["name"]): torch.from_numpy(np.asarray(ds[()])).to(device, torch_dtype(ds))
        for ds in group.values()
    }


def _write_directions(f: h5py.File, root: str, dirs: Sequence[Mapping[str, Tensor]]) -> None:
    top = f.create_group(root)
    for k, d in enumerate(dirs, 1):
        text = DATASETS[root].replace("{k}", str(k))
        _write_params(top.create_group(f"d{k}", track_order=True), d, text)


def _create(path: Path, first: SliceResult, config: dict, meta: dict, device: str) -> None:
    """Write the slice file with its first evaluated point atomically (temp file + rename).

    Cells not computed read as the fill value (NaN, mask 0): no full-size array in memory.
    The caller holds the writer lock of ``path`` and has checked that ``path`` holds
    nothing, or a slice file it may replace (``overwrite``).
    """
    image = io.BytesIO()  # built in memory, written by Python: a full disk is a clean error
    with h5py.File(image, "w") as f:
        write_provenance(f, provenance(config, device=device))
        write_attrs(f, {KIND_ATTR: "slice file", "slice_format": SLICE_FORMAT,
                        "config_hash": meta["config_hash"], "meta": meta})  # fmt: skip
        f.create_dataset("coords/x", data=first.x)
        if first.y is not None:
            f.create_dataset("coords/y", data=first.y)
        done, early = first.computed, _allocated_now()
        for name, v in first.values.items():
            ds = f.create_dataset(f"values/{name}", first.shape, "f8", fillvalue=np.nan,
                                  dcpl=early)  # fmt: skip
            ds[done] = v[done]
        f.create_dataset("computed", first.shape, "u1", fillvalue=0, dcpl=early)[done] = 1
        other = {f"values/{n}": DATASETS["values"].format(name=n) for n in first.values}
        describe_datasets(f, other | DATASETS)
        _write_directions(f, "directions", first.directions)
        if first.buffer_directions is not None:
            _write_directions(f, "buffer_directions", first.buffer_directions)
    write_atomically(path, image.getvalue())


def _allocated_now() -> h5py.h5p.PropDCID:
    """Dataset creation: the whole dataset allocated (and filled) when created, so that later
    writes only overwrite bytes already in the file: no new space, no metadata change."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return dcpl


def slice_file_hash(path: Path, where: str = "output path") -> str | None:
    """The ``config_hash`` of the slice file at ``path``; None if it is absent or empty.

    Raises:
        ValueError: If ``path`` holds anything else (never to be replaced: choose another
            ``where``) or is open for writing by another process.
    """
    if not check_output(path, "slice file", option=where):  # refuses any other kind of file
        return None
    with open_run(path) as f:  # a file locked by a writer: "open for writing by another ..."
        if f.attrs.get("slice_format") != SLICE_FORMAT or "config_hash" not in f.attrs:
            raise ValueError(f"{path} is not a slice file: choose another {where}")
        return str(f.attrs["config_hash"])


def run_grid(
    path: str | Path,
    model: nn.Module,
    loss_fn: Loss,
    data: Data,
    directions: Sequence[Mapping[str, Tensor]],
    x: Coords,
    y: Coords | None = None,
    *,
    meta: Mapping[str, Any],
    origin: Mapping[str, Tensor] | None = None,
    buffer_directions: Sequence[Mapping[str, Tensor]] | None = None,
    bn_mode: SliceBNMode = "eval",
    recalibrate_batches: int = DEFAULT_RECALIBRATE_BATCHES,
    metrics: Mapping[str, Metric | BatchLoss] | None = None,
    accuracy: bool | BatchLoss | None = None,
    precision: Precision = "native",
    overwrite: bool = False,
    chunk: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> SliceResult | None:
    """Evaluate ``f(a, b) = L(theta + a d1 + b d2)`` into a resumable HDF5 file.

    The configuration (``meta``, coordinates, evaluation settings, and SHA-256 digests of
    the directions, buffer directions, origin and model state) is hashed into
    ``config_hash``. A new path is created; an existing file with the same hash is
    continued (only points whose ``computed`` mask is 0 are evaluated); one with another
    hash is refused unless ``overwrite``.

    Args:
        path: The ``.h5`` file.
        model, loss_fn, data, directions, x, y, origin, buffer_directions, bn_mode,
            recalibrate_batches, metrics, accuracy, precision: As in
            :func:`landscape.slices.engine.evaluate_grid`.
        meta: The command's configuration (JSON-safe): kind, seed, normalization, data
            and checkpoint identity, ... Stored and hashed; it overrides the evaluation
            metadata on equal keys.
        overwrite: Replace an existing slice file that holds a different slice.
        chunk: Points per write-and-flush.
        progress: ``progress(done, total)`` counted over the whole grid.

    Returns:
        The slice read back from the file, or None when the file was already complete
        (nothing evaluated; "already complete" is logged), and on ranks other than 0.

    Raises:
        ValueError: If the file holds a different slice and ``overwrite`` is False, holds
            anything but a slice (whatever ``overwrite``), is damaged (unless ``overwrite``:
            then it is made anew), is being written by another process, or on invalid
            arguments. The file is then left untouched, and so it is when the first point
            fails: a new file is only made once that point is.
        WriteError: The file system refused a write (the cells written before are intact,
            their mask says which), or the lock file beside ``path`` (where nothing can be
            written, a complete file is still returned as complete: None).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if bad := [n for n in metrics or () if not n or "/" in n]:
        raise ValueError(f"metric name {bad[0]!r} cannot be an HDF5 name: rename it without '/'")
    path = Path(path)
    data = as_batches(data, model) if isinstance(data, str) else data  # loaded once
    options = dict(origin=origin, buffer_directions=buffer_directions, bn_mode=bn_mode,
                   recalibrate_batches=recalibrate_batches, metrics=metrics, accuracy=accuracy,
                   precision=precision)  # fmt: skip
    grid = (model, loss_fn, data, directions, x, y)
    plan = evaluate_grid(*grid, points=[], **options)
    config = {
        "format": SLICE_FORMAT,
        "meta": json.loads(dumps(dict(meta), "meta")),
        "eval": plan.meta,
        "x": plan.x.tolist(),
        "y": None if plan.y is None else plan.y.tolist(),
        "digests": {
            "directions": _digest(directions),
            "buffer_directions": _digest(buffer_directions),
            "origin": _digest(None if origin is None else [origin]),
            "model": _digest([model.state_dict()]),
        },
    }
    config_hash = hashlib.sha256(dumps(config, "slice configuration").encode()).hexdigest()
    file_meta = {**plan.meta, **config["meta"], "config_hash": config_hash}
    device = str(device_of(model))
    total = math.prod(plan.shape)

    r = distributed.ranks()
    where: list[Cells | None] = [None]  # rank 0: where the file's cells lie
    with writing(path, r) as refused:  # rank 0 holds the writer lock and writes

        def prepare() -> tuple[list[int], bool]:  # rank 0: the file made or checked, the todo
            stored = slice_file_hash(path)  # refuses any other kind of file, even overwrite
            if stored not in (None, config_hash) and not overwrite:
                raise ValueError(f"{path} holds a different slice: pass overwrite=True "
                                 "(--overwrite) to replace it")  # fmt: skip
            todo = None
            if stored == config_hash:
                try:
                    todo, where[0] = _resumable(path, plan.meta["metrics"])
                except DamagedSliceFile:
                    if not overwrite:
                        raise
            if refused is not None and todo != []:  # nothing may be written here
                raise refused
            if todo is not None:
                return todo, False
            report = None if progress is None else (lambda done, _: progress(done, total))
            first = evaluate_grid(*grid, points=[0], progress=report, **options)
            _create(path, first, config, file_meta, device)  # only now: a failure keeps the old
            todo, where[0] = _resumable(path, plan.meta["metrics"])
            return todo, True

        todo, created = distributed.on_main(prepare, r)
        if not todo and not created:
            log.info("%s: already complete", path)
            return None
        before = total - len(todo)
        log.info("%s: evaluating %d of %d points", path, len(todo), total)
        if r.world == 1 and todo:
            writer = CellWriter(path, where[0], chunk)  # type: ignore[arg-type]  # made above
            report = None if progress is None else (lambda done, _: progress(before + done, total))
            try:
                evaluate_grid(*grid, points=todo, on_point=writer.add, progress=report, **options)
            finally:
                writer.flush()
        elif todo:
            _run_sharded(path, grid, options, plan, todo, chunk, r, before, progress, where[0])
    if not r.main:
        return None
    return read_grid(path)


def _resumable(path: Path, metrics: list[str]) -> tuple[list[int], Cells]:
    """The points of ``path`` still to do and where its cells lie; ValueError if damaged."""
    with open_run(path) as f:
        checked(f, path)
        if missing := [n for n in metrics if f"values/{n}" not in f]:
            raise DamagedSliceFile(f"{path} is a damaged slice file (missing values/"
                                   f"{missing[0]}): {REMAKE}")  # fmt: skip
        return np.flatnonzero(f["computed"][()].reshape(-1) == 0).tolist(), cells_of(f, path)


def _run_sharded(
    path: Path, grid: tuple, options: dict, plan: SliceResult, todo: list[int], chunk: int,
    r: distributed.Ranks, before: int, progress: Callable[[int, int], None] | None,
    cells: Cells | None,
) -> None:  # fmt: skip
    """Every rank evaluates its share of ``todo``; rank 0 gathers and writes blocks, and
    every rank hears how the last one went (a refused write: rank 0's WriteError)."""
    names, total = plan.meta["metrics"], math.prod(plan.shape)
    writer = CellWriter(path, cells, chunk * r.world) if r.main else None  # type: ignore[arg-type]
    received = [before]

    def on_row(k: int, values: list[float]) -> None:  # rank 0
        writer.add(k, dict(zip(names, values)))  # type: ignore[union-attr]
        received[0] += 1
        if progress is not None:
            progress(received[0], total)

    rounds = math.ceil(len(distributed.shard(todo, distributed.Ranks(0, r.world))) / chunk)
    gatherer = distributed.RowGatherer(chunk, len(names), rounds, on_row if r.main else None, r)
    try:
        evaluate_grid(
            *grid, points=distributed.shard(todo, r), **options,
            on_point=lambda k, point: gatherer.add(k, [point[n] for n in names]),
        )  # fmt: skip
        gatherer.finish()
    except BaseException:
        if writer is not None:
            writer.flush()  # what was gathered is kept
        raise
    distributed.on_main(writer.flush if writer is not None else lambda: None, r)


def read_grid(path: str | Path, *, device: str | torch.device = "cpu") -> SliceResult:
    """Read a slice file written by :func:`run_grid` (directions keyed by parameter name).

    Raises:
        ValueError: If the file is not a landscape slice file, or one with parts missing
            or damaged (the message names the part).
    """
    path = Path(path)
    with open_run(path) as f:
        if f.attrs.get("slice_format") != SLICE_FORMAT:
            raise ValueError(f"{path} is not a landscape slice file")
        meta, metrics = checked(f, path)
        x = f["coords/x"][()]
        y = f["coords/y"][()] if "y" in f["coords"] else None
        names = [*metrics, *(n for n in f["values"] if n not in metrics)]
        values = {n: f["values"][n][()] for n in names}
        computed = f["computed"][()].astype(bool)
        dirs = [_read_params(g, device) for g in ordered(f["directions"], path)]
        bdirs = None
        if "buffer_directions" in f:
            bdirs = [_read_params(g, device) for g in ordered(f["buffer_directions"], path)]
    return SliceResult(x, y, values, meta, dirs, computed, bdirs)
