"""Shared look of every figure: colours, labels, rc settings and the one way to save.

Colours come from the Okabe-Ito palette (safe for the common forms of colour blindness).
The two variants the project compares have fixed colours in every figure: "Standard" is
vermillion and "Standard + BatchNorm" is blue (Santurkar et al.'s noisy BN: bluish green).
Any other label gets a palette colour that depends only on the label text, so the same label
keeps its colour across figures.

Style is applied per figure through :func:`figure_style` (a ``matplotlib.rc_context``), so
importing or calling the renderers never changes the caller's global ``rcParams``. What a
paper needs on top (size, font size, a style file, formats, dpi) is a :class:`FigureOptions`
in force for a block (``with figure_options(FigureOptions(size=(7, 2.5))): ...``): every
builder and :func:`save_figure` inside it follow it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.style
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.transforms import Bbox

from landscape._files import atomic_path
from landscape.render.common import wrap
from landscape.store.figure_stamp import savefig_kwargs
from landscape.store.outputs import check_output

log = logging.getLogger(__name__)

__all__ = [
    "BN_COLOR",
    "LABELS",
    "FigureOptions",
    "PALETTE",
    "PLAIN_COLOR",
    "RC_PARAMS",
    "bottom_legend",
    "color_for",
    "colors_for",
    "display_label",
    "figure_options",
    "figure_style",
    "fit_titles",
    "font_points",
    "new_figure",
    "overflow",
    "save_figure",
    "unique_labels",
]

#: Okabe-Ito palette, ordered so that the first entries are the most distinct on white.
#: (Okabe & Ito 2008, "Color Universal Design"; yellow last because it is faint on white.)
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#E69F00",  # orange
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
)

PLAIN_COLOR = "#D55E00"
BN_COLOR = "#0072B2"
NOISY_BN_COLOR = "#009E73"  # bluish green: far from both (orange would sit next to vermillion)

#: Storage variant name -> label shown in figures (the paper's wording; noisy_bn: Fig. 2).
LABELS: dict[str, str] = {"plain": "Standard", "bn": "Standard + BatchNorm",
                          "noisy_bn": 'Standard + "Noisy" BatchNorm'}  # fmt: skip

_COLOR_OF = dict(zip(LABELS, (PLAIN_COLOR, BN_COLOR, NOISY_BN_COLOR), strict=True))
_FIXED_COLORS: dict[str, str] = _COLOR_OF | {LABELS[k]: c for k, c in _COLOR_OF.items()}
# Colours handed to labels other than the two fixed ones (the fixed two are kept for them).
_FREE_COLORS: tuple[str, ...] = tuple(c for c in PALETTE if c not in (PLAIN_COLOR, BN_COLOR))
# A label's own colour is never the last (yellow: a title in it is unreadable on white); a
# figure gets yellow only when every other free colour is taken.
_FIRST_CHOICES = _FREE_COLORS[:-1]

#: rc settings applied inside every figure builder (never globally).
RC_PARAMS: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8.5,
    "figure.titlesize": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "lines.linewidth": 1.5,
    "image.cmap": "viridis",
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
}

_FILE_MODE = 0o644

# File formats save_figure understands as a suffix to strip from the path.
_KNOWN_SUFFIXES = frozenset({"png", "pdf", "svg", "eps", "ps", "jpg", "jpeg", "tif", "tiff"})


def display_label(label: str) -> str:
    """The label shown in figures: storage names ``plain``/``bn`` become the paper's wording."""
    return LABELS.get(label, label)


def unique_labels(keys: Iterable[str]) -> dict[str, str]:
    """Mapping key -> :func:`display_label`, refusing two keys that would show the same label.

    Raises:
        ValueError: If two keys give one label (one series would hide the other).
    """
    out: dict[str, str] = {}
    for key in keys:
        label = display_label(key)
        if (seen := next((k for k, v in out.items() if v == label), None)) is not None:
            raise ValueError(f"{seen!r} and {key!r} would both show as {label!r}: label them apart")
        out[key] = label
    return out


def color_for(label: str) -> str:
    """Colour of one series label, the same in every figure.

    "Standard" (or ``plain``) is vermillion, "Standard + BatchNorm" (or ``bn``) is blue,
    'Standard + "Noisy" BatchNorm' (or ``noisy_bn``) bluish green; any other label gets one
    of the remaining Okabe-Ito colours (not yellow) chosen by a stable hash of the text.

    Args:
        label: Series label.

    Returns:
        A hex colour string.

    Example:
        >>> color_for("Standard"), color_for("bn")
        ('#D55E00', '#0072B2')
    """
    if label in _FIXED_COLORS:
        return _FIXED_COLORS[label]
    return _FIRST_CHOICES[zlib.crc32(label.encode("utf-8")) % len(_FIRST_CHOICES)]


