"""``landscape sweep init-scale``: does BN make large initial weights safe? (resumable)"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import click
import torch

from landscape import figures
from landscape._device import cpu_description
from landscape.cli.common import (
    BadInput,
    comma_list,
    literal_choice,
    parse_key_values,
    progress_bars,
    quiet_option,
)
from landscape.comparison import (
    PROBE_METRICS,
    accuracy_table,
    probes_report,
    ratio_table,
    read_sweep,
    slopes_table,
    trainability_table,
)
from landscape.data import DATASETS
from landscape.render.style import FigureOptions
from landscape.studies import (
    DEFAULT_ACTIVATIONS,
    DEFAULT_SCALES,
    DEFAULT_SEEDS,
    GRAD_STEPS,
    SweepConfig,
    default_train,
    init_scale_sweep,
)
from landscape.train import TrainConfig

_DEFAULTS = default_train()
#: One thread per process: the sweep's tiny models gain nothing from more, and on a busy
#: 2-core machine two threads made a pair 6.6x slower (89 vs 13.6 s, load 6-7).
SWEEP_THREADS = 1


def _numbers(text: str, kind: type, option: str) -> list:
    try:
        return [kind(t) for t in comma_list(text) or []]
    except ValueError:
        raise BadInput(
            f"{option} takes {kind.__name__}s separated by commas, got {text!r}"
        ) from None


@contextlib.contextmanager
def _divergence_is_an_outcome() -> Iterator[None]:
    """The trainer's warning that a network diverged, silenced for the block (without
    ``-v``): here it is an outcome the tables report, not a problem."""
    trainer = logging.getLogger("landscape.train")
    before = trainer.level
    if not logging.getLogger().isEnabledFor(logging.INFO):
        trainer.setLevel(logging.ERROR)
    try:
        yield
    finally:
        trainer.setLevel(before)


def report_text(path: Path, metric: str = "beta") -> str:
    """The sweep's tables: slopes, trainability, accuracy, probes (per seed, median, range)."""
    sweep = read_sweep(path)
    pending = int((~sweep.computed).sum())
    parts = [
        "Slope of log ||dL/dW_l|| at initialisation on log init scale, median [min..max] over "
        "seeds:",
        slopes_table(sweep),
        "\nThe exploding measure at initialisation, max_l ||dL/dW_l|| / min_l ||dL/dW_l||, "
        "median [min..max] over seeds:",
        ratio_table(sweep),
        "\nOutcomes, seeds per cell (T trained, S stalled at chance, D diverged):",
        trainability_table(sweep),
        "\nHeld-out accuracy after training, median [min..max] over the seeds that did not "
        "diverge:",
        accuracy_table(sweep),
        "\nProbes, BN vs plain: " + probes_report(sweep, metric),
    ]
    if pending:
        parts.append(f"\n{pending} cells not computed yet: run the same command again")
    return "\n".join(parts)


