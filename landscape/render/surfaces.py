"""2-D loss-landscape slices in the style of Li et al. (NeurIPS 2018); 1-D ones: ``lines``.

2-D slices f(α, β) = L(θ + α d₁ + β d₂): :func:`surface_plot` (one model, optionally with a
PCA optimisation trajectory) and :func:`compare_surfaces` (variants side by side on one
colour scale with the same contour levels).

Surfaces are ``z`` arrays shaped ``(len(y), len(x))``: rows follow ``y``, columns follow
``x``. NaN cells are left blank (grey in heatmaps). Cells not computed yet (the
``computed`` mask of a slice file; without it, the NaN cells) are counted in the panel title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from matplotlib import colormaps
from matplotlib import patheffects as pe
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from landscape.render.colour_scale import (
    add_colorbar,
    colorbar_label,
    extend_mode,
    level_format,
    shared_scale,
)
from landscape.render.common import coverage_note, finite_or_nan, positive_or_nan, wrap
from landscape.render.style import colors_for, figure_style, font_points, new_figure, unique_labels

__all__ = ["SurfaceKind", "compare_surfaces", "surface_plot"]

SurfaceKind = Literal["contour", "contourf", "heatmap", "surface"]
_KINDS: tuple[str, ...] = ("contour", "contourf", "heatmap", "surface")

_CMAP = "viridis"
_NOT_COMPUTED = "0.85"  # heatmap colour of NaN (not computed or not finite) cells
_FINAL_COLOR = "#E69F00"  # Okabe-Ito orange: the trajectory's end point

DEFAULT_XLABEL_2D = "α  (along direction d₁)"
DEFAULT_YLABEL_2D = "β  (along direction d₂)"


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise ValueError(f"unknown surface kind {kind!r}; use one of {', '.join(_KINDS)}")


def _grid(x: ArrayLike, y: ArrayLike, z: ArrayLike, label: str) -> tuple[np.ndarray, ...]:
    x, y, z = (np.asarray(v, dtype=float) for v in (x, y, z))
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"{label}: x and y must be 1-D coordinate vectors")
    if z.shape != (y.size, x.size):
        raise ValueError(
            f"{label}: z must be shaped (len(y), len(x)) = ({y.size}, {x.size}) with x along "
            f"columns, got {z.shape}"
        )
    return x, y, z


def _check_area(kind: str, z: np.ndarray) -> None:
    if kind != "heatmap" and min(z.shape) < 2:
        raise ValueError(
            f"a {z.shape[1]}×{z.shape[0]} grid has no area for a {kind} plot: draw it as a "
            "heatmap (--kind heatmap) or slice with >= 2 points per axis"
        )


def _labels_for(
    panels: Mapping[str, Any], value: str | Mapping[str, str] | None
) -> dict[str, str | None]:
    """One axis label per panel from a shared label or a mapping panel key -> label."""
    if value is None or isinstance(value, str):
        return dict.fromkeys(panels, value)
    return {k: value.get(k) for k in panels}


def _cell_edges(v: np.ndarray) -> np.ndarray:
    """Heatmap cell edges: halfway between coordinates, half a spacing beyond the ends."""
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


def _computed(z: np.ndarray, computed: ArrayLike | None) -> np.ndarray:
    """The mask of computed cells (without one: the cells that are not NaN)."""
    mask = ~np.isnan(z) if computed is None else np.asarray(computed, dtype=bool)
    coverage_note(mask, z.shape, "cells")  # checks the shape
    return mask


def _draw_trajectory(ax: Axes, trajectory: ArrayLike, *, z_floor: float | None = None) -> None:
    t = np.asarray(trajectory, dtype=float)
    if t.ndim != 2 or t.shape[1] != 2 or t.shape[0] == 0:
        raise ValueError(f"trajectory must be shaped (T, 2), got {t.shape}")
    outline = [pe.withStroke(linewidth=3.2, foreground="black")]
    kw: dict[str, Any] = {} if z_floor is None else {"zs": z_floor}  # 3-D: on the box's floor
    ax.plot(
        t[:, 0],
        t[:, 1],
        color="white",
        linewidth=1.6,
        marker="o",
        markersize=4,
        markerfacecolor="white",
        markeredgecolor="black",
        path_effects=outline,
        label="trajectory",
        zorder=4,
        **kw,
    )
    ax.plot(
        t[-1:, 0],
        t[-1:, 1],
        linestyle="none",
        marker="*",
        markersize=15,
        markerfacecolor=_FINAL_COLOR,
        markeredgecolor="black",
        markeredgewidth=1.0,
        label="final point",
        zorder=5,
        **kw,
    )
    # Below the plot rather than on it: contour labels and the path fill the axes.
    ax.get_figure().legend(loc="outside lower center", ncols=2)


def _draw_surface(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    *,
    kind: str,
    levels: np.ndarray,
    norm: Normalize,
    log: bool,
    extend: str,
) -> Any:
    """Draw one surface on ``ax`` and return the artist that carries levels/norm."""
    zm = np.ma.masked_invalid(positive_or_nan(z) if log else finite_or_nan(z))
    cmap: Colormap = colormaps[_CMAP].with_extremes(bad=_NOT_COMPUTED)
    if kind == "contour":
        cs = ax.contour(x, y, zm, levels=levels, cmap=cmap, norm=norm, linewidths=1.1)
        shown = cs.levels[::2] if len(cs.levels) > 8 else cs.levels
        ax.clabel(cs, shown, inline=True, fontsize=7, fmt=level_format)
        return cs
    elif kind == "contourf":
        ax.grid(False)  # grid lines over filled colours read as extra contours
        cs = ax.contourf(x, y, zm, levels=levels, cmap=cmap, norm=norm, extend=extend)
        ax.contour(x, y, zm, levels=levels, colors="black", linewidths=0.4, alpha=0.35)
        return cs
    elif kind == "heatmap":
        ax.grid(False)
        # Explicit edges: shading="nearest" draws nothing for a single row or column.
        mesh = ax.pcolormesh(_cell_edges(x), _cell_edges(y), zm, cmap=cmap, norm=norm)
        if x.size == 1:  # the cell's width is made up: tick only the coordinate itself
            ax.set_xticks(x)
        if y.size == 1:
            ax.set_yticks(y)
        return mesh
    elif kind == "surface":
        xx, yy = np.meshgrid(x, y)
        height = np.ma.filled(zm.astype(float), np.nan)
        if log:  # 3-D axes have no reliable log scale: plot log10 heights on a linear axis
            height = np.log10(height)
            norm = Normalize(np.log10(norm.vmin), np.log10(norm.vmax))
        surf = ax.plot_surface(
            xx,
            yy,
            height,
            cmap=cmap,
            norm=norm,
            rstride=1,
            cstride=1,
            linewidth=0,
            antialiased=False,
        )
        ax.set_zlim(norm.vmin, norm.vmax)
        return surf
    else:
        raise ValueError(f"unknown surface kind {kind!r}; use one of {', '.join(_KINDS)}")


def _new_axes(fig: Figure, kind: str, n: int) -> list[Axes]:
    if kind == "surface":
        return [fig.add_subplot(1, n, i + 1, projection="3d") for i in range(n)]
    return list(np.atleast_1d(fig.subplots(1, n, squeeze=False)[0]))


def _label_axes(ax: Axes, kind: str, xlabel: str | None, ylabel: str | None, zlabel: str) -> None:
    ax.set_xlabel(xlabel or DEFAULT_XLABEL_2D)
    ax.set_ylabel(ylabel or DEFAULT_YLABEL_2D)
    if kind == "surface":
        ax.set_zlabel(zlabel, labelpad=12)
        # Fewer ticks: 3-D tick labels are set at an angle and collide at the default density.
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.labelpad = ax.yaxis.labelpad = 8
        # Constrained layout does not see 3-D axis labels; shrink the box so they stay inside.
        ax.set_box_aspect(None, zoom=0.85)
        ax.grid(True)


def _empty_note(ax: Axes, x: np.ndarray, y: np.ndarray, computed: np.ndarray) -> None:
    """Nothing to draw: keep the slice's coordinate range and say why."""
    write = getattr(ax, "text2D", ax.text)  # 3-D axes place 2-D text with text2D
    write(
        0.5,
        0.5,
        "no finite values" if computed.any() else "no computed values yet",
        transform=ax.transAxes,
        ha="center",
        va="center",
        color="0.4",
    )
    if x.size > 1 and np.ptp(x) > 0:
        ax.set_xlim(x.min(), x.max())
    if y.size > 1 and np.ptp(y) > 0:
        ax.set_ylim(y.min(), y.max())


