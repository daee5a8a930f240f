"""Hessians over training -> figures (``landscape plot hessian``).

A *run* here is a run directory, a Hessian file of ``landscape hessian`` or a ``run.h5``
with inline Hessians (``landscape train --hessian-every N``). A run directory is drawn from
its ``hessian.h5`` when it has one, else from its ``run.h5``. Beside the curvature along the
gradient, the figure draws the probes' effective beta of the same run when there are any:
the offline probes of ``probes.h5`` beside a Hessian file (else the inline ``/probe`` rows of
the ``run.h5`` beside it), the inline ``/probe`` rows for inline Hessians (Santurkar's
Theorem 4.2 relates the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from landscape import store
from landscape.curvature.hessian_file import read_hessian_file
from landscape.figures.from_run import chosen_variants, load_runs, offline_runs, options_applied
from landscape.render import save_figure
from landscape.render.curvature import hessian_over_training, spectral_densities
from landscape.render.style import FigureOptions, display_label
from landscape.store import FIGURES, HESSIAN_FILE, PROBES_FILE, RUN_FILE, VARIANTS

__all__ = ["hessian_figures", "hessian_series", "plot_hessian"]

Series = dict[str, np.ndarray]


def _source(run: Path) -> tuple[Path, str]:
    """The file to draw and its kind (``hessian file`` or ``run log``)."""
    if run.is_dir():
        for name in (HESSIAN_FILE, RUN_FILE):
            if (kind := store.kind_of(run / name)) in ("hessian file", "run log"):
                return run / name, kind
        raise ValueError(f"{run} holds no {HESSIAN_FILE} or {RUN_FILE}: run landscape hessian "
                         "on it (or train with --hessian-every N)")  # fmt: skip
    kind = store.kind_of(run)
    if kind not in ("hessian file", "run log"):
        raise ValueError(f"{run} is not a Hessian file or a run log (it holds {kind}): pass the "
                         "file of landscape hessian, a run.h5 or a run directory")  # fmt: skip
    return run, kind


def hessian_series(run: str | Path, variants: Sequence[str] | None = None) -> dict[str, Series]:
    """Per variant label: ``step``, ``eigenvalues`` (T, k), and where measured ``trace``,
    ``trace_stderr``, ``curvature_gradient``, the density columns, and the probes'
    ``beta_step``/``beta`` of the same run."""
    path, kind = _source(Path(run))
    if kind == "hessian file":
        rows = read_hessian_file(path).rows
        found = [v for v in VARIANTS if v in rows] + sorted(v for v in rows if v not in VARIANTS)
        chosen = chosen_variants(found, variants, path, "Hessian")
        series = {display_label(v): rows[v] for v in chosen if v in rows}
        probes_file, run_log = path.with_name(PROBES_FILE), path.with_name(RUN_FILE)
        betas = {}
        if store.kind_of(probes_file) == "offline probe file":
            betas = offline_runs(probes_file, variants)
        elif store.kind_of(run_log) == "run log":  # the run's inline probes
            betas = load_runs(run_log, "probe", variants)
    else:
        series = load_runs(path, "hessian", variants)
        betas = load_runs(path, "probe", variants) if series else {}
    if not series:
        raise ValueError(f"{path} holds no Hessians: run landscape hessian (or train with "
                         "--hessian-every N)")  # fmt: skip
    for label, s in series.items():
        if label in betas and "beta" in betas[label]:
            s["beta_step"], s["beta"] = betas[label]["step"], betas[label]["beta"]
    return series


def hessian_figures(
    run: str | Path, *, variants: Sequence[str] | None = None, step: int | None = None
) -> dict[str, Figure]:
    """``hessian_over_training`` and, where the densities were measured,
    ``hessian_density`` (at ``step``, default the last checkpoint), by file name, unsaved."""
    series = hessian_series(run, variants)
    figs = {"hessian_over_training": hessian_over_training(series)}
    dens = {}
    for label, s in series.items():
        if "density" not in s:
            continue
        steps = np.asarray(s["step"])
        at = int(steps[-1]) if step is None else step
        if at not in steps:
            raise ValueError(f"{label} has no density at step {at}: choose one of "
                             f"{', '.join(map(str, steps.tolist()))}")  # fmt: skip
        i = int(np.flatnonzero(steps == at)[0])
        dens[label] = {"grid": s["density_grid"][i], "density": s["density"][i],
                       "eigenvalues": s["eigenvalues"][i], "step": at}  # fmt: skip
    if dens:
        figs["hessian_density"] = spectral_densities(dens)
    return figs


def plot_hessian(
    run: str | Path,
    out_dir: str | Path | None = None,
    *,
    variants: Sequence[str] | None = None,
    step: int | None = None,
    options: FigureOptions | None = None,
) -> list[Path]:
    """Top eigenvalues, trace and curvature along the gradient against the training step
    (BN and plain on the same axes, log scale) and the spectral densities side by side;
    returns the files written.

    Args:
        run: A run directory, a Hessian file or a ``run.h5`` with inline Hessians.
        out_dir: Output directory (default ``RUN/figures``, or beside a file, its names
            prefixed with the file's stem).
        variants: Variant names to draw (default: all found).
        step: The checkpoint whose density is drawn (default: the last).
        options: Size, font size, style, formats and dpi (default: the builders' own).
    """
    run = Path(run)
    written: list[Path] = []
    with options_applied(options):
        for name, fig in hessian_figures(run, variants=variants, step=step).items():
            if out_dir is not None:
                target = Path(out_dir) / name
            elif run.is_dir():
                target = run / FIGURES / name
            else:
                target = run.with_name(f"{run.stem}_{name}")
            written += save_figure(fig, target)
    return written
