"""Runs -> paper-style figures: reads the HDF5 store, calls ``render``, saves.

A *run* here is a run directory (its ``run.h5``), a ``run.h5``, an ``H5Sink`` probe log or
an offline probe file (``landscape probe``); every variant group found in it is drawn (``bn``,
``plain``, ``model`` or your own names), or those chosen with ``variants``. Several runs are
drawn in one figure, each series labelled by what differs between the runs' configurations
(``lr 0.1``, ``init_scale 10``) or, failing that, by the runs' names. With
:mod:`.from_slices`, the one place that joins the store and rendering.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from landscape import store
from landscape.render import (
    gradient_distance_vs_step,
    gradient_landscape,
    ics_figure,
    save_figure,
    training_curves,
)
from landscape.render.style import FigureOptions, display_label, figure_options
from landscape.store import FIGURES, RUN_FILE, VARIANTS

log = logging.getLogger(__name__)

__all__ = [
    "load_runs",
    "offline_runs",
    "plot_santurkar",
    "plot_training",
    "run_title",
    "santurkar_figures",
    "training_figure",
]

Runs = str | Path | Sequence[str | Path]
Series = dict[str, np.ndarray]

# Configuration fields that tell runs apart in a legend, in the order they are named.
_SETUP_KEYS = (
    "model", "model_options", "activation", "init", "init_scale", "dtype", "dataset",
    "data_options", "optimizer", "lr", "momentum", "weight_decay", "lr_milestones", "lr_gamma",
    "batch_size", "steps", "seed",
)  # fmt: skip


def load_runs(
    run: str | Path, analysis: str, variants: Sequence[str] | None = None
) -> dict[str, Series]:
    """Series of one analysis (``train``, ``eval``, ``probe``, ``ics``) per variant label.

    Every group below ``/<analysis>`` is a variant (``bn`` and ``plain`` first, shown as
    "Standard + BatchNorm" and "Standard"); ``variants`` keeps those named, in that order.
    """
    path = _run_file(run)
    out: dict[str, Series] = {}
    with store.open_run(path) as f:
        found = _variants(f, analysis, path)
        for v in chosen_variants(found, variants, path, analysis):
            group = store.group_of(f, f"{analysis}/{v}", path)
            if group is None or not len(group):
                continue
            series = store.read_series(group)
            if "step" in series and np.any(np.diff(series["step"]) <= 0):
                log.warning(
                    "%s: /%s/%s has steps out of order (two runs' rows in one file?): "
                    "the figure draws them in file order", path, analysis, v,
                )  # fmt: skip
            series.update(store.read_attrs(group))
            out[display_label(v)] = series
    return out


def _variants(f: Any, analysis: str, path: Path) -> list[str]:
    group = store.group_of(f, analysis, path)
    names = [] if group is None else list(group)
    return [v for v in VARIANTS if v in names] + sorted(n for n in names if n not in VARIANTS)


def chosen_variants(
    found: list[str], variants: Sequence[str] | None, path: Path, what: str
) -> list[str]:
    """``variants`` in their order (all ``found`` when None); one not found is refused."""
    if variants is None:
        return found
    missing = [v for v in variants if v not in found]
    if missing and found:
        raise ValueError(
            f"{path} has no variant {', '.join(map(repr, missing))} in its {what} data: "
            f"choose from {', '.join(found)}"
        )
    return list(variants)


def _run_file(run: str | Path) -> Path:
    path = Path(run)
    path = path / RUN_FILE if path.is_dir() else path
    if not path.exists():
        raise ValueError(
            f"no run at {run}: expected a run directory with {RUN_FILE}, a run.h5 or a probe "
            "file (see landscape train, landscape probe)"
        )
    return path


def _config(run: str | Path) -> dict[str, Any]:
    with store.open_run(_run_file(run)) as f:
        return store.read_attr(f, "config_json", {}) or {}


def run_title(run: str | Path, *, skip: Sequence[str] = ()) -> str:
    """A one-line description of a run's setup from its stored configuration (``skip``: the
    fields left out, e.g. those that differ between runs drawn together)."""
    return _title(_config(run), set(skip))


def _title(c: dict[str, Any], skip: set[str]) -> str:
    if "optimizer" not in c:
        return ""

    def keep(key: str, text: str) -> list[str]:
        return [] if key in skip else [text]

    opt = {"sgd": "SGD", "momentum": "SGD + momentum", "adam": "Adam"}.get(
        c["optimizer"], c["optimizer"]
    )
    scale = c.get("init_scale", 1)
    net = keep("activation", c.get("activation")) + (
        keep("init_scale", f"init x{scale:g}") if scale != 1 else []
    )
    head = keep("model", c["model"]) + ([f"({', '.join(net)})"] if net else [])
    head += keep("dataset", f"on {c['dataset']}")
    tail = keep("optimizer", opt) + keep("lr", f"lr {c['lr']:g}")
    tail += keep("batch_size", f"batch {c['batch_size']}") + keep("seed", f"seed {c['seed']}")
    return ": ".join(s for s in (" ".join(head), ", ".join(tail)) if s)


def _names(paths: list[Path]) -> tuple[list[str], str]:
    """Legend names of several runs and the title of what they share."""
    configs = [_config(p) for p in paths]
    differ = [
        k for k in _SETUP_KEYS if len({repr(c.get(k)) for c in configs}) > 1
    ] if all(configs) else []  # fmt: skip
    names = [", ".join(f"{k} {_short(c.get(k))}" for k in differ[:3]) for c in configs]
    if not all(names) or len(set(names)) < len(names):
        names = [p.parent.name if p.name == RUN_FILE else p.stem for p in map(_run_file, paths)]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    title = _title(configs[0], set(differ)) if all(configs) else ""
    return names, title


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _gather(
    runs: list[Path], read: Any, variants: Sequence[str] | None
) -> tuple[dict[str, Series], str]:
    """Series of all ``runs`` by label ("<run>: <variant>" when several) and a title."""
    if len(runs) == 1:
        return read(runs[0], variants), _title(_config(runs[0]), set())
    names, title = _names(runs)
    out = {}
    for name, run in zip(names, runs):
        out.update({f"{name}: {label}": s for label, s in read(run, variants).items()})
    return out, title


def _as_list(runs: Runs) -> list[Path]:
    paths = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]
    if not paths:
        raise ValueError("no run given: name a run directory or file")
    return paths


def _target(runs: list[Path], out: str | Path | None, name: str) -> Path:
    """``out/name``; by default ``RUN/figures/name``, or ``FILE``'s folder, ``<stem>_name``."""
    if out is not None:
        return Path(out) / name
    if len(runs) > 1:
        raise ValueError(f"{len(runs)} runs drawn together: choose where with --out DIR")
    run = runs[0]
    return run / FIGURES / name if run.is_dir() else run.with_name(f"{run.stem}_{name}")


