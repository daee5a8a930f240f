"""Shared CLI plumbing: error translation, progress bars, option parsing."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from landscape import distributed
from landscape.render.style import FigureOptions
from landscape.train import literal_values

log = logging.getLogger(__name__)

#: Exit code for bad input, as for click's own usage errors.
EXIT_BAD_INPUT = 2
#: Seconds a torchrun process other than rank 0 waits before it ends on an error: torchrun
#: stops every process once one ends, and rank 0 is to have written its message by then.
QUIET_GRACE_S = 2.0


class BadInput(click.ClickException):
    """A one-line error message and exit code 2 (no traceback)."""

    exit_code = EXIT_BAD_INPUT


class LandscapeGroup(click.Group):
    """A click group that turns library ValueErrors, file errors and click's own usage errors
    (a bad option value, a missing argument) into ``BadInput``: one ``Error:`` line, exit 2.

    Under torchrun only rank 0 prints it: the other processes end quietly with the same exit
    code (their message is logged, shown with ``-v``). Rank 0 either fails the same way (bad
    options, an error it broadcast) or has its own error, or hears that a peer stopped
    (:class:`~landscape.distributed.PeerFailed`) and says so in one line.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        except click.ClickException as exc:
            rank = _torchrun_rank()
            if rank == 0:
                raise
            log.info("rank %d: %s", rank, exc.format_message())
            _end_quietly(exc.exit_code)

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            name = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            raise BadInput(f"{exc.format_message()} (see {name} --help)") from None
        except (ValueError, OSError, distributed.PeerFailed) as exc:  # OSError: missing,
            raise BadInput(_one_line(exc)) from None  # unreadable or non-HDF5 files


def _end_quietly(code: int) -> None:
    """End this process with ``code`` and no message, after :data:`QUIET_GRACE_S` (stopped
    by torchrun meanwhile, because rank 0 ended: the same code)."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(code))
    time.sleep(QUIET_GRACE_S)
    raise click.exceptions.Exit(code)


def _torchrun_rank() -> int:
    """This process's torchrun rank: 0 alone, and when torchrun's variables are what failed."""
    try:
        return distributed.launched().rank
    except ValueError:
        return 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    return text.splitlines()[0]


def parse_key_values(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    """``("depth=3", "cfg=[16,'M']")`` -> dict; values parsed as JSON where possible."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"{what} {pair!r} is not KEY=VALUE: write e.g. --{what} depth=3")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


class Progress:
    """Renders ``progress(label, done, total)`` callbacks as one click bar per label."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._bars: dict[str, Any] = {}
        self._done: dict[str, int] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        if self.quiet:
            return
        bar = self._bars.get(label)
        if bar is None:
            bar = click.progressbar(
                length=total,
                label=f"{label:>8}",
                show_eta=True,
                show_pos=True,
                file=click.get_text_stream("stderr"),
            )
            bar.__enter__()
            self._bars[label] = bar
            self._done[label] = 0
        bar.update(done - self._done[label])
        self._done[label] = done
        if done >= total:
            self.close(label)

    def simple(self, label: str) -> Callable[[int, int], None]:
        """An adapter for library callbacks of the form ``progress(done, total)``."""
        return lambda done, total: self(label, done, total)

    def close(self, label: str | None = None) -> None:
        for key in [label] if label else list(self._bars):
            bar = self._bars.pop(key, None)
            if bar is not None:
                bar.__exit__(None, None, None)


@contextlib.contextmanager
def progress_bars(quiet: bool) -> Iterator[Progress]:
    p = Progress(quiet)
    try:
        yield p
    finally:
        p.close()


quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars (for scripts).")


def literal_choice(cls: type, field: str) -> click.Choice:
    """A ``click.Choice`` of the values of ``cls.<field>``'s ``Literal`` annotation.

    The config class stays the one place the choices are spelled; ``None`` in an optional
    annotation (``Literal[...] | None``) is dropped.
    """
    values = literal_values(cls, field)
    if values is None:
        raise TypeError(f"{cls.__name__}.{field} is not a Literal")
    return click.Choice([v for v in values if v is not None])


#: Your own weights: the options ``probe``, ``slice`` and ``info`` share.
MODEL_HELP = ("Your own weights (a state_dict file): package.module:factory builds their model "
              "(the current directory is importable).")  # fmt: skip


def own_model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--model``, ``--model-option KEY=VALUE`` (the factory's keywords), ``--trust-pickle``."""
    f = click.option("--trust-pickle", is_flag=True, help="With --model, also load a whole "
                     "pickled model (torch.save(model)): that runs code the file names; only "
                     "for files you made or trust.")(f)  # fmt: skip
    f = click.option("--model-option", "model_option", multiple=True, metavar="KEY=VALUE",
                     help="A keyword of the --model factory (repeatable).")(f)  # fmt: skip
    return click.option("--model", "model", metavar="PKG.MODULE:FACTORY", help=MODEL_HELP)(f)


def comma_list(text: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]`` (None stays None; blanks dropped)."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def figure_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--format``, ``--size``, ``--dpi``, ``--font-size``, ``--style``, handed to the command
    as one ``options`` (:class:`~landscape.render.style.FigureOptions`)."""

    @functools.wraps(f)
    def command(*args: Any, formats: str, size: str | None, dpi: int, font_size: float | None,
                style: str | None, **kwargs: Any) -> Any:  # fmt: skip
        try:
            w, h = (float(v) for v in size.split(",")) if size else (None, None)
        except ValueError:
            raise BadInput(
                f"--size {size!r} is not W,H in inches: write e.g. --size 7,2.5"
            ) from None
        sized = None if w is None or h is None else (w, h)
        options = FigureOptions(tuple(comma_list(formats) or ()), sized, dpi, font_size, style)
        return f(*args, options=options, **kwargs)

    command = click.option("--style", metavar="NAME|FILE", help="A matplotlib style (name or "
                           ".mplstyle file) over the project's look.")(command)  # fmt: skip
    command = click.option("--font-size", type=float, help="Base font size in points; titles, "
                           "ticks and legends scale with it.")(command)  # fmt: skip
    command = click.option("--dpi", type=int, default=150, show_default=True,
                           help="Resolution of PNG and other raster files.")(command)  # fmt: skip
    command = click.option("--size", metavar="W,H", help="Figure size in inches [default: "
                           "each figure's own].")(command)  # fmt: skip
    return click.option("--format", "formats", default="png,pdf", show_default=True,
                        metavar="FMT[,FMT...]", help="Files to write: png, pdf, svg, eps, "
                        "jpg, tif.")(command)  # fmt: skip