def surface_plot(
    x: ArrayLike,
    y: ArrayLike,
    z: ArrayLike,
    *,
    kind: SurfaceKind = "contour",
    levels: int | Sequence[float] | None = None,
    log: bool = False,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    trajectory: ArrayLike | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    zlabel: str = "loss",
    computed: ArrayLike | None = None,
) -> Figure:
    """A 2-D slice f(α, β) as labelled contours, filled contours, a heatmap or a 3-D surface.

    Args:
        x: Coordinates along the first direction, shape (nx,).
        y: Coordinates along the second direction, shape (ny,).
        z: Values shaped (ny, nx), x along columns; NaN cells are left blank.
        kind: "contour" (labelled level lines), "contourf", "heatmap" or "surface" (3-D).
        levels: Number of levels (default 15) or the explicit level values.
        log: Log-spaced levels and a logarithmic colour scale (non-positive values masked).
        title: Axes title.
        vmin: Lower end of the colour scale (default: smallest computed value).
        vmax: Upper end of the colour scale (default: largest computed value).
        trajectory: Optional (T, 2) path in (x, y) coordinates, e.g. an optimisation
            trajectory projected on two PCA directions; drawn with markers, the final point
            as a star.
        xlabel: x-axis label, e.g. "PC 1 (72.1 % of variance)".
        ylabel: y-axis label.
        zlabel: Name of the plotted quantity (colourbar and z-axis label).
        computed: (ny, nx) mask of the cells evaluated so far (default: the non-NaN ones);
            the title says how many are when not all are.

    Returns:
        The figure (the plot's axes, plus the colourbar's when any value is finite).

    Raises:
        ValueError: For an unknown ``kind``, wrongly shaped inputs, a grid with a single row
            or column drawn as anything but a heatmap, or a non-positive lower limit with
            ``log``.
    """
    _check_kind(kind)
    x, y, z = _grid(x, y, z, "surface_plot")
    _check_area(kind, z)
    mask = _computed(z, computed)
    scale = shared_scale([z], levels, log, vmin, vmax)
    with figure_style():
        fig = new_figure((6.0, 4.8))
        (ax,) = _new_axes(fig, kind, 1)
        note = coverage_note(mask, z.shape, "cells")
        if scale is None:
            _empty_note(ax, x, y, mask)
        else:
            lv, norm = scale
            artist = _draw_surface(
                ax, x, y, z, kind=kind, levels=lv, norm=norm, log=log, extend=extend_mode([z], norm)
            )
            add_colorbar(
                fig, artist, ax, kind=kind, levels=lv, label=colorbar_label(zlabel, kind, log)
            )
        if trajectory is not None:
            floor = None
            if kind == "surface":
                floor = ax.get_zlim()[0]
            _draw_trajectory(ax, trajectory, z_floor=floor)
        _label_axes(ax, kind, xlabel, ylabel, colorbar_label(zlabel, kind, log))
        heading = "\n".join(s for s in (title, note) if s)
        if heading:  # the axes is about 0.8 of the figure's width (colourbar)
            ax.set_title(wrap(heading, 0.8 * fig.get_figwidth(), font_points("axes.titlesize")))
    return fig