@contextlib.contextmanager
def options_applied(options: FigureOptions | None) -> Iterator[None]:
    """``figure_options(options)`` for the block, or the builders' own when None."""
    with figure_options(options) if options is not None else contextlib.nullcontext():
        yield


def training_figure(runs: Runs, *, variants: Sequence[str] | None = None) -> Figure:
    """Fig. 1 style training curves of one or several runs (see :func:`plot_training`)."""
    paths = _as_list(runs)

    def read(run: Path, chosen: Sequence[str] | None) -> dict[str, Series]:
        train, evals = load_runs(run, "train", chosen), load_runs(run, "eval", chosen)
        if not train:
            raise ValueError(f"{run} holds no training log: train it first (landscape train)")
        return {
            label: {
                "step": s["step"], "loss": s["loss"], "accuracy": s["accuracy"],
                **{f"eval_{k}": evals.get(label, {}).get(k, np.array([]))
                   for k in ("step", "loss", "accuracy")},
            }
            for label, s in train.items()
        }  # fmt: skip

    series, title = _gather(paths, read, variants)
    return training_curves(series, title=title)


def plot_training(
    runs: Runs,
    out: str | Path | None = None,
    *,
    variants: Sequence[str] | None = None,
    options: FigureOptions | None = None,
) -> list[Path]:
    """Fig. 1 style training curves of one or several runs; returns the files written.

    Args:
        runs: A run directory or ``run.h5``, or several to compare.
        out: Output path without suffix, or a directory (default
            ``RUN/figures/fig1_training``, or beside a file given as the run); required for
            several runs.
        variants: Variant names to draw (default: all found).
        options: Size, font size, style, formats and dpi (default: the builder's own).
    """
    paths = _as_list(runs)
    if out is not None and Path(out).is_dir():
        out = Path(out) / "fig1_training"
    target = Path(out) if out is not None else _target(paths, None, "fig1_training")
    with options_applied(options):
        return save_figure(training_figure(paths, variants=variants), target)