def colors_for(labels: Iterable[str]) -> dict[str, str]:
    """Colours for the labels of one figure: fixed ones kept, the others distinct.

    Each label gets :func:`color_for` unless that colour is already taken in this figure, in
    which case it takes the next free palette colour (cycling when the palette runs out).

    Args:
        labels: Series labels in plotting order.

    Returns:
        Mapping label -> hex colour.
    """
    labels = list(labels)
    out: dict[str, str] = {lab: _FIXED_COLORS[lab] for lab in labels if lab in _FIXED_COLORS}
    used = set(out.values())
    for lab in labels:
        if lab in out:
            continue
        start = _FIRST_CHOICES.index(color_for(lab))
        order = [*_FIRST_CHOICES[start:], *_FIRST_CHOICES[:start], BN_COLOR, PLAIN_COLOR,
                 _FREE_COLORS[-1]]  # fmt: skip
        # the preferred colour, the next free one, then the fixed two's where they are not
        # drawn, yellow only when all others are taken; then reuse from the preferred one
        cand = next((c for c in order if c not in used), order[0])
        out[lab] = cand
        used.add(cand)
    return {lab: out[lab] for lab in labels}


def _format_of(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in _KNOWN_SUFFIXES:
        raise ValueError(f"unknown figure format {fmt!r}; use one of {sorted(_KNOWN_SUFFIXES)}")
    return fmt


@dataclass(frozen=True)
class FigureOptions:
    """What a paper author sets on every figure; ``None`` keeps each figure's own choice.

    Attributes:
        formats: Files written by :func:`save_figure` (``png``, ``pdf``, ``svg``, ...).
        size: Figure width and height in inches (each builder's default otherwise);
            constrained layout keeps every label inside it.
        dpi: Resolution of raster formats.
        font_size: Base font size in points; titles, ticks and legends scale with it.
        style: A matplotlib style name (``matplotlib.style.available``) or a ``.mplstyle``
            file, applied over the project's look (it wins where both set a value).
    """

    formats: tuple[str, ...] = ("png", "pdf")
    size: tuple[float, float] | None = None
    dpi: int = 150
    font_size: float | None = None
    style: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(_format_of(f) for f in self.formats))
        if not self.formats:
            raise ValueError("formats is empty: give at least one, e.g. png")
        if self.size is not None and (
            len(self.size) != 2 or not all(0 < float(v) < 100 for v in self.size)
        ):
            raise ValueError(f"size must be two lengths in inches, W,H in (0, 100): {self.size}")
        if not 10 <= self.dpi <= 2400:
            raise ValueError(f"dpi must be in [10, 2400], got {self.dpi}")
        if self.font_size is not None and not 2 <= self.font_size <= 72:
            raise ValueError(f"font size must be in [2, 72] points, got {self.font_size}")
        if self.style is not None and self.style not in matplotlib.style.available:
            if not Path(self.style).is_file():
                raise ValueError(
                    f"style {self.style!r} is neither a file nor a matplotlib style: give a "
                    ".mplstyle file or one of matplotlib.style.available"
                )


_OPTIONS: ContextVar[FigureOptions | None] = ContextVar("figure_options", default=None)
_DEFAULTS = FigureOptions()
_FONT_KEYS = (
    "font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
    "legend.fontsize", "legend.title_fontsize", "figure.titlesize",
)  # fmt: skip


@contextlib.contextmanager
def figure_options(options: FigureOptions) -> Iterator[FigureOptions]:
    """Within the block, every figure is built and saved with ``options``."""
    token = _OPTIONS.set(options)
    try:
        yield options
    finally:
        _OPTIONS.reset(token)


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """Context in which a figure is built: the project's rc settings, then the options' style
    and font size (the caller's global rc untouched)."""
    opts = _options()
    with contextlib.ExitStack() as stack:
        stack.enter_context(matplotlib.rc_context(RC_PARAMS))
        if opts.style is not None:
            stack.enter_context(matplotlib.style.context(opts.style))
        if opts.font_size is not None:
            scale = opts.font_size / font_points("font.size")
            sizes = {k: scale * font_points(k) for k in _FONT_KEYS}
            stack.enter_context(matplotlib.rc_context(sizes))
        yield


def _options() -> FigureOptions:
    return _OPTIONS.get() or _DEFAULTS


def font_points(key: str) -> float:
    """The size in points of an rc font setting in force (``"large"`` and the like resolved)."""
    value = matplotlib.rcParams[key]
    if key == "legend.title_fontsize" and value is None:
        value = matplotlib.rcParams["legend.fontsize"]
    return float(FontProperties(size=value).get_size_in_points())


def bottom_legend(fig: Figure, handles: Sequence[Any], **kwargs: Any) -> None:
    """The figure's legend of ``handles`` below its panels, in as many columns as fit."""
    labels = [h.get_label() for h in handles]  # an entry: its characters, 0.6 in of handle
    entry = max(map(len, labels), default=1) * 0.6 * font_points("legend.fontsize") / 72 + 0.6
    ncols = max(1, min(len(labels), int(0.95 * fig.get_figwidth() / entry)))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, **kwargs)