def compare_surfaces(
    panels: Mapping[str, tuple[ArrayLike, ArrayLike, ArrayLike]],
    *,
    kind: SurfaceKind = "contour",
    log: bool = False,
    levels: int | Sequence[float] | None = None,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    xlabel: str | Mapping[str, str] | None = None,
    ylabel: str | Mapping[str, str] | None = None,
    zlabel: str = "loss",
    computed: Mapping[str, ArrayLike] | None = None,
    notes: Mapping[str, str] | None = None,
) -> Figure:
    """2-D slices of several variants side by side on one colour scale.

    All panels use the same contour levels and the same colour norm, computed from the union
    of the finite values of every panel, and share one colourbar, so equal colours mean equal
    values across variants.

    Args:
        panels: Mapping label -> ``(x, y, z)`` as for :func:`surface_plot`.
        kind: "contour", "contourf", "heatmap" or "surface".
        log: Log-spaced levels and a logarithmic colour scale.
        levels: Number of levels (default 15) or the explicit level values.
        title: Figure title.
        vmin: Lower end of the shared colour scale.
        vmax: Upper end of the shared colour scale.
        xlabel: x-axis label, or a mapping panel key -> its own x-axis label.
        ylabel: y-axis label, or a mapping panel key -> its own y-axis label.
        zlabel: Name of the plotted quantity.
        computed: Mapping panel key -> mask of its computed cells (default: the non-NaN
            ones); a panel's title says how many are when not all are.
        notes: Mapping panel key -> text shown under the panel's label (e.g. its grid).

    Returns:
        The figure (one axes per panel plus one colourbar's).

    Raises:
        ValueError: For an unknown ``kind``, no panels, two panels with the same shown label,
            wrongly shaped inputs or a single-row or single-column grid drawn as anything
            but a heatmap.
    """
    _check_kind(kind)
    if not panels:
        raise ValueError("compare_surfaces needs at least one panel")
    shown = unique_labels(panels)
    grids = {k: _grid(*v, f"panel {k!r}") for k, v in panels.items()}
    for g in grids.values():
        _check_area(kind, g[2])
    masks = {k: _computed(g[2], (computed or {}).get(k)) for k, g in grids.items()}
    xlabels, ylabels = _labels_for(panels, xlabel), _labels_for(panels, ylabel)
    zs = [g[2] for g in grids.values()]
    scale = shared_scale(zs, levels, log, vmin, vmax)
    colors = colors_for(shown.values())
    with figure_style():
        fig = new_figure((4.6 * len(grids) + 1.2, 4.4))
        width, panel = fig.get_figwidth(), (fig.get_figwidth() - 1.2) / len(grids) - 0.2
        axes = _new_axes(fig, kind, len(grids))
        artist = None
        for ax, (key, (x, y, z)) in zip(axes, grids.items()):
            if scale is None:
                _empty_note(ax, x, y, masks[key])
            else:
                lv, norm = scale
                artist = _draw_surface(
                    ax,
                    x,
                    y,
                    z,
                    kind=kind,
                    levels=lv,
                    norm=norm,
                    log=log,
                    extend=extend_mode(zs, norm),
                )
            label = shown[key]
            head = [label, (notes or {}).get(key), coverage_note(masks[key], z.shape, "cells")]
            text = wrap("\n".join(s for s in head if s), panel, font_points("axes.titlesize"))
            ax.set_title(text, color=colors[label])
            _label_axes(ax, kind, xlabels[key], ylabels[key], colorbar_label(zlabel, kind, log))
        if artist is not None:
            add_colorbar(
                fig,
                artist,
                axes,
                kind=kind,
                levels=scale[0],
                label=colorbar_label(zlabel, kind, log),
            )
        if title:
            fig.suptitle(wrap(title, width, font_points("figure.titlesize")))
    return fig
