"""``landscape info``: what a run directory, an HDF5 file or a checkpoint holds."""

from __future__ import annotations

from pathlib import Path

import click

from landscape.cli.common import own_model_options, parse_key_values
from landscape.store import describe, describe_checkpoint


def register(main: click.Group) -> None:
    @main.command("info")
    @click.argument("path", type=click.Path(path_type=Path))
    @own_model_options
    def info_cmd(
        path: Path, model: str | None, model_option: tuple[str, ...], trust_pickle: bool
    ) -> None:
        """Describe a run directory, an HDF5 file, a checkpoint or your own weights (.pt)."""
        if path.suffix == ".pt" or model is not None:
            options = parse_key_values(model_option, "model-option")
            click.echo(describe_checkpoint(path, model, options, trust_pickle=trust_pickle))
        else:
            click.echo(describe(path))
