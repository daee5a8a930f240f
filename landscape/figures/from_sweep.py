"""Sweep files -> figures (``landscape plot sweep``, and the end of ``landscape sweep
init-scale``): gradient norms at initialisation against the init scale with their fitted
slopes, and the trainability map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from landscape.comparison import OUTCOMES, read_sweep
from landscape.figures.from_run import options_applied
from landscape.render import save_figure
from landscape.render.style import FigureOptions
from landscape.render.sweep import gradient_scaling, trainability_map

__all__ = ["plot_sweep", "sweep_figures"]


def _median_finite(values: np.ndarray, axis: int) -> np.ndarray:
    """The median over ``axis`` of the finite values (NaN where there are none)."""
    ok = np.isfinite(values).any(axis=axis)
    filled = np.where(np.isfinite(values), values, np.nan)
    filled = np.where(np.expand_dims(ok, axis), filled, 0.0)
    return np.where(ok, np.nanmedian(filled, axis=axis), np.nan)


def sweep_figures(path: str | Path) -> dict[str, Figure]:
    """``gradient_scaling`` and ``trainability`` of a sweep file, by name, unsaved."""
    sweep = read_sweep(path)
    coords = sweep.coords
    names = {"activations": list(coords["activation"]), "variants": list(coords["variant"])}
    scaling = gradient_scaling(coords["scale"], sweep.cells["grad_norm"][..., 0, :],
                               sweep.init_slopes(), feeds_bn=coords["feeds_bn"],
                               **names)  # fmt: skip
    counts = {o: (sweep.cells["outcome"] == o).sum(axis=3) for o in OUTCOMES}
    accuracy = _median_finite(sweep.cells["eval_accuracy"], axis=3)
    diverged = sweep.cells["diverged_step"]
    first = np.where(np.isfinite(diverged).any(axis=3),
                     np.nanmin(np.where(np.isfinite(diverged), diverged, np.inf), axis=3),
                     np.nan)  # fmt: skip
    steps = sweep.settings.get("train", {}).get("steps")
    model = sweep.settings.get("train", {}).get("model", "")
    title = (f"Trainability of {model}, {steps} steps: seeds per outcome (acc: median "
             "held-out accuracy of the seeds that did not diverge)")  # fmt: skip
    trainability = trainability_map(coords["scale"], counts, accuracy=accuracy,
                                    diverged_at=first, title=title, **names)  # fmt: skip
    return {"gradient_scaling": scaling, "trainability": trainability}


def plot_sweep(
    path: str | Path, out_dir: str | Path | None = None, *, options: FigureOptions | None = None
) -> list[Path]:
    """Draw :func:`sweep_figures` of the sweep file ``path``; returns the files written.

    Args:
        path: a sweep file.
        out_dir: output directory (default: beside the file); the files are named
            ``<stem>_gradient_scaling`` and ``<stem>_trainability`` after the file's stem.
        options: size, font size, style, formats and dpi.
    """
    path = Path(path)
    written: list[Path] = []
    with options_applied(options):
        for name, fig in sweep_figures(path).items():
            folder = path.parent if out_dir is None else Path(out_dir)
            target = folder / f"{path.stem}_{name}"
            written += save_figure(fig, target)
    return written