def register(main: click.Group) -> None:
    @main.group("sweep")
    def sweep() -> None:
        """Sweeps of BN/plain pairs that answer one question each."""

    @sweep.command("init-scale")
    @click.option("--scales", default=",".join(f"{s:g}" for s in DEFAULT_SCALES),
                  show_default=True, help="Init scales a: every weight tensor x a.")  # fmt: skip
    @click.option("--activation", "activations", default=",".join(DEFAULT_ACTIVATIONS),
                  show_default=True, help="Activations, separated by commas.")  # fmt: skip
    @click.option("--bn", type=literal_choice(TrainConfig, "bn"), default="both",
                  show_default=True, help="Which variants each cell trains.")  # fmt: skip
    @click.option("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), show_default=True,
                  help="Seeds: initial weights, batch order, train/test split.")  # fmt: skip
    @click.option("--model", default=_DEFAULTS.model, show_default=True,
                  help="Registry name or package.module:factory.")  # fmt: skip
    @click.option("--model-option", "model_options", multiple=True, metavar="KEY=VALUE",
                  help="Family option, e.g. width=8 (repeatable).")  # fmt: skip
    @click.option("--init", type=literal_choice(TrainConfig, "init"), default=_DEFAULTS.init,
                  show_default=True)  # fmt: skip
    @click.option("--dataset", "--data", "dataset", default=_DEFAULTS.dataset, show_default=True,
                  help=f"{', '.join(DATASETS)}, or package.module:factory.")  # fmt: skip
    @click.option("--data-dir", type=click.Path(file_okay=False), default=None)
    @click.option("--data-option", "data_options", multiple=True, metavar="KEY=VALUE")
    @click.option("--optimizer", type=literal_choice(TrainConfig, "optimizer"),
                  default=_DEFAULTS.optimizer, show_default=True)  # fmt: skip
    @click.option("--lr", type=float, default=_DEFAULTS.lr, show_default=True)
    @click.option("--batch-size", type=int, default=_DEFAULTS.batch_size, show_default=True)
    @click.option("--steps", type=int, default=_DEFAULTS.steps, show_default=True)
    @click.option("--probe-every", type=int, default=_DEFAULTS.probe_every, show_default=True,
                  help="Santurkar probes every N steps (0: none).")  # fmt: skip
    @click.option("--grad-steps", type=int, default=GRAD_STEPS, show_default=True,
                  help="Per-layer gradient norms at steps 0..N-1.")  # fmt: skip
    @click.option("--device", type=literal_choice(TrainConfig, "device"), default="auto",
                  show_default=True)  # fmt: skip
    @click.option("--threads", type=int, default=SWEEP_THREADS, show_default=True,
                  help="torch intra-op threads (0: torch's default).")  # fmt: skip
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                  default=Path("runs/init_scale/sweep.h5"), show_default=True,
                  help="The sweep file; one of the same settings is continued.")  # fmt: skip
    @click.option("--overwrite", is_flag=True, help="Replace a sweep file of other settings.")
    @click.option("--keep-runs", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Keep each pair's run directory here [scratch, removed].")  # fmt: skip
    @click.option("--metric", type=click.Choice(list(PROBE_METRICS)), default="beta",
                  show_default=True, help="The probe metric the report compares.")  # fmt: skip
    @click.option("--figures/--no-figures", "draw", default=True, show_default=True,
                  help="Draw the figures beside --out.")  # fmt: skip
    @quiet_option
    def init_scale(scales: str, activations: str, bn: str, seeds: str, model_options: tuple,
                   data_options: tuple, grad_steps: int, threads: int | None, out: Path,
                   overwrite: bool, keep_runs: Path | None, metric: str, draw: bool,
                   quiet: bool, **train) -> None:  # fmt: skip
        """Does BN make large initial weights safe? BN/plain pairs over init scales,
        activations and seeds: per-layer gradients at initialisation, outcomes (trained /
        stalled / diverged), probes; one resumable HDF5 file, tables and figures."""
        if threads < 0:
            raise BadInput(f"--threads must be >= 0, got {threads}")
        if threads:
            torch.set_num_threads(threads)
        options = {
            "model_options": parse_key_values(model_options, "model-option"),
            "data_options": parse_key_values(data_options, "data-option"),
        }
        base = TrainConfig(**{**_DEFAULTS.to_dict(), **train, "bn": bn, **options})
        config = SweepConfig(
            scales=_numbers(scales, float, "--scales"),
            activations=comma_list(activations) or [],
            seeds=_numbers(seeds, int, "--seeds"),
            grad_steps=grad_steps,
            train=base,
        )
        t0 = time.perf_counter()
        with progress_bars(quiet) as bars, _divergence_is_an_outcome():
            init_scale_sweep(config, out, overwrite=overwrite, keep_runs=keep_runs,
                             progress=bars.simple("pairs"))  # fmt: skip
        wall = time.perf_counter() - t0
        click.echo(report_text(out, metric))
        click.echo(f"\n{cpu_description()}; {torch.get_num_threads()} threads; {wall:.0f} s")
        click.echo(f"sweep written to {out}")
        if draw:
            for p in figures.plot_sweep(out, options=FigureOptions(formats=("png",))):
                click.echo(p)
