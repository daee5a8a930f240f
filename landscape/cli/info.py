"""``landscape info``: what a run directory, an HDF5 file or a checkpoint holds."""

from __future__ import annotations

from pathlib import Path

import click

from landscape.store import describe, describe_checkpoint


def register(main: click.Group) -> None:
    @main.command("info")
    @click.argument("path", type=click.Path(path_type=Path))
    def info_cmd(path: Path) -> None:
        """Describe a run directory, an HDF5 file or a checkpoint (.pt)."""
        if path.suffix == ".pt":
            click.echo(describe_checkpoint(path))
        else:
            click.echo(describe(path))
