"""``landscape hessian``: the Hessian of every saved checkpoint of a run (resumable)."""

from __future__ import annotations

from pathlib import Path

import click

from landscape.cli.common import (
    BadInput,
    comma_list,
    literal_choice,
    progress_bars,
    quiet_option,
)
from landscape.cli.probe import file_groups, run_files
from landscape.curvature.from_checkpoints import HessianConfig, hessian_checkpoints
from landscape.curvature.hessian_file import read_hessian_file
from landscape.data import load_dataset
from landscape.store import HESSIAN_FILE, VARIANTS, checkpoint_step


def summary_table(path: Path) -> str:
    """Per variant and step: the top eigenvalues, the trace +- its standard error and the
    curvature along the gradient."""
    stored = read_hessian_file(path)
    head = f"{'variant':<8}{'step':>8}  {'top eigenvalues':<34}{'trace':>20}  {'gHg/|g|^2':>10}"
    lines = [head]
    for variant, rows in stored.rows.items():
        for i, step in enumerate(rows["step"]):
            top = ", ".join(f"{v:.4g}" for v in rows["eigenvalues"][i][:4])
            top += ", ..." if rows["eigenvalues"].shape[1] > 4 else ""
            trace = "-"
            if "trace" in rows:
                trace = f"{rows['trace'][i]:.4g} ± {rows['trace_stderr'][i]:.2g}"
                trace += "" if rows["trace_converged"][i] else "*"
            curv = rows["curvature_gradient"][i]
            lines.append(f"{variant:<8}{step:>8}  {top:<34}{trace:>20}  {curv:>10.4g}")
    return "\n".join(lines)


def _at_steps(files: dict[str, list[Path]], at: str) -> dict[str, list[Path]]:
    """The files of the steps ``at`` names (every variant must have each)."""
    try:
        steps = [int(s) for s in comma_list(at) or []]
    except ValueError:
        raise BadInput(
            f"--at takes steps separated by commas, e.g. 0,300,600; got {at!r}"
        ) from None
    chosen = {}
    for variant, paths in files.items():
        by_step = {checkpoint_step(p): p for p in paths}
        if missing := [s for s in steps if s not in by_step]:
            raise BadInput(f"no {variant} checkpoint of step {missing[0]}: choose from "
                           f"{', '.join(map(str, sorted(by_step)))}")  # fmt: skip
        chosen[variant] = [by_step[s] for s in steps]
    return chosen


def register(main: click.Group) -> None:
    @main.command("hessian")
    @click.argument("run", required=False, type=click.Path(file_okay=False, path_type=Path))
    @click.option("--checkpoint", "checkpoint_files", multiple=True,
                  type=click.Path(path_type=Path),
                  help="A checkpoint file instead of RUN's (repeatable).")  # fmt: skip
    @click.option("--variant", type=click.Choice(["bn", "plain", "both"]), default="both")
    @click.option("--at", help="Only the checkpoints of these steps, e.g. 0,300,600 "
                  "[every one].")  # fmt: skip
    @click.option("--top-k", type=int, default=5, show_default=True,
                  help="Top (algebraically largest) eigenvalues.")  # fmt: skip
    @click.option("--tol", type=float, default=1e-4, show_default=True,
                  help="Relative tolerance of the eigenvalues (Lanczos).")  # fmt: skip
    @click.option("--trace/--no-trace", default=True, show_default=True,
                  help="The trace by Hutch++.")  # fmt: skip
    @click.option("--trace-rtol", type=float, default=0.05, show_default=True,
                  help="Relative standard error the trace is taken to.")  # fmt: skip
    @click.option("--trace-max-products", type=int, default=500, show_default=True)
    @click.option("--density", is_flag=True, help="The spectral density (Lanczos quadrature).")
    @click.option("--density-probes", type=int, default=4, show_default=True)
    @click.option("--density-steps", type=int, default=60, show_default=True)
    @click.option("--examples", type=int, default=512, show_default=True,
                  help="The first N training examples: the data the Hessian is of.")  # fmt: skip
    @click.option("--batch-size", type=int, default=256, show_default=True,
                  help="Batches of them (the mean loss weights each by its size; with "
                  "--bn-mode train each batch normalizes by its own statistics).")  # fmt: skip
    @click.option("--bn-mode", type=literal_choice(HessianConfig, "bn_mode"),
                  default="train", help="train: batch statistics (the running ones "
                  "untouched); eval: the running statistics.")  # fmt: skip
    @click.option("--seed", type=int, default=0, show_default=True, help="Random vectors.")
    @click.option("--data", help="The data set by name or package.module:factory "
                  "[default: the checkpoint's].")  # fmt: skip
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help=f"HDF5 output [RUN/{HESSIAN_FILE}; required with "
                  "--checkpoint].")  # fmt: skip
    @click.option("--overwrite", is_flag=True, help="Replace --out instead of resuming it.")
    @click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
    @click.option("--trust-factory", is_flag=True,
                  help="Rebuild models named by an import path (runs that code).")  # fmt: skip
    @quiet_option
    def hessian_cmd(
        run: Path | None, checkpoint_files: tuple[Path, ...], variant: str, at: str | None,
        out: Path | None,
        overwrite: bool, device: str, trust_factory: bool, data: str | None, quiet: bool,
        **settings,
    ) -> None:  # fmt: skip
        """Top eigenvalues, trace, curvature along the gradient and (--density) spectral
        density of the Hessian at every checkpoint of RUN (or --checkpoint files), into one
        HDF5 file; a rerun computes only the checkpoints it lacks."""
        variants = VARIANTS if variant == "both" else (variant,)
        if checkpoint_files:
            files = file_groups(checkpoint_files, None if variant == "both" else variants)
        elif run is not None:
            files = run_files(run, variants)
        else:
            raise BadInput("nothing to compute: pass a RUN directory or --checkpoint FILE")
        if at is not None:
            files = _at_steps(files, at)
        if out is None and run is None:
            raise BadInput("pass --out PATH with --checkpoint files (or a RUN directory)")
        out = out or run / HESSIAN_FILE
        config = HessianConfig(**settings)
        totals: list[int] = []
        with progress_bars(quiet) as bars:
            bar = bars.simple("hessian")

            def progress(done: int, total: int) -> None:
                totals.append(total)
                bar(done, total)

            hessian_checkpoints(
                files, out, config, dataset=None if data is None else load_dataset(data),
                device=device, overwrite=overwrite, progress=progress, trust_factory=trust_factory,
            )  # fmt: skip
        if not totals:
            click.echo(f"nothing to do: {out} already holds every checkpoint")
        table = summary_table(out)
        click.echo(table)
        if "*" in table:
            click.echo("* the trace did not reach --trace-rtol within --trace-max-products")
        click.echo(f"Hessians written to {out}")