def santurkar_figures(
    runs: Runs,
    *,
    layers: list[str] | None = None,
    offline: str | Path | None = None,
    variants: Sequence[str] | None = None,
) -> dict[str, Figure]:
    """Figs. 4, 10 and (with ICS) 3 of :func:`plot_santurkar`, by file name, unsaved."""
    paths = _as_list(runs)
    if offline is not None:
        if len(paths) > 1:
            raise ValueError("--offline draws one run: give the offline probe files as runs")
        probes, title, suffix, shifts = offline_runs(offline, variants), "", "_offline", {}
    else:
        probes, title = _gather(paths, _probes, variants)
        title = f"Gradient-direction probes: {title}" if len(paths) > 1 and title else ""
        suffix = ""
        is_offline = [store.kind_of(_run_file(p)) == "offline probe file" for p in paths]
        shifts = {} if all(is_offline) else _gather(paths, _shifts, variants)[0]
    if not probes:
        raise ValueError(
            f"{offline} holds no finished offline probes: run landscape probe first"
            if offline is not None
            else f"{', '.join(map(str, paths))} holds no probes: train with --probe-every N "
            "(or run landscape probe and pass its file)"
        )
    figs = {
        f"fig4_gradient_landscape{suffix}": gradient_landscape(probes, title=title or None),
        f"fig10_gradient_distance{suffix}": gradient_distance_vs_step(probes),
    }
    if shifts:
        figs["fig3_ics"] = ics_figure(shifts, layers=layers)
    return figs


def plot_santurkar(
    runs: Runs,
    out_dir: str | Path | None = None,
    *,
    layers: list[str] | None = None,
    offline: str | Path | None = None,
    variants: Sequence[str] | None = None,
    options: FigureOptions | None = None,
) -> list[Path]:
    """Santurkar et al.'s Fig. 4 (loss, gradient predictiveness, effective beta along the
    gradient), Fig. 10 (gradient distance vs step size) and, if ICS was measured, Fig. 3.

    Reads ``/probe/<variant>`` and ``/ics/<variant>`` of each run (``landscape train
    --probe-every N --ics-every M``, or an ``H5Sink`` file), or an offline probe file of
    ``landscape probe`` (values averaged over its probe batches; x = checkpoint step), given
    as the run or with ``offline`` beside a run directory. Returns the files written.

    Args:
        runs: Run directories or files; several are drawn together (``out_dir`` required).
        out_dir: Output directory (default ``RUN/figures``, or beside a file given as run,
            its names prefixed with the file's stem).
        layers: ICS layers to show (Fig. 3).
        offline: An offline probe file to draw instead of the run's inline probes.
        variants: Variant names to draw (default: all found).
        options: Size, font size, style, formats and dpi (default: the builders' own).
    """
    paths = _as_list(runs)
    written: list[Path] = []
    with options_applied(options):
        figs = santurkar_figures(paths, layers=layers, offline=offline, variants=variants)
        for name, fig in figs.items():
            written += save_figure(fig, _target(paths, out_dir, name))
    return written


def _probes(run: Path, variants: Sequence[str] | None) -> dict[str, Series]:
    if store.kind_of(_run_file(run)) == "offline probe file":
        return offline_runs(run, variants)
    return load_runs(run, "probe", variants)


def _shifts(run: Path, variants: Sequence[str] | None) -> dict[str, Series]:
    if store.kind_of(_run_file(run)) == "offline probe file":
        return {}
    return load_runs(run, "ics", variants)


def offline_runs(path: str | Path, variants: Sequence[str] | None = None) -> dict[str, Series]:
    """Offline probes as Fig. 4 series: per checkpoint, the mean over probe batches.

    ``loss`` and ``grad_distance`` (T, K) = mean over batches b of the (T, B, K) values;
    ``beta`` (T,) = mean over batches of each batch's effective beta.
    """
    from landscape.probes import read_offline_probes

    rows_of = read_offline_probes(path)
    found = [v for v in VARIANTS if v in rows_of] + sorted(v for v in rows_of if v not in VARIANTS)
    out = {}
    for variant in chosen_variants(found, variants, Path(path), "offline probe"):
        if variant not in rows_of:
            continue
        rows = rows_of[variant]
        order = np.argsort(rows["step"], kind="stable")
        out[display_label(variant)] = {
            "step": rows["step"][order],
            "step_sizes": rows["step_sizes"][order],
            "loss": rows["loss"][order].mean(axis=1),
            "grad_distance": rows["grad_distance"][order].mean(axis=1),
            "beta": rows["beta_mean"][order],
        }
    return out
