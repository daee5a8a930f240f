"""``landscape slice`` and ``landscape plot slice|compare``: Li et al.'s loss-landscape slices."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from landscape import distributed
from landscape.cli.common import (
    BadInput,
    figure_flags,
    literal_choice,
    own_model_options,
    parse_key_values,
    progress_bars,
    quiet_option,
)
from landscape.data import DEFAULT_EXAMPLES
from landscape.figures.from_slices import (
    AUTO_LOG_RATIO,
    NARROW_SHARE,
    SURFACES,
    compare_figure,
    grid_text,
    slice_figure,
)
from landscape.render import save_figure
from landscape.render.style import FigureOptions, figure_options
from landscape.slices import DEFAULT_RECALIBRATE_BATCHES, SliceConfig, read_grid, slice_checkpoint
from landscape.store import CHECKPOINTS, SLICES

_PATH = click.Path(path_type=Path)
_FILE = click.Path(dir_okay=False, path_type=Path)
_RANGE = "START:STOP:NUM"

# (declarations, settings) of `landscape slice`'s options, in the order --help shows them.
SLICE_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--to",), dict(type=_PATH, help="Interpolate from CHECKPOINT to this checkpoint (1-D).")),
    (("--plane-through",), dict(nargs=2, type=_PATH, metavar="B C", default=None,
                                help="Plane through CHECKPOINT (0,0), B (1,0) and C (0,1).")),
    (("--pca",), dict(type=_PATH, metavar="DIR", help="PCA plane of a run's trajectory, e.g. "
                      "RUN/checkpoints/bn, around CHECKPOINT (its last point).")),
    (("--x",), dict(metavar=_RANGE, help="[default: -1:1:51; between checkpoints -0.5:1.5:51; "
                    "PCA: the trajectory's span]")),
    (("--y",), dict(metavar=_RANGE, help="Second axis (a random plane instead of a line).")),
    (("--seed",), dict(type=click.IntRange(-(2**63), 2**64 - 1), default=0,
                       help="Seed of the random directions.")),
    (("--normalization",), dict(type=literal_choice(SliceConfig, "normalization"),
                                default="filter")),
    (("--ignore",), dict(type=literal_choice(SliceConfig, "ignore"), default="biasbn",
                         help="biasbn: biases and BN parameters do not move.")),
    (("--orthogonalize",), dict(is_flag=True, help="Make d2 orthogonal to d1.")),
    (("--bn-mode", "--bn", "bn_mode"), dict(type=literal_choice(SliceConfig, "bn_mode"),
                                            default="eval", help="BN statistics: running, of "
                                            "the batch, or re-estimated per point.")),
    (("--recalibrate-batches",), dict(type=click.IntRange(min=1),
                                      default=DEFAULT_RECALIBRATE_BATCHES)),
    (("--dataset", "--data", "dataset"), dict(help="A data set by name, or your own: "
                                              "package.module:factory returning a Dataset or "
                                              "batches [default: the checkpoint's]")),
    (("--loss",), dict(metavar="PKG.MODULE:NAME", help="Your loss: a loss_fn(outputs, targets) "
                       "or a landscape.batch_loss [default: the data's task: cross-entropy or "
                       "MSE]")),
    (("--split",), dict(type=literal_choice(SliceConfig, "split"), default="train")),
    (("--examples",), dict(type=click.IntRange(min=0), default=DEFAULT_EXAMPLES,
                           help="Fixed evaluation subset (0: all).")),
    (("--batch-size", "eval_batch_size"), dict(type=click.IntRange(min=1), help="[default: "
                                               "1024 with --bn-mode eval, else the training "
                                               "batch size]")),
    (("--precision",), dict(type=literal_choice(SliceConfig, "precision"), default="native")),
    (("--device",), dict(type=literal_choice(SliceConfig, "device"), default="auto")),
    (("--out",), dict(type=_FILE, help="[default: RUN/slices/VARIANT_step_N_KIND.h5]")),
    (("--overwrite",), dict(is_flag=True, help="Replace a slice file that holds other settings.")),
    (("--trust-factory",), dict(is_flag=True, help="Rebuild models named by an import path in "
                                "the checkpoint (runs that code).")),
]  # fmt: skip


def _default_out(checkpoint: Path, kind: str, two_d: bool) -> Path:
    """``RUN/slices/<variant>_step_XXXXXXX_<kind>.h5`` for a checkpoint of a run directory."""
    name = {"random": "random_plane" if two_d else "random_line"}.get(kind, kind)
    if checkpoint.parent.parent.name == CHECKPOINTS:
        run = checkpoint.parent.parent.parent
        return run / SLICES / f"{checkpoint.parent.name}_{checkpoint.stem}_{name}.h5"
    return checkpoint.with_name(f"{checkpoint.stem}_{name}.h5")


def _this_run(report: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """Count only this run's points, so a resumed run's bar starts at 0 and its ETA is sound."""
    start: list[int] = []

    def progress(done: int, total: int) -> None:
        start[:] = start or [done - 1]
        report(done - start[0], total - start[0])

    return progress


def _slice_command(main: click.Group) -> None:
    def slice_cmd(checkpoint: Path, to: Path | None, plane_through: tuple[Path, Path] | None,
                  pca: Path | None, out: Path | None, overwrite: bool, quiet: bool,
                  trust_factory: bool, model: str | None, model_option: tuple[str, ...],
                  trust_pickle: bool, **kw: Any) -> None:  # fmt: skip
        """Loss around CHECKPOINT: along random directions, towards other checkpoints or on
        the PCA plane of its run (Li et al. 2018), into a resumable HDF5 file."""
        if sum(v is not None for v in (to, plane_through, pca)) > 1:
            raise BadInput("--to, --plane-through and --pca exclude each other: pick one")
        kind = "pca" if pca else "plane" if plane_through else "interpolate" if to else "random"
        b, c = plane_through or (to, None)
        options = parse_key_values(model_option, "model-option")
        config = SliceConfig(kind=kind, model=model, model_options=options, **kw)
        out = out or _default_out(checkpoint, kind, kw["y"] is not None)
        with (
            distributed.session(config.device) as ranks,
            progress_bars(quiet or not ranks.main) as bars,
        ):
            done = slice_checkpoint(checkpoint, out, config, to=b, third=c, trajectory=pca,
                                    overwrite=overwrite, progress=_this_run(bars.simple("slice")),
                                    trust_factory=trust_factory,
                                    trust_pickle=trust_pickle)  # fmt: skip
        if not ranks.main:  # under torchrun: rank 0 reports
            return
        if done is None:
            click.echo(f"already complete: {out}")
        res = read_grid(out)
        finite = res.values["loss"][np.isfinite(res.values["loss"])]
        span = f"min {finite.min():.4g}, max {finite.max():.4g}" if finite.size else "not finite"
        click.echo(f"{out}: {grid_text(res.shape)}, loss {span}")

    cmd = own_model_options(quiet_option(slice_cmd))
    for decls, settings in reversed(SLICE_OPTIONS):
        show = "default" in settings and not settings.get("is_flag")
        cmd = click.option(*decls, show_default=show, **settings)(cmd)
    cmd = click.argument("checkpoint", type=_PATH)(cmd)
    main.command("slice")(cmd)


def _tag(kind: str, log: bool | None, metric: str | None) -> str:
    """Default figure name suffix, so that variants of a plot do not overwrite each other."""
    scale = {True: ["log"], False: ["linear"], None: []}[log]
    return "_".join([kind, *scale, *([metric] if metric else [])])


def _plot_commands(plot: click.Group) -> None:
    def common(f: Any) -> Any:
        f = click.option("--out", type=_PATH, help="Output path without suffix.")(f)
        f = click.option("--metric", help="loss or accuracy [default: loss; 1-D: both]")(f)
        f = click.option("--log/--linear", default=None, help="Loss scale [default: log when "
                         f"max/min > {AUTO_LOG_RATIO:g}, or, comparing, when one file spans "
                         f"< {NARROW_SHARE:.0%} of the shared range]")(f)  # fmt: skip
        kinds = click.Choice([*SURFACES, "line"])
        return click.option("--kind", type=kinds, help="[default: line (1-D), contour (2-D; "
                            "heatmap for a single row or column)]")(f)  # fmt: skip

    @plot.command("slice")
    @click.argument("file", type=_FILE)
    @common
    @figure_flags
    def plot_slice(file: Path, kind: str | None, log: bool | None, metric: str | None,
                   out: Path | None, options: FigureOptions) -> None:  # fmt: skip
        """A slice file: 1-D loss and accuracy, or 2-D contours, heatmap or surface."""
        with figure_options(options):
            fig, kind = slice_figure(file, kind, log, metric)
            target = out or file.with_name(f"{file.stem}_{_tag(kind, log, metric)}")
            for p in save_figure(fig, target):
                click.echo(p)

    @plot.command("compare")
    @click.argument("file_a", type=_FILE)
    @click.argument("file_b", type=_FILE)
    @click.option("--labels", nargs=2, metavar="A B", help="[default: from the files' variants]")
    @common
    @figure_flags
    def plot_compare(file_a: Path, file_b: Path, labels: tuple[str, str] | None,
                     kind: str | None, log: bool | None, metric: str | None,
                     out: Path | None, options: FigureOptions) -> None:  # fmt: skip
        """Two slices (BN and plain) side by side with one colour scale and the same levels."""
        with figure_options(options):
            fig, kind = compare_figure((file_a, file_b), labels, kind, log, metric)
            tag = _tag(kind, log, metric)
            target = out or file_a.with_name(f"compare_{file_a.stem}_{file_b.stem}_{tag}")
            for p in save_figure(fig, target):
                click.echo(p)


def register(main: click.Group) -> None:
    """Add ``slice`` to ``main`` and ``slice``/``compare`` to its ``plot`` group."""
    _slice_command(main)
    _plot_commands(main.commands["plot"])
