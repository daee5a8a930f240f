"""``landscape demo``: the main job on the bundled default (digits, CPU, a few minutes)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import figures
from ..train import TrainConfig, train_pair
from ._common import progress_bars, quiet_option
from .train import report

#: The demo's setup: the paper's fixed-lr SGD on a small VGG, scaled to 8x8 digits.
DEMO_CONFIG = TrainConfig(
    model="vgg_small",
    dataset="digits",
    lr=0.1,
    batch_size=128,
    steps=600,
    eval_every=25,
    checkpoint_every=100,
    probe_every=20,
    ics_every=100,
    device="auto",
)


def register(main: click.Group) -> None:
    @main.command("demo")
    @click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("runs/demo"),
        show_default=True,
    )
    @click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
    @click.option("--steps", type=int, default=DEMO_CONFIG.steps, show_default=True)
    @quiet_option
    def demo(out: Path, overwrite: bool, steps: int, quiet: bool) -> None:
        """Train a BN and a plain small VGG on digits and draw the paper's figures."""
        from dataclasses import replace

        config = replace(DEMO_CONFIG, steps=steps)
        with progress_bars(quiet) as bars:
            result = train_pair(config, out, overwrite=overwrite, progress=bars)
        report(result)
        for p in [*figures.plot_training(out), *figures.plot_santurkar(out)]:
            click.echo(f"figure: {p}")
