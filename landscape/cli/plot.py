"""``landscape plot ...``: paper-style figures from runs and slice files."""

from __future__ import annotations

from pathlib import Path

import click

from landscape import figures


def register(main: click.Group) -> None:
    @main.group("plot")
    def plot() -> None:
        """Render figures (PNG and PDF) from a run directory or a slice file."""

    @plot.command("training")
    @click.argument("run", type=click.Path(path_type=Path))
    @click.option(
        "--out", type=click.Path(path_type=Path), default=None, help="Output path without suffix."
    )
    def training(run: Path, out: Path | None) -> None:
        """Training and held-out accuracy and loss, Standard vs Standard + BatchNorm (Fig 1)."""
        for p in figures.plot_training(run, out):
            click.echo(p)

    @plot.command("santurkar", short_help="Gradient landscape, predictiveness, ICS (Santurkar).")
    @click.argument("run", type=click.Path(path_type=Path))
    @click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Output directory (default: RUN/figures).",
    )
    @click.option("--layer", "layers", multiple=True, help="ICS layer to show (repeatable).")
    @click.option(
        "--offline",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Draw Figs. 4 and 10 from this file of `landscape probe` instead.",
    )
    def santurkar(
        run: Path, out: Path | None, layers: tuple[str, ...], offline: Path | None
    ) -> None:
        """Gradient landscape, predictiveness and ICS (Santurkar et al. Figs 4, 10 and 3)."""
        for p in figures.plot_santurkar(run, out, layers=list(layers) or None, offline=offline):
            click.echo(p)
