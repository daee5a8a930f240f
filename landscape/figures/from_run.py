"""Run directory -> paper-style figures: reads the HDF5 store, calls ``render``, saves.

With :mod:`.from_slices`, the one place that joins the store and rendering, so that
``render`` stays pure and the CLI and the demo share one way of turning a run into figures.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from landscape import store
from landscape.render import (
    LABELS,
    gradient_distance_vs_step,
    gradient_landscape,
    ics_figure,
    save_figure,
    training_curves,
)
from landscape.store import FIGURES, RUN_FILE, VARIANTS

log = logging.getLogger(__name__)

__all__ = ["load_runs", "offline_runs", "plot_santurkar", "plot_training", "run_title"]


def load_runs(run_dir: str | Path, analysis: str) -> dict[str, dict[str, np.ndarray]]:
    """Series of one analysis (``train``, ``eval``, ``probe``, ``ics``) per variant label."""
    path = _run_file(run_dir)
    out: dict[str, dict[str, np.ndarray]] = {}
    with store.open_run(path) as f:
        for v in VARIANTS:
            group = store.group_of(f, f"{analysis}/{v}", path)
            if group is not None and len(group):
                series = store.read_series(group)
                if "step" in series and np.any(np.diff(series["step"]) <= 0):
                    log.warning(
                        "%s: /%s/%s has steps out of order (two runs' rows in one file?): "
                        "the figure draws them in file order", path, analysis, v,
                    )  # fmt: skip
                if analysis in ("probe", "ics"):  # H5Sink writes every attribute as JSON
                    series.update({k: store.read_json_attr(group, k) for k in group.attrs})
                else:
                    series.update({k: store.attr_str(val) for k, val in group.attrs.items()})
                out[LABELS[v]] = series
    return out


def _run_file(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    path = path / RUN_FILE if path.is_dir() else path
    if not path.exists():
        raise ValueError(
            f"no run at {run_dir}: expected a run directory with {RUN_FILE} (see landscape train)"
        )
    return path


def run_title(run_dir: str | Path) -> str:
    """A one-line description of a run's setup, from its stored configuration."""
    with store.open_run(_run_file(run_dir)) as f:
        c = store.read_json_attr(f, "config_json", {})
    if not c:
        return ""
    opt = {"sgd": "SGD", "momentum": "SGD + momentum", "adam": "Adam"}.get(
        c["optimizer"], c["optimizer"]
    )
    scale = f", init x{c['init_scale']:g}" if c.get("init_scale", 1) != 1 else ""
    return (
        f"{c['model']} ({c['activation']}{scale}) on {c['dataset']}: "
        f"{opt}, lr {c['lr']:g}, batch {c['batch_size']}, seed {c['seed']}"
    )


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
    fig = training_curves(runs, title=run_title(run_dir))
    target = Path(out) if out else Path(run_dir) / FIGURES / "fig1_training"
    return save_figure(fig, target)


def plot_santurkar(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    layers: list[str] | None = None,
    offline: str | Path | None = None,
) -> list[Path]:
    """Santurkar et al.'s Fig. 4 (loss, gradient predictiveness, effective beta along the
    gradient), Fig. 10 (gradient distance vs step size) and, if ICS was measured, Fig. 3.

    Reads ``/probe/<variant>`` and ``/ics/<variant>`` of the run (``landscape train
    --probe-every N --ics-every M``), or with ``offline`` the file of ``landscape probe``
    (values averaged over its probe batches; x = checkpoint step); returns the files written.
    """
    if offline is not None:
        probes = offline_runs(offline)
        suffix = "_offline"
    else:
        probes, suffix = load_runs(run_dir, "probe"), ""
    if not probes:
        raise ValueError(
            f"{offline} holds no finished offline probes: run landscape probe first"
            if offline is not None
            else f"{run_dir} holds no probes: train with --probe-every N (or run landscape "
            "probe and pass its file with --offline)"
        )
    target = Path(out_dir) if out_dir else Path(run_dir) / FIGURES
    written = save_figure(gradient_landscape(probes), target / f"fig4_gradient_landscape{suffix}")
    written += save_figure(
        gradient_distance_vs_step(probes), target / f"fig10_gradient_distance{suffix}"
    )
    if offline is not None:
        return written
    shifts = load_runs(run_dir, "ics")
    if shifts:
        written += save_figure(ics_figure(shifts, layers=layers), target / "fig3_ics")
    return written


def offline_runs(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Offline probes as Fig. 4 series: per checkpoint, the mean over probe batches.

    ``loss`` and ``grad_distance`` (T, K) = mean over batches b of the (T, B, K) values;
    ``beta`` (T,) = mean over batches of each batch's effective beta.
    """
    from landscape.probes import read_offline_probes

    out = {}
    for variant, rows in read_offline_probes(path).items():
        order = np.argsort(rows["step"], kind="stable")
        out[LABELS.get(variant, variant)] = {
            "step": rows["step"][order],
            "step_sizes": rows["step_sizes"][order],
            "loss": rows["loss"][order].mean(axis=1),
            "grad_distance": rows["grad_distance"][order].mean(axis=1),
            "beta": rows["beta_mean"][order],
        }
    return out
