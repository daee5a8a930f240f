"""Figures of files: a run directory or slice files in, paper-style figures out.

Owns :mod:`.from_run` (``run.h5`` and offline probe files -> Santurkar et al. Figs. 1, 3, 4,
10), :mod:`.from_hessian` (Hessian files and inline Hessians -> curvature over training and
spectral densities), :mod:`.from_slices` (slice files -> one slice with its PCA trajectory,
or two side by side on one colour scale), :mod:`.from_sweep` (sweep files -> gradient
scaling and trainability) and :mod:`.vtk` (slice files -> VTK XML for
ParaView). The one place that joins the store and the pure builders of
:mod:`landscape.render`, used by the CLI and the demo (and by your own scripts).

May import: :mod:`landscape.render`, the readers of :mod:`landscape.probes`,
:mod:`landscape.comparison`,
:mod:`landscape.slices` and :mod:`landscape.curvature`, :mod:`landscape.store` and
:mod:`landscape._files`. Never trains or evaluates a model.
"""

from landscape.figures.from_hessian import hessian_figures, hessian_series, plot_hessian
from landscape.figures.from_run import (
    load_runs,
    offline_runs,
    plot_santurkar,
    plot_training,
    run_title,
    santurkar_figures,
    training_figure,
)
from landscape.figures.from_slices import (
    AUTO_LOG_RATIO,
    NARROW_SHARE,
    SURFACES,
    compare_figure,
    grid_text,
    slice_figure,
)
from landscape.figures.from_sweep import plot_sweep, sweep_figures
from landscape.figures.vtk import export_vtk

__all__ = [
    "AUTO_LOG_RATIO",
    "NARROW_SHARE",
    "SURFACES",
    "compare_figure",
    "export_vtk",
    "grid_text",
    "hessian_figures",
    "hessian_series",
    "load_runs",
    "offline_runs",
    "plot_hessian",
    "plot_santurkar",
    "plot_sweep",
    "plot_training",
    "run_title",
    "santurkar_figures",
    "slice_figure",
    "sweep_figures",
    "training_figure",
]
