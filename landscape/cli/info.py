"""``landscape info``: what a run directory, an HDF5 file or a checkpoint holds."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..checkpoints import load_checkpoint
from ..describe import describe


def describe_checkpoint(path: Path) -> str:
    ckpt = load_checkpoint(path)
    n = sum(t.numel() for t in ckpt.model_state.values())
    lines = [
        f"checkpoint {path}",
        f"  step: {ckpt.step}",
        f"  model: {json.dumps(ckpt.spec, sort_keys=True)}",
        f"  tensors: {len(ckpt.model_state)} ({n:,} numbers)",
        f"  optimizer state: {'yes' if ckpt.optimizer_state else 'no'}",
        f"  extra: {json.dumps(ckpt.extra, sort_keys=True)}",
    ]
    return "\n".join(lines)


def register(main: click.Group) -> None:
    @main.command("info")
    @click.argument("path", type=click.Path(path_type=Path))
    def info_cmd(path: Path) -> None:
        """Describe a run directory, an HDF5 file or a checkpoint (.pt)."""
        if path.suffix == ".pt":
            click.echo(describe_checkpoint(path))
        else:
            click.echo(describe(path))
