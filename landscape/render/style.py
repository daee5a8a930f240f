"""Shared look of every figure: colours, labels, rc settings and the one way to save.

Colours come from the Okabe-Ito palette (safe for the common forms of colour blindness).
The two variants the project compares have fixed colours in every figure: "Standard" is
vermillion and "Standard + BatchNorm" is blue. Any other label gets a palette colour that
depends only on the label text, so the same label keeps its colour across figures.

Style is applied per figure through :func:`figure_style` (a ``matplotlib.rc_context``), so
importing or calling the renderers never changes the caller's global ``rcParams``.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from landscape._files import atomic_path
from landscape.store.outputs import check_output

__all__ = [
    "BN_COLOR",
    "LABELS",
    "PALETTE",
    "PLAIN_COLOR",
    "RC_PARAMS",
    "color_for",
    "colors_for",
    "display_label",
    "figure_style",
    "new_figure",
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

#: Storage variant name -> label shown in figures (the paper's wording).
LABELS: dict[str, str] = {"plain": "Standard", "bn": "Standard + BatchNorm"}

_FIXED_COLORS: dict[str, str] = {
    "Standard": PLAIN_COLOR,
    "Standard + BatchNorm": BN_COLOR,
    "plain": PLAIN_COLOR,
    "bn": BN_COLOR,
}
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

    "Standard" (or ``plain``) is vermillion, "Standard + BatchNorm" (or ``bn``) is blue; any
    other label gets one of the remaining Okabe-Ito colours (not yellow) chosen by a stable
    hash of the text.

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
        start = _FREE_COLORS.index(color_for(lab))
        for i in range(len(_FREE_COLORS)):
            cand = _FREE_COLORS[(start + i) % len(_FREE_COLORS)]
            if cand not in used:
                break
        else:  # more labels than colours: reuse, starting from the preferred one
            cand = _FREE_COLORS[start]
        out[lab] = cand
        used.add(cand)
    return {lab: out[lab] for lab in labels}


def figure_style() -> contextlib.AbstractContextManager[Any]:
    """Context in which a figure is built with the project's rc settings (global rc untouched)."""
    return matplotlib.rc_context(RC_PARAMS)


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot-free :class:`~matplotlib.figure.Figure` with constrained layout.

    Call it inside :func:`figure_style` so that the axes pick up the project's style.
    """
    return Figure(figsize=figsize, layout="constrained")


def _targets(path: str | os.PathLike[str], formats: Sequence[str]) -> list[Path]:
    path = Path(path)
    if path.suffix.lower().lstrip(".") in _KNOWN_SUFFIXES:
        path = path.with_suffix("")
    out = []
    for fmt in formats:
        fmt = fmt.lower().lstrip(".")
        if fmt not in _KNOWN_SUFFIXES:
            raise ValueError(f"unknown figure format {fmt!r}; use one of {sorted(_KNOWN_SUFFIXES)}")
        out.append(path.with_name(f"{path.name}.{fmt}"))
    return out


def save_figure(
    fig: Figure,
    path: str | os.PathLike[str],
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 150,
) -> list[Path]:
    """Write a figure in several formats, atomically, creating parent directories.

    An image suffix on ``path`` (``fig.png``) is dropped and every format in ``formats`` is
    written next to it (``fig.png``, ``fig.pdf``). Each file is first written to a temporary
    file in the same directory and then renamed, so a reader never sees a half-written
    figure. PDFs carry no creation date, so identical figures give identical files.

    Args:
        fig: The figure to save.
        path: Target path with or without an image suffix.
        formats: File formats to write.
        dpi: Resolution of raster formats.

    Returns:
        The written paths, in the order of ``formats``.

    Raises:
        ValueError: If a format is not an image format matplotlib writes, or a target holds
            something other than a figure (it is left as it is).
    """
    targets = _targets(path, formats)
    for target in targets:
        check_output(target, "figure")  # replaces figures only, never another kind of file
    written = []
    for target in targets:
        fmt = target.suffix.lstrip(".")
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        # mkstemp creates 0600; figures are meant to be shared.
        with atomic_path(target, mode=_FILE_MODE) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
        written.append(target)
    return written
