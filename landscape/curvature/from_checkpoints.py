"""The Hessian of every saved checkpoint of a run (``landscape hessian``), resumable.

For checkpoint theta, on a fixed evaluation set ``D`` (the first ``examples`` training
examples, in batches of ``batch_size``), with ``L(theta) = sum_b |b| L_b(theta) / |D|``
(the size-weighted mean loss, BN in ``bn_mode``)::

    eigenvalues          the top-k eigenvalues of H = nabla^2 L(theta)  (Lanczos, eigsh)
    trace                tr H  (Hutch++, to ``trace_rtol`` relative standard error)
    curvature_gradient   g^T H g / ||g||^2,  g = nabla L(theta)   (Santurkar's Thm. 4.2)
    density              the spectral density (stochastic Lanczos quadrature)

One row per checkpoint (layout: :mod:`.hessian_file`), written whole with one copy-on-write
edit when the checkpoint is done: a kill loses at most the checkpoint in progress, and a
rerun computes only the checkpoints the file does not hold (the same numbers: every random
vector is seeded by ``seed``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch

from landscape import store
from landscape._device import resolve_device
from landscape._files import remove_stale_temporaries, writer_lock
from landscape.curvature.columns import HESSIAN_COLUMNS
from landscape.curvature.estimates import hessian_density, hessian_trace
from landscape.curvature.hessian_file import GROUP, KIND, SETTINGS_ATTR, read_hessian_file
from landscape.curvature.spectrum import curvature_along, hessian_eigenvalues
from landscape.data import Dataset, eval_batches, load_dataset, loss_function

__all__ = ["HessianConfig", "hessian_checkpoints"]

log = logging.getLogger(__name__)

#: The columns only the offline file has (the rest: HESSIAN_COLUMNS).
OFFLINE_COLUMNS = {
    "sha256": "SHA-256 of the checkpoint file",
    "file": "path of the checkpoint file when it was computed",
    "density_grid": "points t at which the spectral density is sampled",
    "density": "spectral density rho(t) of the Hessian (stochastic Lanczos quadrature, "
    "Gaussian broadening density_sigma; integrates to 1)",
    "ritz_values": "Lanczos nodes theta_pj per probe vector p (NaN where Lanczos stopped early)",
    "ritz_weights": "quadrature weights tau_pj per probe vector (each row sums to 1)",
    "density_sigma": "Gaussian broadening of the density",
    "density_products": "Hessian-vector products the density took",
}


@dataclass
class HessianConfig:
    """Settings of :func:`hessian_checkpoints` (the numbers of every checkpoint's row)."""

    top_k: int = 5  # top eigenvalues (algebraically largest)
    tol: float = 1e-4  # eigsh's relative tolerance
    trace: bool = True  # also the trace (Hutch++)
    trace_rtol: float = 0.05  # to this relative standard error ...
    trace_max_products: int = 500  # ... or this many products (trace_converged: 0)
    density: bool = False  # also the spectral density (stochastic Lanczos quadrature)
    density_probes: int = 4  # probe vectors
    density_steps: int = 60  # Lanczos steps per probe vector
    density_points: int = 513  # points of the density's grid
    examples: int = 512  # the first N training examples (clipped to the training set)
    batch_size: int = 256  # batches of them (BN train mode: each its own statistics)
    bn_mode: Literal["train", "eval"] = "train"
    seed: int = 0  # every random vector

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and its option."""
        ints = ("top_k", "trace_max_products", "density_probes", "density_steps",
                "density_points", "examples", "batch_size")  # fmt: skip
        for name in ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a positive "
                                 f"integer, got {value!r}")  # fmt: skip
        for name in ("tol", "trace_rtol"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and 0 < value < 1)
            ):
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must be in (0, 1), "
                                 f"got {value!r}")  # fmt: skip
        if self.bn_mode not in ("train", "eval"):
            raise ValueError(f"bn_mode must be train or eval, got {self.bn_mode!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")


def hessian_checkpoints(
    checkpoint_files_by_variant: Mapping[str, Sequence[str | Path]],
    out_path: str | Path,
    config: HessianConfig | None = None,
    *,
    dataset: Dataset | None = None,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    trust_factory: bool = False,
) -> Path:
    """The Hessian of every checkpoint (top eigenvalues, trace, curvature along the
    gradient, density) into one HDF5 file; a rerun computes only what is missing.

    Args:
        checkpoint_files_by_variant: e.g. ``{"bn": [path, ...], "plain": [...]}``.
        out_path: the HDF5 file (:mod:`.hessian_file`).
        config: the settings (default :class:`HessianConfig`).
        dataset: the data (default: the first checkpoint's training data set).
        device: ``auto``, ``cpu``, ``cuda`` or a torch device.
        overwrite: replace an existing Hessian file (of other settings) instead of resuming.
        progress: ``progress(done, total)`` over the checkpoints still to compute.
        trust_factory: rebuild models whose spec names an import path (runs that code).

    Returns:
        ``out_path``.

    Raises:
        ValueError: bad settings, no checkpoints, a file of other settings (unless
            ``overwrite``), a checkpoint changed since it was computed, or ``out_path``
            holding anything but a Hessian file (never replaced).
        CheckpointError: a checkpoint cannot be read or rebuilt.
    """
    cfg = config or HessianConfig()
    cfg.validate()
    out = Path(out_path)
    sources = _sources(checkpoint_files_by_variant)
    dev = resolve_device(device) if device in ("auto", "cpu", "cuda") else torch.device(device)
    first = store.load_checkpoint(next(iter(sources.values()))[0][1])
    train = store.TrainingRecord.of(first)
    if dataset is None and train.dataset is None:
        raise ValueError(f"{first.path} records no training data set: pass dataset= (--data)")
    data = dataset or load_dataset(
        str(train.dataset), data_dir=train.data_dir, seed=train.seed, **train.data_options
    )
    n = min(cfg.examples, len(data.x_train))
    settings = {**asdict(cfg), "examples": n, "dataset": data.name}
    store.build_model(first, trust_factory=trust_factory)  # fails before any file exists
    with writer_lock(out):
        remove_stale_temporaries(out)
        done = _prepare(out, settings, sources, overwrite, str(dev))
        todo = [(v, *row) for v, rows in sources.items() for row in rows
                if row[0] not in done.get(v, {})]  # fmt: skip
        if not todo:
            log.info("nothing to do: %s holds every checkpoint", out)
        for count, (variant, step, path, sha) in enumerate(todo, 1):
            ckpt = store.load_checkpoint(path, map_location=dev)
            _same_data(ckpt, first, train, given=dataset is not None)
            model = store.build_model(ckpt, device=dev, trust_factory=trust_factory)
            row = hessian_row(model, data, cfg, n)
            _write(out, variant, {"step": step, "sha256": sha, "file": str(path), **row})
            if progress is not None:
                progress(count, len(todo))
    return out


def _same_data(
    ckpt: store.Checkpoint, first: store.Checkpoint, train: store.TrainingRecord, given: bool
) -> None:
    """Refuse a checkpoint trained on other data than the first (whose data is used)."""
    other = store.TrainingRecord.of(ckpt)
    clash = [
        k for k in ("dataset", "data_options", "seed") if getattr(other, k) != getattr(train, k)
    ]
    if clash and not given:
        raise ValueError(f"{ckpt.path} and {first.path} were trained on other data ({clash}): "
                         "compute them apart, or pass dataset= (--data)")  # fmt: skip


def evaluation_batches(
    data: Dataset,
    examples: int,
    batch_size: int,
    dtype: torch.dtype | None,
    device: torch.device | str,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The Hessian's fixed data, for ``landscape hessian`` and the trainer's inline rows
    alike: the first ``examples`` training examples (clipped to the training set) in
    batches of ``batch_size`` (the last may be smaller), on ``device``, the inputs (and
    regression targets) in ``dtype`` (None: as they are; class labels stay integers)."""
    x, y = data.x_train[:examples], data.y_train[:examples]
    y_dtype = dtype if data.task == "regression" else y.dtype
    x, y = x.to(device, dtype or x.dtype), y.to(device, y_dtype or y.dtype)
    return list(eval_batches(x, y, batch_size))


def hessian_row(
    model: torch.nn.Module, data: Dataset, cfg: HessianConfig, examples: int
) -> dict[str, Any]:
    """One checkpoint's numbers (the columns of :mod:`.hessian_file` but step, sha256, file)."""
    p = next(model.parameters())
    batches = evaluation_batches(data, examples, cfg.batch_size, p.dtype, p.device)
    loss_fn = loss_function(data.task)
    common = {"bn_mode": cfg.bn_mode, "seed": cfg.seed}
    eig = hessian_eigenvalues(model, loss_fn, batches, k=cfg.top_k, tol=cfg.tol, **common)
    row: dict[str, Any] = {
        "eigenvalues": eig.values, "residuals": eig.residuals, "eigen_products": eig.products,
        "curvature_gradient": curvature_along(model, loss_fn, batches, "gradient", **common),
    }  # fmt: skip
    if cfg.trace:
        tr = hessian_trace(model, loss_fn, batches, rtol=cfg.trace_rtol,
                           max_products=cfg.trace_max_products, **common)  # fmt: skip
        row |= {"trace": tr.value, "trace_stderr": tr.stderr, "trace_products": tr.products,
                "trace_converged": int(tr.converged)}  # fmt: skip
    if cfg.density:
        d = hessian_density(model, loss_fn, batches, probes=cfg.density_probes,
                            steps=cfg.density_steps, points=cfg.density_points,
                            **common)  # fmt: skip
        row |= {"density_grid": d.grid, "density": d.density, "ritz_values": d.ritz_values,
                "ritz_weights": d.weights, "density_sigma": d.sigma,
                "density_products": d.products}  # fmt: skip
    return row


def _sources(files: Mapping[str, Sequence[str | Path]]) -> dict[str, list[tuple[int, Path, str]]]:
    """(step, path, sha256) per variant, sorted by step; one file per step."""
    out = {}
    for variant, paths in files.items():
        rows = sorted((store.checkpoint_step(p), Path(p)) for p in paths)
        if len({s for s, _ in rows}) != len(rows):
            raise ValueError(f"two {variant} checkpoints of the same step: pass one file per step")
        if rows:
            out[variant] = [(s, p, store.checkpoint_sha256(p)) for s, p in rows]
    if not out:
        raise ValueError("no checkpoints: pass a run directory or checkpoint files")
    return out


def _prepare(out: Path, settings: dict, sources: dict, overwrite: bool, device: str) -> dict:
    """``{variant: {step: sha256}}`` already in ``out``; makes ``out`` when needed."""
    if store.check_output(out, KIND) and not overwrite:  # never another kind
        stored = read_hessian_file(out)  # checked: a damaged file is refused, not added to
        new = json.loads(store.dumps(settings, "Hessian settings"))
        if diff := sorted(k for k in stored.settings.keys() | new.keys()
                          if stored.settings.get(k) != new.get(k)):  # fmt: skip
            raise ValueError(f"{out} was computed with other settings ({', '.join(diff)}): "
                             "pass the same options, or --overwrite to replace it")  # fmt: skip
        done = {v: stored.done(v) for v in sources}
        for v, rows in sources.items():
            for step, path, sha in rows:
                if done[v].get(step, sha) != sha:
                    raise ValueError(
                        f"{path} changed since its Hessian went into {out}: pass --overwrite "
                        "to compute every checkpoint again"
                    )
        return done
    with store.edit(out, fresh=True) as f:  # replaces an old Hessian file only whole
        store.write_provenance(f, store.provenance({"hessian": settings}, device=device))
        store.write_attrs(f, {store.KIND_ATTR: KIND, SETTINGS_ATTR: settings})
    return {}


def _write(out: Path, variant: str, row: dict[str, Any]) -> None:
    """Add one checkpoint's row to ``/hessian/<variant>``, in step order, in one
    copy-on-write edit (the group is written anew: a few rows per checkpoint of a run)."""
    text = ("sha256", "file")
    with store.edit(out) as f:
        name = f"{GROUP}/{variant}"
        old = f.get(name)
        rows = store.read_series(old, text=text) if old is not None and len(old) else {}
        new = {k: np.asarray(v)[None] for k, v in row.items()}
        cols = {k: np.concatenate([rows[k], new[k]]) if rows else new[k] for k in new}
        order = np.argsort(cols["step"], kind="stable")
        if old is not None:
            del f[name]
        group = f.create_group(name)
        for k, values in cols.items():
            values = values[order]
            if k in text:
                values = values.astype(object)
                dtype = h5py.string_dtype()
            else:
                dtype = np.int64 if values.dtype.kind in "biu" else np.float64
            group.create_dataset(k, data=values, dtype=dtype, maxshape=(None, *values.shape[1:]))
        store.describe_datasets(group, {**HESSIAN_COLUMNS, **OFFLINE_COLUMNS})
