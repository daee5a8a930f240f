"""Offline Santurkar probes: the gradient-direction probes on the saved checkpoints of a run.

For checkpoint theta and each of ``B`` fixed probe batches b (the same for every checkpoint
and variant), :func:`landscape.probes.gradient_probe` gives over the step sizes eta_k::

    loss[b, k]          = L_b(theta - eta_k d)
    grad_distance[b, k] = || grad L_b(theta - eta_k d) - g_b ||_2,     g_b = grad L_b(theta)
    beta[b]             = max_k grad_distance[b, k] / || eta_k d ||_2

One row per checkpoint holds these arrays and their mean and sample std (ddof 1; NaN when
B = 1) over the batches. Probe batch b is ``data.batch_indices(n_train, batch_size, b,
batch_seed)``. Layout (``docs/hdf5-schema.md``): series ``/offline_probe/<variant>`` (see
:func:`_probe_row`) and ``/offline_ics/<variant>``, one row per checkpoint, then the commit
row ``/offline_checkpoints/<variant>`` (step, sha256, file); the root holds provenance, the
settings (attribute ``offline_probe_settings``) and ``/offline_probe_batches`` (indices).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch

from landscape import distributed, store
from landscape._device import resolve_device
from landscape._files import remove_stale_temporaries, writer_lock
from landscape.data import Dataset, batch_indices, load_dataset, loss_function
from landscape.probes.columns import (
    OFFLINE_BATCHES,
    OFFLINE_ICS_COLUMNS,
    OFFLINE_PROBE_COLUMNS,
    OFFLINE_SOURCE_COLUMNS,
)
from landscape.probes.core import check_bn_mode
from landscape.probes.covariate_shift import ics
from landscape.probes.gradient import DEFAULT_STEP_COUNT, ProbeResult, StepSizes, gradient_probe
from landscape.probes.offline_file import (
    BATCHES,
    ICS,
    PROBE,
    SETTINGS_ATTR,
    SOURCE_COLUMNS,
    SOURCES,
    read_offline_file,
    read_offline_probes,
)
from landscape.store import step_of_name

__all__ = ["OfflineProbeConfig", "probe_checkpoints", "read_offline_probes"]

log = logging.getLogger(__name__)

_PER_BATCH = ("loss", "grad_distance", "ratio", "grad_cosine", "beta", "grad_norm", "base_loss")


@dataclass
class OfflineProbeConfig:
    """Settings of :func:`probe_checkpoints`; ``None`` takes the run's training value."""

    lr: float | None = None  # eta = lr x multiplier; None: the training lr
    # multipliers; None: the paper's for the run's model ([1/2, 4] linear, DLN [1/100, 30] log)
    low: float | None = None
    high: float | None = None
    count: int = DEFAULT_STEP_COUNT  # K step sizes
    spacing: Literal["linear", "log"] | None = None
    num_batches: int = 8  # B probe batches
    batch_size: int | None = None  # None: the training batch size
    batch_seed: int = 0  # seed of the probe batches' indices
    direction: Literal["gradient", "random"] = "gradient"
    bn_mode: Literal["train", "eval"] = "train"
    ics: bool = False  # also internal covariate shift (Def. 2.1), SGD step of size lr
    seed: int = 0  # random direction and stochastic layers' draws

    def step_sizes(self) -> StepSizes:
        """The grid ``lr * multipliers`` (validated; ``lr`` must be set)."""
        if self.lr is None:
            raise ValueError("the probe lr is not set: pass lr= (--lr)")
        return StepSizes(self.lr, self.low, self.high, self.count, self.spacing)

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        self.step_sizes()
        for name in ("num_batches", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.direction not in ("gradient", "random"):
            raise ValueError(f"unknown direction {self.direction!r}; expected gradient or random")
        check_bn_mode(self.bn_mode)


def probe_checkpoints(
    checkpoint_files_by_variant: Mapping[str, Sequence[str | Path]],
    out_path: str | Path,
    config: OfflineProbeConfig,
    *,
    dataset: Dataset | None = None,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    trust_factory: bool = False,
    model: str | None = None,
    model_options: Mapping[str, Any] | None = None,
    trust_pickle: bool = False,
) -> Path:
    """Probe every checkpoint on the same ``B`` batches; write one row per checkpoint.

    Resumable: a checkpoint's rows are written and flushed once all its batches are done,
    and a rerun skips the checkpoints already in ``out_path`` (finished file: no work).

    Args:
        checkpoint_files_by_variant: e.g. ``{"bn": [path, ...], "plain": [...]}``.
        out_path: the HDF5 file (layout in the module docstring).
        config: probe settings; ``lr`` and ``batch_size`` default to the first checkpoint's
            training config, and the dataset is loaded from it unless ``dataset`` is given.
        device: ``auto``, ``cpu``, ``cuda`` or a torch device.
        overwrite: replace an existing ``out_path`` instead of resuming it.
        progress: ``progress(done, total)`` over the checkpoints still to probe.
        trust_factory: rebuild models whose spec names an import path (runs that code).
        model: your own weights: ``package.module:factory`` builds the model of the files,
            which are state_dicts (:func:`landscape.store.weights_checkpoint`; the step of a
            file is the number of a ``step_XXXXXXX.pt`` name, else its place in the list).
            Pass ``dataset`` and ``config.lr`` and ``config.batch_size`` with it.
        model_options: the factory's keyword arguments.
        trust_pickle: with ``model``, also unpickle whole pickled models (runs code).

    Returns:
        ``out_path``.

    Raises:
        ValueError: no checkpoints, bad settings, checkpoints of incompatible runs, or an
            existing file written with different settings (it is left unchanged).
        CheckpointError: a checkpoint cannot be read or rebuilt.
    """

    def load(path: Path, map_location: Any = "cpu") -> store.Checkpoint:
        if model is None:
            return store.load_checkpoint(path, map_location=map_location)
        return store.weights_checkpoint(path, model, model_options, trust_pickle=trust_pickle)

    out, sources = Path(out_path), _sources(checkpoint_files_by_variant, mine=model is not None)
    dev = resolve_device(device) if device in ("auto", "cpu", "cuda") else torch.device(device)
    first = load(next(iter(sources.values()))[0][1])
    if not first.config and model is None:
        raise store.CheckpointError(f"{first.path} holds no training config to probe with")
    train = store.TrainingRecord.of(first)
    size = train.batch_size if config.batch_size is None else config.batch_size
    lr = train.lr if config.lr is None else config.lr
    for name, flag, value in (("lr", "lr", lr), ("batch_size", "batch-size", size),
                              ("dataset", "data", dataset or train.dataset)):  # fmt: skip
        if value is None:
            raise ValueError(f"{first.path} records no training {name}: pass {name}= (--{flag})")
    grid = StepSizes.for_model(
        train.model or "", lr, config.count, low=config.low, high=config.high,
        spacing=config.spacing,
    )  # fmt: skip
    cfg = replace(
        config, lr=lr, batch_size=size, low=grid.low, high=grid.high, spacing=grid.spacing
    )
    cfg.validate()
    data = dataset or load_dataset(
        str(train.dataset), data_dir=train.data_dir, seed=train.seed, **train.data_options
    )
    n = len(data.x_train)
    index = torch.stack([batch_indices(n, size, b, cfg.batch_seed) for b in range(cfg.num_batches)])
    settings = {**asdict(cfg), "dataset": data.name, "n_train": n}
    store.build_model(first, trust_factory=trust_factory)  # fails before any file exists
    # training settings that every checkpoint must share with the first, where inherited
    inherited = {"lr": config.lr is None, "batch_size": config.batch_size is None}
    inherited |= dict.fromkeys(("dataset", "data_options", "seed"), dataset is None)
    job = _Job(data, cfg, index, dev, first, train, [k for k, on in inherited.items() if on],
               trust_factory, load)  # fmt: skip
    r = distributed.ranks()  # under torchrun: checkpoints dealt out, rank 0 writes
    with writer_lock(out) if r.main else contextlib.nullcontext():

        def prepare() -> list[tuple]:  # rank 0: the file made or checked, what is left
            remove_stale_temporaries(out)
            done = _prepare(out, settings, index.numpy(), sources, overwrite, str(dev))
            return [
                (v, *row) for v, rows in sources.items() for row in rows if row[0] not in done[v]
            ]

        todo = distributed.on_main(prepare, r)
        if not todo:
            log.info("nothing to do: %s holds every checkpoint", out)
            return out
        for done_count, ((variant, step, path, sha), rows) in enumerate(job.run(todo, r), 1):
            if r.main:
                _write(out, variant, (step, sha, str(path)), *rows, settings)
                if progress is not None:
                    progress(done_count, len(todo))
    return out


@dataclass
class _Job:
    """What probing one checkpoint needs; :meth:`run` probes a list of them."""

    data: Dataset
    cfg: OfflineProbeConfig
    index: torch.Tensor  # (B, batch_size) indices of the probe batches
    device: torch.device
    first: store.Checkpoint
    train: store.TrainingRecord
    shared: list[str]  # training settings every checkpoint must share with the first
    trust_factory: bool
    load: Callable[..., store.Checkpoint]  # a landscape checkpoint, or your own weights

    def probe(self, variant: str, step: int, path: Path, sha: str) -> tuple[list, list]:
        """The probes (and ICS) of one checkpoint on every probe batch."""
        ckpt = self.load(path, map_location=self.device)
        if ckpt.step != step and ckpt.builder is None:  # your own weights: step from the name
            raise store.CheckpointError(f"{path} holds step {ckpt.step}, not {step}")
        other = store.TrainingRecord.of(ckpt)
        if clash := [k for k in self.shared if getattr(other, k) != getattr(self.train, k)]:
            raise ValueError(
                f"{path} and {self.first.path} differ in training {clash}: probe apart"
            )
        model = store.build_model(ckpt, device=self.device, trust_factory=self.trust_factory)
        cfg, x, y = self.cfg, self.data.x_train, self.data.y_train
        dtype = next(model.parameters()).dtype
        y_dtype = dtype if self.data.task == "regression" else y.dtype  # labels stay int64
        batches = [(x[i].to(self.device, dtype), y[i].to(self.device, y_dtype)) for i in self.index]
        loss_fn, grid = loss_function(self.data.task), cfg.step_sizes()
        opts = {"bn_mode": cfg.bn_mode, "seed": cfg.seed}
        probes = [gradient_probe(model, loss_fn, b, grid, direction=cfg.direction, **opts)
                  for b in batches]  # fmt: skip
        shifts = [ics(model, loss_fn, b, cfg.lr, **opts) for b in batches if cfg.ics]
        return probes, shifts

    def run(self, todo: list[tuple], r: distributed.Ranks) -> Iterator[tuple[tuple, tuple]]:
        """``(item, (probes, shifts))`` for every item of ``todo``, in order, on rank 0 (on
        the other ranks: their own items). Under torchrun every round deals one checkpoint
        to each rank and gathers the results (one collective per round)."""
        if r.world == 1:
            yield from ((item, self.probe(*item)) for item in todo)
            return
        for start in range(0, len(todo), r.world):
            mine = todo[start + r.rank] if start + r.rank < len(todo) else None
            try:
                result = ("ok", None if mine is None else self.probe(*mine))
            except Exception as exc:  # every rank must hear of it
                result = ("error", str(exc))
            results: list = [None] * r.world
            distributed.all_gather_object(results, result)
            if failed := [msg for status, msg in results if status == "error"]:
                raise ValueError(failed[0])
            for k, (_, rows) in enumerate(results):
                if start + k < len(todo) and (r.main or k == r.rank):
                    yield todo[start + k], rows


def _sources(
    files: Mapping[str, Sequence[str | Path]], mine: bool = False
) -> dict[str, list[tuple[int, Path, str]]]:
    """(step, path, sha256) per variant, sorted by step; steps unique within a variant. Your
    own weights (``mine``): the step of a ``step_XXXXXXX.pt`` name, else the place in the list."""
    out = {}
    for variant, paths in files.items():
        if mine:
            steps = [step_of_name(Path(p).name) for p in paths]
            steps = steps if None not in steps else list(range(len(paths)))
            rows = sorted(zip(steps, map(Path, paths)))
        else:
            rows = sorted((store.checkpoint_step(p), Path(p)) for p in paths)
        if len({s for s, _ in rows}) != len(rows):
            raise ValueError(f"two {variant} checkpoints of the same step: pass one file per step")
        if rows:
            out[variant] = [(s, p, store.checkpoint_sha256(p)) for s, p in rows]
    if not out:
        raise ValueError("no checkpoints to probe: pass a run directory or checkpoint files")
    return out


def _prepare(
    out: Path, settings: dict, index: np.ndarray, sources: dict, overwrite: bool, device: str
) -> dict:
    """Done steps ``{variant: {step: sha256}}`` of ``out``; creates ``out`` when needed."""
    done: dict[str, dict[int, str]] = {v: {} for v in sources}
    if store.check_output(out, "offline probe file") and not overwrite:  # never another kind
        stored = read_offline_file(out)  # checked: a damaged file is refused, not added to
        old, new = stored.settings, json.loads(store.dumps(settings, "probe settings"))
        diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if not (diff or np.array_equal(stored.batches, index)):
            diff = ["probe batches"]
        if diff:
            why = f"different probe settings ({', '.join(diff)})"
            raise ValueError(f"{out} was written with {why}; pass --overwrite")
        done |= stored.done
        changed = [p for v, rows in sources.items() for s, p, h in rows if done[v].get(s, h) != h]
        if changed:
            raise ValueError(f"{changed[0]} changed since it was probed into {out}: --overwrite")
        return done
    hashes = {v: {str(s): h for s, _, h in rows} for v, rows in sources.items()}
    with store.edit(out, fresh=True) as f:  # replaces an old probe file (checked) only whole
        prov = store.provenance({"probe": settings, "checkpoints": hashes}, device=device)
        store.write_provenance(f, prov)
        store.write_attrs(f, {store.KIND_ATTR: "offline probe file", SETTINGS_ATTR: settings})
        store.write_array(f, BATCHES, index.astype(np.int64), {"description": OFFLINE_BATCHES})
    return done


def _committed(src: h5py.Group) -> int:
    """Finished checkpoints of a variant: rows complete in step, sha256 and file."""
    return min((len(src[k]) if k in src else 0) for k in SOURCE_COLUMNS)


def _cut(group: h5py.Group, n: int) -> h5py.Group:
    """Drop rows past ``n``: those of a checkpoint interrupted before its commit row."""
    for ds in store.series_columns(group).values():
        if ds.shape[0] > n:
            ds.resize(n, axis=0)
    return group


def _spread(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and sample std (ddof 1, NaN for one batch) over the batch axis 0."""
    std = values.std(axis=0, ddof=1) if len(values) > 1 else np.full(values.shape[1:], math.nan)
    return {f"{name}_mean": values.mean(axis=0), f"{name}_std": std}


def _probe_row(step: int, probes: list[ProbeResult]) -> dict[str, Any]:
    """step, step_sizes (K,); per batch: loss, grad_distance, ratio, grad_cosine (B, K) and
    beta, grad_norm, base_loss (B,); beta_{mean,std}, {loss,grad_distance}_{min,max}_{mean,std}."""
    arr = {k: np.stack([np.float64(getattr(p, k)) for p in probes]) for k in _PER_BATCH}
    row = {"step": step, "step_sizes": probes[0].step_sizes, **arr, **_spread("beta", arr["beta"])}
    for k in ("loss", "grad_distance"):
        row |= _spread(f"{k}_min", arr[k].min(axis=1)) | _spread(f"{k}_max", arr[k].max(axis=1))
    return row


def _write(out: Path, variant: str, source: tuple, probes: list, shifts: list, attrs: dict) -> None:
    """Append the rows of one checkpoint; its ``/offline_checkpoints`` row last (the commit
    row), all in one copy-on-write edit (a failed write leaves the file as it was)."""
    step = source[0]
    with store.edit(out) as f:
        src = f.require_group(f"{SOURCES}/{variant}")
        n = _committed(_cut(src, _committed(src)))
        group = _cut(f.require_group(f"{PROBE}/{variant}"), n)
        store.append_series(group, **_probe_row(step, probes))
        store.describe_datasets(group, OFFLINE_PROBE_COLUMNS)
        store.write_attrs(group, attrs | {"std_ddof": 1})
        if shifts:
            group = _cut(f.require_group(f"{ICS}/{variant}"), n)
            arr = {k: np.stack([getattr(s, k) for s in shifts]) for k in ("l2", "cos", "grad_norm")}
            spread = _spread("l2", arr["l2"]) | _spread("cos", arr["cos"])
            store.append_series(group, step=step, **arr, **spread)
            store.describe_datasets(group, OFFLINE_ICS_COLUMNS)
            store.write_attrs(group, attrs | {"std_ddof": 1, "layers": shifts[0].layers})
        for name, value in zip(SOURCE_COLUMNS, source):
            if name not in src:
                dtype = np.int64 if name == "step" else h5py.string_dtype()
                src.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,))
            src[name].resize(n + 1, axis=0)
            src[name][n] = value
        store.describe_datasets(src, OFFLINE_SOURCE_COLUMNS)
