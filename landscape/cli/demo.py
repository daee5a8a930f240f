"""``landscape demo``: the main job on the bundled default (digits, CPU, a few minutes)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from landscape import figures
from landscape.cli.common import BadInput, progress_bars, quiet_option
from landscape.cli.probe import run_files
from landscape.cli.train import report, rerun_advice
from landscape.curvature import HessianConfig, hessian_checkpoints
from landscape.figures import compare_figure
from landscape.render import save_figure
from landscape.slices import SliceConfig, slice_checkpoint
from landscape.store import FIGURES, HESSIAN_FILE, SLICES, checkpoint_dir, checkpoint_path
from landscape.train import TrainConfig, train_pair

#: The demo's setup: the paper's fixed-lr SGD on a small VGG, scaled to 8x8 digits, with
#: Santurkar's probes inline (step sizes lr x [0.5, 4]) and ICS every 50 steps.
DEMO_CONFIG = TrainConfig(
    model="vgg_small",
    dataset="digits",
    lr=0.1,
    batch_size=128,
    steps=400,
    eval_every=20,
    checkpoint_every=100,
    probe_every=10,
    ics_every=50,
    device="auto",
)
#: Li et al.'s filter-normalised random plane around each final network, on a coarser grid
#: than their 51 x 51 so the demo stays within a few minutes on two CPU cores.
DEMO_SLICE = SliceConfig(kind="random", x="-1:1:21", y="-1:1:21", examples=500, seed=0)
#: The Hessian at every checkpoint (``landscape hessian``): top 3 eigenvalues, the trace to
#: 10 % and the spectral density, on the first 256 training examples (a few seconds each).
DEMO_HESSIAN = HessianConfig(top_k=3, trace_rtol=0.1, trace_max_products=100, density=True,
                             density_probes=2, density_steps=30, examples=256)  # fmt: skip


def register(main: click.Group) -> None:
    @main.command("demo")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                  default=Path("runs/demo"), show_default=True)  # fmt: skip
    @click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
    @click.option("--resume", is_flag=True, help="Continue the demo in --out (a run stopped "
                  "before its end), then draw and slice it again.")  # fmt: skip
    @click.option("--steps", type=int, default=DEMO_CONFIG.steps, show_default=True)
    @click.option("--grid", type=click.IntRange(min=2), default=21, show_default=True,
                  help="Points per axis of the random-plane slices on [-1, 1].")  # fmt: skip
    @quiet_option
    def demo(out: Path, overwrite: bool, resume: bool, steps: int, grid: int, quiet: bool) -> None:
        """Train a BN and a plain small VGG on digits, probe them, take their Hessians, slice
        them, draw the figures."""
        if overwrite and resume:
            raise BadInput("--overwrite and --resume exclude each other: pick one")
        config = replace(DEMO_CONFIG, steps=steps)
        with progress_bars(quiet) as bars, rerun_advice(out, resume):
            result = train_pair(config, out, overwrite=overwrite, resume=resume, progress=bars)
            report(result)
            written = [*figures.plot_training(out), *figures.plot_santurkar(out)]
            hessian_checkpoints(run_files(out, config.variants), out / HESSIAN_FILE, DEMO_HESSIAN,
                                device=config.device, overwrite=True,
                                progress=bars.simple("hessian"))  # fmt: skip
            written += figures.plot_hessian(out)
            slices = []
            for v, r in result.variants.items():
                if r.status != "finished":
                    click.echo(f"{v}: no slice, the run {r.status}", err=True)
                    continue
                target = out / SLICES / f"{v}_final_random_plane.h5"
                slice_checkpoint(
                    checkpoint_path(checkpoint_dir(out, v), steps),
                    target,
                    replace(DEMO_SLICE, x=f"-1:1:{grid}", y=f"-1:1:{grid}", device=config.device),
                    overwrite=True,
                    progress=bars.simple(f"slice {v}"),
                )
                slices.append(target)
        if len(slices) == 2:
            fig, _ = compare_figure((slices[0], slices[1]), None, "contour", None, None)
            written += save_figure(fig, out / FIGURES / "li_slices_compare")
        for p in written:
            click.echo(f"figure: {p}")
