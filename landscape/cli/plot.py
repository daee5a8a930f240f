"""``landscape plot ...``: paper-style figures from one run or several compared."""

from __future__ import annotations

from pathlib import Path

import click

from landscape import figures
from landscape.cli.common import comma_list, figure_flags
from landscape.render.style import FigureOptions

_RUNS = click.Path(exists=True, path_type=Path)
_VARIANTS_HELP = ("Variants to draw, e.g. bn or bn,plain or model [default: every one found]; "
                  "several runs each show theirs, one colour per series.")  # fmt: skip


def register(main: click.Group) -> None:
    @main.group("plot")
    def plot() -> None:
        """Render figures (PNG and PDF by default) from runs and slice files."""

    @plot.command("training")
    @click.argument("runs", nargs=-1, required=True, type=_RUNS)
    @click.option("--out", type=click.Path(path_type=Path), default=None,
                  help="Output path without suffix [default: RUN/figures/fig1_training; "
                  "required for several runs].")  # fmt: skip
    @click.option("--variants", help=_VARIANTS_HELP)
    @figure_flags
    def training(runs: tuple[Path, ...], out: Path | None, variants: str | None,
                 options: FigureOptions) -> None:  # fmt: skip
        """Training and held-out accuracy and loss of RUNS (Santurkar et al. Fig. 1).

        RUNS: run directories or run.h5 files; several are drawn together (several lrs or
        init scales), each series labelled by what differs in their configurations.
        """
        chosen = comma_list(variants)
        for p in figures.plot_training(runs, out, variants=chosen, options=options):
            click.echo(p)

    @plot.command("santurkar", short_help="Gradient landscape, predictiveness, ICS (Santurkar).")
    @click.argument("runs", nargs=-1, required=True, type=_RUNS)
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Output directory [default: RUN/figures, or beside a FILE.h5 as "
                  "FILE_fig4_...; required for several runs].")  # fmt: skip
    @click.option("--layer", "layers", multiple=True, help="ICS layer to show (repeatable).")
    @click.option("--offline", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Draw Figs. 4 and 10 of RUN from this file of `landscape probe` "
                  "(or give such files as RUNS).")  # fmt: skip
    @click.option("--variants", help=_VARIANTS_HELP)
    @figure_flags
    def santurkar(runs: tuple[Path, ...], out: Path | None, layers: tuple[str, ...],
                  offline: Path | None, variants: str | None,
                  options: FigureOptions) -> None:  # fmt: skip
        """Gradient landscape, predictiveness and ICS (Santurkar et al. Figs. 4, 10 and 3).

        RUNS: run directories, run.h5 files, H5Sink probe logs (ProbeCallback) or offline
        probe files (landscape probe); several are drawn together.
        """
        written = figures.plot_santurkar(runs, out, layers=list(layers) or None,
                                         offline=offline, variants=comma_list(variants),
                                         options=options)  # fmt: skip
        for p in written:
            click.echo(p)

    @plot.command("hessian", short_help="Hessian over training and spectral densities.")
    @click.argument("run", type=_RUNS)
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Output directory [default: RUN/figures, or beside a FILE.h5 as "
                  "FILE_hessian_...].")  # fmt: skip
    @click.option("--step", type=int, default=None,
                  help="The checkpoint whose spectral density is drawn [the last].")  # fmt: skip
    @click.option("--variants", help=_VARIANTS_HELP)
    @figure_flags
    def hessian(run: Path, out: Path | None, step: int | None, variants: str | None,
                options: FigureOptions) -> None:  # fmt: skip
        """Top eigenvalues, trace and curvature along the gradient over training (beside
        the probes' effective beta), and the spectral densities side by side.

        RUN: a run directory (its hessian.h5 of landscape hessian, else the inline Hessians
        of its run.h5), a Hessian file or a run.h5.
        """
        for p in figures.plot_hessian(run, out, variants=comma_list(variants), step=step,
                                      options=options):  # fmt: skip
            click.echo(p)

    @plot.command("sweep")
    @click.argument("sweep", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Output directory [default: beside SWEEP, as STEM_gradient_scaling "
                  "and STEM_trainability].")  # fmt: skip
    @figure_flags
    def sweep_cmd(sweep: Path, out: Path | None, options: FigureOptions) -> None:
        """Gradient norms at initialisation against the init scale (with fitted slopes) and
        the trainability map of a sweep file (landscape sweep init-scale)."""
        for p in figures.plot_sweep(sweep, out, options=options):
            click.echo(p)
