"""Rendering: plain arrays and mappings in, :class:`matplotlib.figure.Figure` out.

Every builder is pure (no pyplot, no global rc changes, no file access); write figures with
:func:`save_figure`. Series are passed as a mapping label -> data; the labels "Standard" and
"Standard + BatchNorm" (or the storage names ``plain`` and ``bn``) keep the same colour in
every figure.

Owns :mod:`.style` (colours, labels, rc settings, ``save_figure``), :mod:`.common` (values
and text made fit to plot, shared by the builders), :mod:`.curves` (training curves),
:mod:`.santurkar` (gradient landscape, gradient change), :mod:`.covariate_shift` (ICS),
:mod:`.curvature` (the Hessian over training, spectral densities), :mod:`.distributions`
(training accuracy beside the distribution of activations, Santurkar et al. Figs. 1c and 2),
:mod:`.lines` (1-D slices), :mod:`.surfaces` (2-D slices), :mod:`.colour_scale` (levels
shared by compared panels) and :mod:`.sweep` (the init-scale sweep: gradient scaling,
trainability map).

May import: :mod:`landscape._files` (atomic writes of figures), the output guard of
:mod:`landscape.store` and matplotlib. Never the numerical wings or training, and no file is
read here: files become figures in :mod:`landscape.figures`.
"""

from landscape.render.covariate_shift import ics_figure
from landscape.render.curvature import hessian_over_training, spectral_densities
from landscape.render.curves import divergence_step, moving_average, training_curves
from landscape.render.distributions import activation_distributions
from landscape.render.lines import compare_lines, line_plot
from landscape.render.santurkar import gradient_distance_vs_step, gradient_landscape
from landscape.render.style import (
    LABELS,
    PALETTE,
    RC_PARAMS,
    FigureOptions,
    color_for,
    colors_for,
    display_label,
    figure_options,
    figure_style,
    save_figure,
)
from landscape.render.surfaces import SurfaceKind, compare_surfaces, surface_plot
from landscape.render.sweep import OUTCOME_COLORS, gradient_scaling, trainability_map

__all__ = [
    # style and output
    "LABELS",
    "PALETTE",
    "RC_PARAMS",
    "FigureOptions",
    "color_for",
    "colors_for",
    "display_label",
    "figure_options",
    "figure_style",
    "save_figure",
    # training curves (Santurkar et al. Fig. 1)
    "divergence_step",
    "moving_average",
    "training_curves",
    # activation distributions over training (Santurkar et al. Fig. 2, noisy BN)
    "activation_distributions",
    # gradient probes and internal covariate shift (Santurkar et al. Figs. 3, 4, 10)
    "gradient_distance_vs_step",
    "gradient_landscape",
    "ics_figure",
    # curvature (Ghorbani et al. 2019; Yao et al. 2020)
    "hessian_over_training",
    "spectral_densities",
    # loss-landscape slices (Li et al.)
    "SurfaceKind",
    "compare_lines",
    "compare_surfaces",
    "line_plot",
    "surface_plot",
    # the init-scale sweep (Ioffe & Szegedy 2015, Sec. 3.3)
    "OUTCOME_COLORS",
    "gradient_scaling",
    "trainability_map",
]
