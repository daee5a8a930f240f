"""``landscape plot ...``: paper-style figures from runs and slice files."""

from __future__ import annotations

from pathlib import Path

import click

from .. import figures


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
        """Fig. 1: training and held-out accuracy and loss, Standard vs Standard + BatchNorm."""
        for p in figures.plot_training(run, out):
            click.echo(p)
