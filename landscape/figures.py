"""Run directory -> paper-style figures: reads the HDF5 store, calls ``render``, saves.

The only module that joins storage and rendering, so that ``render`` stays pure and the
CLI and ``scripts/`` share one way of turning a run into figures.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from . import storage
from .render import LABELS, save_figure, training_curves
from .train import RUN_FILE, VARIANTS

__all__ = ["load_runs", "plot_training"]


def load_runs(run_dir: str | Path, analysis: str) -> dict[str, dict[str, np.ndarray]]:
    """Series of one analysis (``train``, ``eval``, ``probe``, ``ics``) per variant label."""
    path = _run_file(run_dir)
    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as f:
        for v in VARIANTS:
            name = f"{analysis}/{v}"
            if name in f and len(f[name]):
                series = storage.read_series(f[name])
                series.update({k: _attr(val) for k, val in f[name].attrs.items()})
                out[LABELS[v]] = series
    return out


def _attr(value):
    return value.decode() if isinstance(value, bytes) else value


def _run_file(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    path = path / RUN_FILE if path.is_dir() else path
    if not path.exists():
        raise ValueError(
            f"no run at {run_dir}: expected a run directory with {RUN_FILE} (see landscape train)"
        )
    return path


def plot_training(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Fig. 1 style training curves of a run; returns the files written (PNG and PDF)."""
    train = load_runs(run_dir, "train")
    if not train:
        raise ValueError(f"{run_dir} holds no training log: train it first (landscape train)")
    evals = load_runs(run_dir, "eval")
    runs = {}
    for label, series in train.items():
        e = evals.get(label, {})
        runs[label] = {
            "step": series["step"],
            "loss": series["loss"],
            "accuracy": series["accuracy"],
            "eval_step": e.get("step", np.array([])),
            "eval_loss": e.get("loss", np.array([])),
            "eval_accuracy": e.get("accuracy", np.array([])),
        }
    fig = training_curves(runs, title="Training on the held-out split vs training set")
    target = Path(out) if out else Path(run_dir) / "figures" / "fig1_training"
    return save_figure(fig, target)