def fit_titles(fig: Figure) -> None:
    """Wrap the figure's title to its width and each panel's title to the panel's, so that a
    small ``size`` or a large font never pushes them off the canvas (call it inside
    :func:`figure_style`, after the titles are set)."""
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is None or not ax.title.get_text():
            continue
        share = len(spec.colspan) / spec.get_gridspec().ncols
        text = wrap(
            ax.title.get_text(), fig.get_figwidth() * share - 0.5, font_points("axes.titlesize")
        )
        ax.title.set_text(text)
    if title := fig.get_suptitle():
        wrapped = wrap(title, fig.get_figwidth() - 0.2, font_points("figure.titlesize"))
        if wrapped != title:
            fig.suptitle(wrapped)


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free :class:`~matplotlib.figure.Figure` with constrained layout.

    Call it inside :func:`figure_style` so that the axes pick up the project's style. The
    size in force through :func:`figure_options`, if any, replaces ``figsize``.
    """
    size = _options().size
    return Figure(figsize=figsize if size is None else size, layout="constrained")


def _targets(path: str | os.PathLike[str], formats: Sequence[str]) -> list[Path]:
    path = Path(path)
    if path.suffix.lower().lstrip(".") in _KNOWN_SUFFIXES:
        path = path.with_suffix("")
    return [path.with_name(f"{path.name}.{_format_of(fmt)}") for fmt in formats]


def save_figure(
    fig: Figure,
    path: str | os.PathLike[str],
    formats: Sequence[str] | None = None,
    dpi: int | None = None,
) -> list[Path]:
    """Write a figure in several formats, atomically, creating parent directories.

    An image suffix on ``path`` (``fig.png``) is dropped and every format in ``formats`` is
    written next to it (``fig.png``, ``fig.pdf``). Each file is first written to a temporary
    file in the same directory and then renamed, so a reader never sees a half-written
    figure. PDFs carry no creation date, so identical figures give identical files. Every
    file carries landscape's stamp (:mod:`landscape.store.figure_stamp`); a target is
    replaced only when it holds a stamped figure, never another image.

    Args:
        fig: The figure to save.
        path: Target path with or without an image suffix.
        formats: File formats to write (default: those of the :class:`FigureOptions` in
            force, PNG and PDF unless set).
        dpi: Resolution of raster formats (default: the options', 150 unless set).

    Figures whose labels do not fit their size (a small ``size`` in the options, a large font)
    are written just large enough to hold them, never clipped, with a logged warning.

    Returns:
        The written paths, in the order of ``formats``.

    Raises:
        ValueError: If a format is not an image format matplotlib writes, or a target holds
            something other than a figure landscape drew (it is left as it is).
    """
    opts = _options()
    targets = _targets(path, opts.formats if formats is None else formats)
    dpi = opts.dpi if dpi is None else dpi
    for target in targets:
        check_output(target, "figure")  # replaces figures only, never another kind of file
    written: list[Path] = []
    fit: dict[str, Any] = {}
    for target in targets:
        _save(fig, target, dpi, fit)
        if not written and (drawn := overflow(fig, draw=False)) is not None:
            c, pad = fig.bbox_inches, 0.04  # grow the canvas where needed, never crop it
            grown = Bbox.union([c, drawn.padded(pad)])
            fit = {"bbox_inches": grown}
            log.warning(
                "%s: the labels do not fit %.3g x %.3g in at this font size; written %.3g x "
                "%.3g in instead (a larger --size or a smaller --font-size keeps the size)",
                target.stem, c.width, c.height, grown.width, grown.height,
            )  # fmt: skip
            _save(fig, target, dpi, fit)
        written.append(target)
    return written


def _save(fig: Figure, target: Path, dpi: int, fit: dict[str, Any]) -> None:
    fmt = target.suffix.lstrip(".")  # stamped: only figures landscape drew are ever replaced
    with atomic_path(target, mode=_FILE_MODE) as tmp:  # mkstemp makes 0600: figures are shared
        fig.savefig(tmp, format=fmt, dpi=dpi, **savefig_kwargs(fmt), **fit)


def overflow(fig: Figure, *, draw: bool = True) -> Bbox | None:
    """The extent (inches) of what is drawn when some of it sticks out of the canvas (a
    figure too small for its labels even after constrained layout), else None.

    ``draw=False`` measures the layout of the figure's last draw (after a save) instead of
    laying it out again (constrained layout can settle a pixel differently on a second pass).
    """
    if draw:
        fig.draw_without_rendering()
    drawn, canvas = fig.get_tightbbox(), fig.bbox_inches
    tol = 0.01
    inside = (drawn.x0 >= canvas.x0 - tol and drawn.y0 >= canvas.y0 - tol
              and drawn.x1 <= canvas.x1 + tol and drawn.y1 <= canvas.y1 + tol)  # fmt: skip
    return None if inside else drawn
