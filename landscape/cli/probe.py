"""``landscape probe``: the Santurkar probes on every saved checkpoint of a run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np

from landscape import distributed
from landscape.cli.common import (
    BadInput,
    literal_choice,
    own_model_options,
    parse_key_values,
    progress_bars,
    quiet_option,
)
from landscape.data import load_dataset
from landscape.probes.from_checkpoints import (
    OfflineProbeConfig,
    probe_checkpoints,
    read_offline_probes,
)
from landscape.store import PROBES_FILE, VARIANTS, checkpoint_dir, list_checkpoints, load_checkpoint


def run_files(run: Path, variants: Sequence[str]) -> dict[str, list[Path]]:
    """``<run>/checkpoints/<variant>/step_*.pt`` per variant that has any."""
    if not run.is_dir():
        raise BadInput(f"no run directory {run}: pass a run written by landscape train")
    found = {v: [p for _, p in list_checkpoints(checkpoint_dir(run, v))] for v in variants}
    if not any(found.values()):
        raise BadInput(f"no {'/'.join(variants)} checkpoints in {run}: train with checkpoints")
    return {v: paths for v, paths in found.items() if paths}


def file_groups(
    files: Sequence[Path], variants: Sequence[str] | None, own: bool = False
) -> dict[str, list[Path]]:
    """Checkpoint files grouped by ``extra["variant"]`` (``"model"`` when absent, and for
    your ``own`` weights)."""
    groups: dict[str, list[Path]] = {}
    for path in files:
        variant = "model" if own else str(load_checkpoint(path).extra.get("variant", "model"))
        if variants is None or variant in variants:
            groups.setdefault(variant, []).append(path)
    if not groups:
        raise BadInput(f"none of the --checkpoint files is a {'/'.join(variants or [])} checkpoint")
    return groups


def summary_table(path: Path) -> str:
    """Per variant and step: median, mean ± std of beta over batches; max gradient distance."""
    head = f"{'variant':<8}{'step':>8}  {'beta median':>11}  {'beta mean ± std':>21}  max grad dist"
    lines = [head]
    for variant, cols in read_offline_probes(path).items():
        for k in np.argsort(cols["step"], kind="stable"):
            beta = f"{cols['beta_mean'][k]:.4g} ± {cols['beta_std'][k]:.2g}"
            lines.append(
                f"{variant:<8}{cols['step'][k]:>8}  {np.median(cols['beta'][k]):>11.4g}  "
                f"{beta:>21}  {np.max(cols['grad_distance'][k]):.4g}"
            )
    return "\n".join(lines)


def register(main: click.Group) -> None:
    @main.command("probe")
    @click.argument("run", required=False, type=click.Path(file_okay=False, path_type=Path))
    @click.option(
        "--checkpoint",
        "checkpoint_files",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Probe this checkpoint file instead of RUN's (repeatable).",
    )
    @click.option("--variant", type=click.Choice(["bn", "plain", "both"]), default="both")
    @click.option("--lr", type=float, default=None, help="Step-size unit [training lr].")
    @click.option("--low", type=float, default=None, help="Smallest step / lr [0.5; dln 0.01].")
    @click.option("--high", type=float, default=None, help="Largest step / lr [4; dln 30].")
    @click.option("--count", type=int, default=8, show_default=True, help="Number of step sizes.")
    @click.option("--spacing", type=literal_choice(OfflineProbeConfig, "spacing"), default=None,
                  help="[linear; dln log]")  # fmt: skip
    @click.option("--trust-factory", is_flag=True,
                  help="Rebuild models named by an import path (runs that code).")  # fmt: skip
    @click.option("--batches", "num_batches", type=int, default=8, show_default=True)
    @click.option("--batch-size", type=int, default=None, help="[training batch size]")
    @click.option("--batch-seed", type=int, default=0, show_default=True, help="Picks the batches.")
    @click.option(
        "--direction", type=literal_choice(OfflineProbeConfig, "direction"), default="gradient"
    )
    @click.option("--bn-mode", type=literal_choice(OfflineProbeConfig, "bn_mode"), default="train")
    @click.option("--ics", is_flag=True, help="Also internal covariate shift (Def. 2.1).")
    @click.option("--seed", type=int, default=0, show_default=True, help="Random direction seed.")
    @click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"HDF5 output [RUN/{PROBES_FILE}; required with --checkpoint].",
    )
    @click.option("--overwrite", is_flag=True, help="Replace --out instead of resuming it.")
    @click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
    @quiet_option
    @click.option(
        "--data",
        "data",
        help="The data set to probe on, by name or your own "
        "(package.module:factory returning a Dataset) [default: the checkpoint's]",
    )
    @own_model_options
    def probe_cmd(
        run: Path | None,
        checkpoint_files: tuple[Path, ...],
        variant: str,
        out: Path | None,
        overwrite: bool,
        device: str,
        quiet: bool,
        trust_factory: bool,
        data: str | None,
        model: str | None,
        model_option: tuple[str, ...],
        trust_pickle: bool,
        **settings,
    ) -> None:
        """Probe every checkpoint of RUN (or --checkpoint files: yours with --model) on fixed
        batches (resumable; writes HDF5)."""
        variants = None if variant == "both" else (variant,)
        if model is not None and not checkpoint_files:
            raise BadInput("--model goes with --checkpoint FILE (your own weights)")
        if checkpoint_files:
            files = file_groups(checkpoint_files, variants, own=model is not None)
        elif run is not None:
            files = run_files(run, variants or VARIANTS)
        else:
            raise BadInput("nothing to probe: pass a RUN directory or --checkpoint FILE")
        if out is None and run is None:
            raise BadInput("pass --out PATH with --checkpoint files (or a RUN directory)")
        out = out or run / PROBES_FILE
        totals: list[int] = []
        with distributed.session(device) as ranks, progress_bars(quiet or not ranks.main) as bars:
            bar = bars.simple("probe")

            def progress(done: int, total: int) -> None:
                totals.append(total)
                bar(done, total)

            config = OfflineProbeConfig(**settings)
            probe_checkpoints(
                files, out, config, device=device, overwrite=overwrite, progress=progress,
                trust_factory=trust_factory, dataset=None if data is None else load_dataset(data),
                model=model, model_options=parse_key_values(model_option, "model-option"),
                trust_pickle=trust_pickle,
            )  # fmt: skip
        if not ranks.main:  # under torchrun: rank 0 reports
            return
        if not totals:
            click.echo(f"nothing to do: {out} already holds every checkpoint")
        click.echo(summary_table(out))
        click.echo(f"probes written to {out}")
