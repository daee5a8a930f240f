"""Checkpoints -> slice files: the wiring behind ``landscape slice`` (Li et al. 2018).

The model is rebuilt from the checkpoint's spec and evaluated on a fixed seeded subset of the
data it was trained on. :func:`landscape.slices.grid_file.run_grid` writes the resumable file
(layout: ``docs/hdf5-schema.md``, "Slice files"); a rerun with the same settings reuses its
directions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

from landscape import distributed
from landscape._device import resolve_device
from landscape._imports import import_object, is_import_path
from landscape._params import flatten, get_params
from landscape.data import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EXAMPLES,
    SUBSET_SEED,
    Batches,
    Loss,
    dataset_batches,
    describe_data,
    load_dataset,
    loss_function,
    objective,
)
from landscape.slices import directions as D
from landscape.slices.cells import writing
from landscape.slices.coords import as_coords
from landscape.slices.engine import DEFAULT_RECALIBRATE_BATCHES, Precision, SliceBNMode, SliceResult
from landscape.slices.grid_file import DATASETS, read_grid, run_grid, slice_file_hash
from landscape.store import (
    Checkpoint,
    TrainingRecord,
    build_model,
    checkpoint_sha256,
    dumps,
    edit,
    list_checkpoints,
    load_checkpoint,
    open_run,
    read_attr,
    weights_checkpoint,
    write_array,
    write_attrs,
)

__all__ = ["KINDS", "SliceConfig", "SliceKind", "slice_checkpoint"]

SliceKind = Literal["random", "interpolate", "plane", "pca"]
KINDS: tuple[str, ...] = get_args(SliceKind)
#: Default ranges (Li et al.: [-1, 1] around a point, [-0.5, 1.5] between checkpoints).
DEFAULT_X = {"random": "-1:1:51", "interpolate": "-0.5:1.5:51", "plane": "-0.5:1.5:51"}
#: A default PCA axis spans the trajectory plus this share of its extent on each side.
PCA_MARGIN = 0.2
PCA_POINTS = 51
Source = str | Path


@dataclass
class SliceConfig:
    """Settings of one slice; all are stored in the file and hashed (unused ones as None).

    ``x``/``y`` are ``"start:stop:num"`` ranges. ``x=None``: ``DEFAULT_X[kind]``, for ``pca``
    the trajectory's span; ``y=None``: a 1-D line for ``random``, ``x`` for ``plane``, the span
    for ``pca``. ``ignore`` also keeps biases and BN parameters out of the PCA (as Li et al.).
    """

    kind: SliceKind = "random"  # interpolate needs `to`, plane `to` and `third`, pca `trajectory`
    x: str | None = None
    y: str | None = None
    seed: int = 0  # random directions (CPU generator: the same on every device)
    normalization: D.Normalization = "filter"
    ignore: D.Ignore = "biasbn"
    orthogonalize: bool = False  # random plane: d2 made orthogonal to d1
    bn_mode: SliceBNMode = "eval"  # running statistics, Li's choice; "train": batch statistics
    recalibrate_batches: int = DEFAULT_RECALIBRATE_BATCHES  # per point, bn_mode="recalibrate"
    model: str | None = None  # your own weights: package.module:factory builds their model
    model_options: dict[str, Any] = field(default_factory=dict)  # the factory's keywords
    dataset: str | None = None  # None: the checkpoint's; or your own: package.module:factory
    loss: str | None = None  # package.module:name, a loss_fn or batch_loss; None: the task's
    split: Literal["train", "test"] = "train"  # Li et al. evaluate the training loss
    examples: int = DEFAULT_EXAMPLES  # fixed seeded evaluation subset; 0: the whole split
    eval_batch_size: int | None = None  # None: 1024 with bn_mode="eval", else the training batch
    precision: Precision = "native"  # or "bf16" (autocast)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    chunk: int = 32  # points per write-and-flush of the file


def slice_checkpoint(
    checkpoint: Source, out_path: Source, config: SliceConfig | None = None, *,
    to: Source | None = None, third: Source | None = None,
    trajectory: Source | Sequence[Source] | None = None, overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None, trust_factory: bool = False,
    trust_pickle: bool = False,
) -> Path | None:  # fmt: skip
    """Evaluate a slice around ``checkpoint`` into the HDF5 file ``out_path``.

    ``checkpoint`` (and ``to``, ``third``, ``trajectory``) are landscape checkpoints, or,
    with ``config.model = "package.module:factory"``, your own weights: a state_dict file
    (:func:`landscape.store.weights_checkpoint`); then pass ``config.dataset`` too.

    Args:
        checkpoint: The origin ``theta`` (``checkpoints/<variant>/step_XXXXXXX.pt``).
        out_path: The slice file; an unfinished one with the same settings is continued.
        config: Settings (default ``SliceConfig()``: a random 1-D line).
        to: ``theta_b`` for ``interpolate`` and ``plane``.
        third: ``theta_c`` for ``plane``: ``a`` at (0, 0), ``to`` at (1, 0), ``third`` at (0, 1).
        trajectory: For ``pca``: a checkpoint directory (up to the origin's step) or files.
        overwrite: Replace a slice file that holds other settings.
        progress: ``progress(done, total)`` over the whole grid.
        trust_factory: Rebuild models whose spec names an import path (runs that code).
        trust_pickle: With ``config.model``, also unpickle whole pickled models (runs code
            the file names: only for files you made or trust).

    Returns:
        ``out_path``, or None when the file was already complete (and on every rank but 0
        under torchrun: :mod:`landscape.distributed`).

    Raises:
        ValueError: Bad settings, bad checkpoints, a file with other settings (unless
            ``overwrite``), or an ``out_path`` that is an input, is open for writing by another
            process, or holds anything but a slice (whatever ``overwrite``).
        WriteError: the file system refused a write (what was written before is intact).
    """
    c = config or SliceConfig()
    _validate(c, to, third, trajectory)
    with writing(Path(out_path), distributed.ranks()):  # rank 0 writes; the others evaluate
        return _slice(checkpoint, Path(out_path), c, to, third, trajectory, overwrite, progress,
                      trust_factory, trust_pickle)  # fmt: skip


def _slice(
    checkpoint: Source, path: Path, c: SliceConfig, to: Source | None, third: Source | None,
    trajectory: Source | Sequence[Source] | None, overwrite: bool,
    progress: Callable[[int, int], None] | None, trust_factory: bool, trust_pickle: bool,
) -> Path | None:  # fmt: skip
    device = resolve_device(c.device)

    def load(p: Source) -> tuple[Checkpoint, TrainingRecord]:
        return _load(p, c, trust_pickle)

    a, train = load(checkpoint)
    others = [load(p)[0] for p in (to, third) if p is not None]
    batch = c.eval_batch_size or (DEFAULT_BATCH_SIZE if c.bn_mode == "eval" else train.batch_size)
    if batch is None:
        raise ValueError(f"{checkpoint} records no training batch size: pass eval_batch_size "
                         "(--batch-size)")  # fmt: skip
    traj_paths = _trajectory_paths(trajectory, a.step) if c.kind == "pca" else []
    for p in (checkpoint, to, third, *traj_paths):
        if p is not None and Path(p).resolve() == path.resolve():
            raise ValueError(f"--out {path} is an input of this slice: choose another --out")
    meta = _meta(c, [a, *others], traj_paths, train.dataset, batch, device.type)
    stored, has_traj = _stored(path, meta, device, overwrite)
    model = _build(a, a, trust_factory).to(device)
    data, loss = _eval_data(c, train, a.spec, next(model.parameters()).dtype, batch, device)
    if c.bn_mode == "train" and min(objective(loss, b)[1] for b in data) < 2:
        raise ValueError(f"--bn-mode train needs >= 2 examples per batch, but "
                         f"{data.source['examples']} examples in batches of {batch} leave a "
                         "batch of 1: change --examples or --batch-size")  # fmt: skip
    xs = c.x or DEFAULT_X.get(c.kind)
    ys = c.y or (xs if c.kind == "plane" else None)
    if stored is not None:  # resume: the stored directions and coordinates
        dirs, bdirs, xs, ys = stored.directions, stored.buffer_directions, stored.x, stored.y
    elif c.kind == "random":  # drawn on the CPU: the same directions on every device
        dirs = D.random_directions(_build(a, a, trust_factory), 1 + (ys is not None), seed=c.seed,
                                   normalization=c.normalization, ignore=c.ignore)  # fmt: skip
        if c.orthogonalize and ys is not None:
            dirs[1] = D.orthogonalize(dirs[1], dirs[0])
        dirs, bdirs = [{n: t.to(device) for n, t in d.items()} for d in dirs], None
    elif c.kind in ("interpolate", "plane"):
        ends = [_build(o, a, trust_factory).to(device) for o in others]
        dirs = [D.checkpoint_direction(get_params(model), get_params(m)) for m in ends]
        bdirs = [D.buffer_direction(model, m) for m in ends]  # BN running statistics move along
        bdirs = bdirs if any(bdirs) else None
        _check_span(dirs, [checkpoint, *(p for p in (to, third) if p is not None)])
    else:  # pca: below
        dirs = bdirs = None
    traj = None
    if c.kind == "pca" and not has_traj:
        traj = _pca(model, traj_paths, a, c.ignore, dirs, trust_factory, load)
        if stored is None:
            dirs, coords = traj["directions"], traj["coords"]
            xs, ys = c.x or _span(coords[:, 0]), c.y or _span(coords[:, 1])
        else:  # rank 0 writes it; every rank hears how that went
            distributed.on_main(lambda: _write_trajectory(path, traj), distributed.ranks())
    result = run_grid(
        path, model, loss, data, dirs, xs, ys, meta=meta,
        buffer_directions=bdirs, bn_mode=c.bn_mode, recalibrate_batches=c.recalibrate_batches,
        precision=c.precision, overwrite=overwrite, chunk=c.chunk, progress=progress,
    )  # fmt: skip
    if traj is not None:
        distributed.on_main(lambda: _write_trajectory(path, traj), distributed.ranks())
    return None if result is None else path


def _validate(c: SliceConfig, to: Any, third: Any, trajectory: Any) -> None:
    needs = {"random": (), "interpolate": ("to",), "plane": ("to", "third"), "pca": ("trajectory",)}
    if c.kind not in needs:
        raise ValueError(f"unknown slice kind {c.kind!r}; use one of {', '.join(KINDS)}")
    for name, value in {"to": to, "third": third, "trajectory": trajectory}.items():
        if (value is not None) != (name in needs[c.kind]):
            what = "needs" if value is None else "does not take"
            raise ValueError(f"a {c.kind} slice {what} {name!r}")
    if c.kind == "interpolate" and c.y is not None:
        raise ValueError("an interpolation is 1-D: drop y (or slice a plane through 3 checkpoints)")
    for name in ("x", "y"):
        if getattr(c, name) is not None:
            as_coords(getattr(c, name), name)  # ValueError naming the bad range
    if c.split not in ("train", "test"):
        raise ValueError(f"unknown split {c.split!r}; use 'train' or 'test'")
    if c.examples < 0:
        raise ValueError(f"examples (--examples) must be >= 0 (0: the whole split), "
                         f"got {c.examples}")  # fmt: skip
    if c.eval_batch_size is not None and c.eval_batch_size < 1:
        raise ValueError(f"eval_batch_size (--batch-size) must be >= 1, got {c.eval_batch_size}")


def _load(path: Source, c: SliceConfig, trust_pickle: bool) -> tuple[Checkpoint, TrainingRecord]:
    """A landscape checkpoint, or with ``c.model`` your own weights, and their training."""
    if c.model is not None:
        ckpt = weights_checkpoint(path, c.model, c.model_options, trust_pickle=trust_pickle)
        return ckpt, TrainingRecord.of(ckpt)
    ckpt = load_checkpoint(path)  # weights only; CheckpointError (a ValueError) on bad files
    if not ckpt.spec or "name" not in ckpt.spec:
        raise ValueError(f"{path}: cannot rebuild the model from it (no model spec)")
    return ckpt, TrainingRecord.of(ckpt)


def _build(ckpt: Checkpoint, origin: Checkpoint, trust_factory: bool) -> nn.Module:
    """``ckpt``'s model on the CPU in its stored dtype; it must be ``origin``'s architecture."""
    if diff := _differ(ckpt.spec, origin.spec):
        raise ValueError(f"{ckpt.path} is another model than {origin.path} (spec differs: {diff})")
    return build_model(ckpt, trust_factory=trust_factory).eval()


def _check_span(dirs: list[dict[str, Tensor]], paths: list[Source]) -> None:
    """Checkpoint directions must be non-zero and, for a plane, not parallel."""
    flat = [flatten(d).double() for d in dirs]
    if any(float(v.norm()) == 0.0 for v in flat):
        raise ValueError(f"{' and '.join(map(str, paths))}: the same weights, nothing to slice")
    if len(flat) == 2:
        cos = float(flat[0] @ flat[1] / (flat[0].norm() * flat[1].norm()))
        if abs(cos) > 1 - 1e-9:
            raise ValueError(f"{paths[1]} and {paths[2]} lie on one line through {paths[0]}: "
                             "pass three checkpoints that span a plane")  # fmt: skip


def _differ(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _trajectory_paths(trajectory: Source | Sequence[Source] | None, last: int) -> list[Path]:
    if isinstance(trajectory, (str, Path)):
        if not Path(trajectory).is_dir():
            raise ValueError(f"no such directory: {trajectory}: pass e.g. RUN/checkpoints/bn")
        found = [p for step, p in list_checkpoints(trajectory) if step <= last]
    else:
        found = [Path(p) for p in trajectory or ()]
    if len(found) < 2:
        raise ValueError(f"PCA needs >= 2 checkpoints up to step {last} in {trajectory}")
    return found


def _meta(
    c: SliceConfig, ckpts: list[Checkpoint], traj: list[Path], dataset: str, batch: int, device: str
) -> dict[str, Any]:
    """The settings that define the slice (hashed by run_grid); options not used are None."""
    a, rand = ckpts[0], c.kind == "random"
    x = c.x or DEFAULT_X.get(c.kind, "auto")
    y = c.y or {"plane": x, "pca": "auto"}.get(c.kind)
    sources = [{"role": role, "file": k.path.name, "sha256": checkpoint_sha256(k.path),
                "step": k.step, "variant": k.extra.get("variant")}
               for role, k in zip(("origin", "to", "third"), ckpts)]  # fmt: skip
    return {
        "kind": c.kind, "variant": a.extra.get("variant"),
        "model": a.spec.get("name") or a.spec.get("factory"),
        "spec": a.spec, "step": a.step, "x": x, "y": y, "sources": sources,
        "trajectory": [{"file": p.name, "sha256": checkpoint_sha256(p)} for p in traj] or None,
        "seed": c.seed if rand else None, "normalization": c.normalization if rand else None,
        "ignore": c.ignore if rand or c.kind == "pca" else None,
        "orthogonalize": c.orthogonalize if rand and y is not None else None,
        "bn_mode": c.bn_mode,
        "recalibrate_batches": c.recalibrate_batches if c.bn_mode == "recalibrate" else None,
        "dataset": c.dataset or dataset, "loss": c.loss, "split": c.split,
        "examples": c.examples,
        "subset_seed": SUBSET_SEED, "eval_batch_size": batch, "precision": c.precision,
        "device": device,
    }  # fmt: skip


def _stored(
    path: Path, meta: dict[str, Any], device: torch.device, overwrite: bool
) -> tuple[SliceResult | None, bool]:
    """The slice in ``path`` to continue (and whether it has a trajectory), or None.

    A file that is not a slice (a checkpoint, a run log) is refused even with ``overwrite``.
    """
    if slice_file_hash(path, "--out") is None or overwrite:
        return None, False
    with open_run(path) as f:
        has_traj = "trajectory" in f
        old = read_attr(f, "config_json", {}).get("meta", {})
    new = json.loads(dumps(meta, "meta"))  # as run_grid stores it
    if diff := _differ(old, new):
        hint = "use --overwrite to replace it or --out for a new file"
        raise ValueError(f"{path} holds a slice with other settings ({', '.join(diff)}): {hint}")
    return read_grid(path, device=device), has_traj


def _eval_data(
    c: SliceConfig, train: TrainingRecord, spec: dict, dtype: torch.dtype, batch: int, device: Any
) -> tuple[Batches, Loss]:
    """The fixed seeded subset of the split (:func:`dataset_batches`), or your own data
    factory's batches, and the loss (``c.loss``, else the one the data's task implies)."""
    name = c.dataset or train.dataset
    if name is None:
        raise ValueError("the checkpoint records no training data set: pass dataset (--dataset)")
    if is_import_path(name):  # your own: a Dataset (subset as usual) or batches (as they are)
        data = dataset_batches(name, examples=c.examples, batch_size=batch, split=c.split,
                               device=device, dtype=dtype)  # fmt: skip
        task = "classification"
        if c.loss is None:
            task = "classification" if describe_data(data).classification else "regression"
    else:
        own = name == train.dataset  # the training data: same options, same split seed
        d = load_dataset(name, data_dir=train.data_dir if own else None, seed=train.seed,
                         **(train.data_options if own else {}))  # fmt: skip
        if "input_shape" in spec:  # a registry model: its input shape and classes are known
            have, want = (
                [*d.input_shape, d.num_classes],
                [*spec["input_shape"], spec["num_classes"]],
            )
            if have != want:
                raise ValueError(
                    f"{name}: (*input shape, classes) = {have}; the model takes {want}"
                )
        data = dataset_batches(d, examples=c.examples, batch_size=batch, split=c.split,
                               device=device, dtype=dtype)  # fmt: skip
        task = d.task
    loss = loss_function(task) if c.loss is None else import_object(c.loss, "loss")
    if not callable(loss):
        raise ValueError(f"loss {c.loss!r} is not callable: name a loss_fn or a batch_loss")
    return data, loss


def _pca(
    model: nn.Module, paths: list[Path], origin: Checkpoint, ignore: str, dirs: list | None,
    trust_factory: bool, load: Callable[[Source], tuple[Checkpoint, TrainingRecord]],
) -> dict[str, Any]:  # fmt: skip
    """PCA of ``theta_t - theta_origin`` (Li et al. Sec. 7) and the path's coordinates.

    With ``dirs`` (stored by an interrupted run) the path is projected on those instead.
    """
    final, points, steps = get_params(model), [], []
    for p in paths:
        ckpt = load(p)[0]
        _build(ckpt, origin, trust_factory)  # same architecture, loadable
        theta = {n: ckpt.model_state[n].to(t.device, t.dtype) for n, t in final.items()}
        if ignore == "biasbn":  # Li et al. leave biases and BN parameters out of the PCA
            theta.update({n: t for n, t in final.items() if t.ndim <= 1})
        points.append(theta)
        steps.append(ckpt.step)
    fresh, ratios = D.pca_directions(points, final, 2)
    used = dirs or fresh
    coords = D.project(points, final, used)  # (T, 2)
    return {"directions": used, "coords": coords, "steps": np.asarray(steps), "ratios": ratios}


def _span(c: np.ndarray) -> str:
    """A ``start:stop:num`` range over coordinates ``c`` plus a margin (3 significant digits)."""
    lo, hi = float(np.min(c)), float(np.max(c))
    pad = PCA_MARGIN * max(hi - lo, 1e-3)
    return f"{lo - pad:.3g}:{hi + pad:.3g}:{PCA_POINTS}"


def _write_trajectory(path: Path, traj: dict[str, Any]) -> None:
    """``/trajectory``: coords (T, 2), steps (T,), attr explained_variance (2,); kept if there.
    Copy-on-write (:func:`landscape.store.edit`): a new group changes the file's metadata."""
    with edit(path) as f:
        if "trajectory" in f:
            return
        g = f.create_group("trajectory")
        for name, dtype in (("coords", np.float64), ("steps", np.int64)):
            text = DATASETS[f"trajectory/{name}"]
            write_array(g, name, np.asarray(traj[name], dtype=dtype), {"description": text})
        write_attrs(g, {"explained_variance": np.asarray(traj["ratios"], dtype=np.float64)})
