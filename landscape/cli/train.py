"""``landscape train``: a BN/plain pair with checkpoints and an HDF5 log."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import click

from landscape._files import WriteError
from landscape.cli.common import (
    BadInput,
    literal_choice,
    parse_key_values,
    progress_bars,
    quiet_option,
)
from landscape.curvature.inline import TRACE_MAX_PRODUCTS
from landscape.data import DATASETS
from landscape.store import RUN_FILE
from landscape.train import TrainConfig, train_pair


def _int_list(text: str | None, what: str) -> list[int]:
    if not text:
        return []
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise BadInput(f"{what} must be comma-separated integers, got {text!r}") from None


def train_options(f):
    """The options of ``train`` (in reverse order of display)."""
    opts = [
        click.option(
            "--model",
            default="vgg_small",
            show_default=True,
            help="Registry name or package.module:factory.",
        ),
        click.option(
            "--model-option",
            "model_options",
            multiple=True,
            metavar="KEY=VALUE",
            help="Family option, e.g. depth=3 (repeatable).",
        ),
        click.option(
            "--activation",
            type=literal_choice(TrainConfig, "activation"),
            default="relu",
            show_default=True,
        ),
        click.option(
            "--init",
            type=literal_choice(TrainConfig, "init"),
            default="glorot",
            show_default=True,
        ),
        click.option(
            "--init-scale",
            type=float,
            default=1.0,
            show_default=True,
            help="Multiplies every weight tensor after init.",
        ),
        click.option(
            "--bn",
            type=literal_choice(TrainConfig, "bn"),
            default="both",
            show_default=True,
            help="Which variants to train.",
        ),
        click.option(
            "--bn-noise",
            type=literal_choice(TrainConfig, "bn_noise"),
            default="none",
            show_default=True,
            help="santurkar: noise after every BN layer of the bn variant (Santurkar et al. "
            "Algorithm 1), training mode only.",
        ),
        click.option(
            "--dtype",
            type=literal_choice(TrainConfig, "dtype"),
            default="float32",
            show_default=True,
        ),
        click.option(
            "--dataset",
            "--data",
            "dataset",
            default="digits",
            show_default=True,
            help=f"{', '.join(DATASETS)}, or your own: package.module:factory returning a "
            "landscape Dataset.",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Where the dataset files are (or $LANDSCAPE_DATA_DIR).",
        ),
        click.option(
            "--download", is_flag=True, help="Fetch the dataset files and verify their checksums."
        ),
        click.option(
            "--data-option",
            "data_options",
            multiple=True,
            metavar="KEY=VALUE",
            help="Dataset option, e.g. subset=5000.",
        ),
        click.option(
            "--optimizer",
            type=literal_choice(TrainConfig, "optimizer"),
            default="sgd",
            show_default=True,
        ),
        click.option(
            "--lr",
            type=float,
            default=0.1,
            show_default=True,
            help="Fixed learning rate (the paper's setting).",
        ),
        click.option("--momentum", type=float, default=0.9, show_default=True),
        click.option("--weight-decay", type=float, default=0.0, show_default=True),
        click.option(
            "--lr-milestones",
            default=None,
            metavar="S1,S2",
            help="Step schedule: multiply lr by --lr-gamma at these steps.",
        ),
        click.option("--lr-gamma", type=float, default=0.1, show_default=True),
        click.option("--batch-size", type=int, default=128, show_default=True),
        click.option("--steps", type=int, default=1000, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--device",
            type=literal_choice(TrainConfig, "device"),
            default="auto",
            show_default=True,
        ),
        click.option("--eval-every", type=int, default=50, show_default=True),
        click.option(
            "--checkpoint-steps", default=None, metavar="S1,S2", help="Checkpoint at these steps."
        ),
        click.option("--checkpoint-every", type=int, default=0, help="Checkpoint every k steps."),
        click.option(
            "--checkpoint-log", type=int, default=0, help="This many log-spaced checkpoints."
        ),
        click.option(
            "--probe-every", type=int, default=0, help="Santurkar probes every N steps (0: never)."
        ),
        click.option(
            "--probe-low",
            type=float,
            default=None,
            help="Smallest step size, in units of the step's lr [default: 0.5; dln: 0.01].",
        ),
        click.option(
            "--probe-high",
            type=float,
            default=None,
            help="Largest step size, in units of lr [default: 4; dln: 30].",
        ),
        click.option(
            "--probe-count", type=int, default=8, show_default=True, help="Number of step sizes."
        ),
        click.option(
            "--probe-spacing",
            type=literal_choice(TrainConfig, "probe_spacing"),
            default=None,
            help="[default: linear; dln: log]",
        ),
        click.option(
            "--probe-direction",
            type=literal_choice(TrainConfig, "probe_direction"),
            default="gradient",
            show_default=True,
        ),
        click.option(
            "--probe-bn-mode",
            type=literal_choice(TrainConfig, "probe_bn_mode"),
            default="train",
            show_default=True,
        ),
        click.option(
            "--ics-every",
            type=int,
            default=0,
            help="Internal covariate shift every N steps, with the optimizer's update (0: never).",
        ),
        click.option(
            "--hessian-every",
            type=int,
            default=0,
            help="Hessian (top eigenvalues, trace, curvature along the gradient) every N steps "
            "and at the last (0: never).",
        ),
        click.option(
            "--hessian-top-k",
            type=int,
            default=1,
            show_default=True,
            help="Top Hessian eigenvalues (algebraically largest).",
        ),
        click.option(
            "--hessian-examples",
            type=int,
            default=512,
            show_default=True,
            help="The Hessian's data: the first N training examples.",
        ),
        click.option("--hessian-batch-size", type=int, default=256, show_default=True),
        click.option(
            "--hessian-bn-mode",
            type=literal_choice(TrainConfig, "hessian_bn_mode"),
            default="train",
            show_default=True,
        ),
        click.option(
            "--hessian-trace-rtol",
            type=float,
            default=0.05,
            show_default=True,
            help="Hutch++ trace to this relative standard error (0: its whole budget of "
            f"{TRACE_MAX_PRODUCTS} products).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def config_from_options(kw: dict) -> TrainConfig:
    """Pop the train options from ``kw`` and build a validated TrainConfig."""
    names = [
        "model", "activation", "init", "init_scale", "bn", "bn_noise", "dtype", "dataset",
        "data_dir", "download", "optimizer", "lr", "momentum", "weight_decay", "lr_gamma",
        "batch_size", "steps", "seed", "device", "eval_every", "checkpoint_every", "checkpoint_log",
        "probe_every", "probe_low", "probe_high", "probe_count", "probe_spacing",
        "probe_direction", "probe_bn_mode", "ics_every", "hessian_every", "hessian_top_k",
        "hessian_examples", "hessian_batch_size", "hessian_bn_mode", "hessian_trace_rtol",
    ]  # fmt: skip
    args = {n: kw.pop(n) for n in names}
    args["model_options"] = parse_key_values(kw.pop("model_options"), "model-option")
    args["data_options"] = parse_key_values(kw.pop("data_options"), "data-option")
    args["lr_milestones"] = _int_list(kw.pop("lr_milestones"), "--lr-milestones")
    args["checkpoint_steps"] = _int_list(kw.pop("checkpoint_steps"), "--checkpoint-steps")
    config = TrainConfig(**args)
    config.validate()
    return config


def report(result) -> None:
    for v, r in result.variants.items():
        if r.status == "diverged":
            click.echo(f"{v:>6}: {r.message}", err=True)
            continue
        acc = "" if math.isnan(r.eval_accuracy) else f", accuracy {r.eval_accuracy:.1%}"
        numbers = f"train loss {r.final_loss:.4f}, held-out loss {r.eval_loss:.4f}{acc}"
        if r.already_ended:  # a resume of a finished variant: the stored numbers
            done = f"already finished at step {r.steps_done}, nothing trained"
            click.echo(f"{v:>6}: {done}; {numbers}")
        else:
            click.echo(f"{v:>6}: {r.steps_done} steps, {numbers}")
    click.echo(f"run written to {result.out_dir}")


#: The rerun a refused write names (landscape._files.WriteError), made exact by rerun_advice.
_RERUN = "run the same command again (train: with --resume)"


@contextlib.contextmanager
def rerun_advice(out: Path, resume: bool) -> Iterator[None]:
    """A refused write (a full disk) during a run of ``train`` or ``demo`` names the rerun
    that continues it: the same command, with ``--resume`` where the run's log is kept; a new
    run that failed before its first checkpoint leaves nothing behind (no ``--resume``)."""
    try:
        yield
    except WriteError as exc:
        if resume:
            rerun = "run the same command again"
        elif (out / RUN_FILE).exists():
            rerun = "run the same command again with --resume"
        else:
            rerun = "run the same command again (the new run left nothing behind)"
        exc.args = (str(exc).replace(_RERUN, rerun),)
        raise


def register(main: click.Group) -> None:
    @main.command("train")
    @train_options
    @click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        required=True,
        help="Run directory.",
    )
    @click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
    @click.option(
        "--resume", is_flag=True, help="Continue the run in --out from its last checkpoints."
    )
    @quiet_option
    def train_cmd(out: Path, overwrite: bool, resume: bool, quiet: bool, **kw) -> None:
        """Train a BN network and its plain twin as a fair pair (same seed, data order)."""
        if overwrite and resume:
            raise BadInput("--overwrite and --resume exclude each other: pick one")
        config = config_from_options(kw)
        with progress_bars(quiet) as bars, rerun_advice(out, resume):
            result = train_pair(config, out, overwrite=overwrite, resume=resume, progress=bars)
        report(result)
