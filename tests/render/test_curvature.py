"""render.curvature: the Hessian over training and spectral densities, checked on artists."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.render.curvature import hessian_over_training, spectral_densities

pytestmark = pytest.mark.filterwarnings("error")


def _run(scale: float, steps: int = 6, k: int = 3) -> dict[str, np.ndarray]:
    step = np.arange(steps) * 50.0
    top = scale * (1 + np.arange(steps))[:, None] / (1 + np.arange(k))[None, :]
    return {"step": step, "eigenvalues": top, "trace": 10 * scale * np.ones(steps),
            "trace_stderr": 0.1 * np.ones(steps), "curvature_gradient": scale * np.ones(steps),
            "beta_step": step, "beta": 2 * scale * np.ones(steps)}  # fmt: skip


def test_over_training_draws_every_run_and_the_probes_beta() -> None:
    fig = hessian_over_training({"bn": _run(1.0), "plain": _run(20.0)})
    ax_eig, ax_tr, ax_cg = fig.axes
    assert len(ax_eig.get_lines()) == 6  # 3 eigenvalues x 2 runs
    np.testing.assert_array_equal(ax_eig.get_lines()[0].get_ydata(), np.arange(1, 7))
    assert ax_eig.get_yscale() == ax_tr.get_yscale() == ax_cg.get_yscale() == "log"
    assert len(ax_cg.get_lines()) == 4 and ax_cg.get_lines()[1].get_linestyle() == "--"
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert labels == ["Standard + BatchNorm", "Standard", "probes' effective β (panel c)"]
    assert len(ax_tr.collections) == 2  # the +- stderr bands


def test_negative_eigenvalues_keep_a_linear_axis_and_missing_parts_say_so() -> None:
    run = {"step": np.arange(3.0), "eigenvalues": np.array([[1.0], [-0.5], [2.0]])}
    fig = hessian_over_training({"mine": run})
    ax_eig, ax_tr, _ = fig.axes
    assert ax_eig.get_yscale() == "linear"
    assert "not measured" in [t.get_text() for t in ax_tr.texts]
    with pytest.raises(ValueError, match="one row per step"):
        hessian_over_training({"x": {"step": np.arange(3.0), "eigenvalues": np.ones((2, 1))}})


def test_spectral_densities_side_by_side_with_outliers_marked() -> None:
    grid = np.linspace(-1, 30, 200)
    dens = np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi)
    runs = {"bn": {"grid": grid, "density": dens, "eigenvalues": [3.0], "step": 400},
            "plain": {"grid": grid, "density": dens, "eigenvalues": [25.0, 12.0]}}  # fmt: skip
    fig = spectral_densities(runs)
    left, right = fig.axes
    assert left.get_yscale() == "log" and left.get_title() == "Standard + BatchNorm (step 400)"
    assert [ln.get_xdata()[0] for ln in right.get_lines()[1:]] == [25.0, 12.0]
    assert np.all(np.asarray(left.get_lines()[0].get_ydata()) > 0)  # the tails stay drawable
    with pytest.raises(ValueError, match="equal 1-D"):
        spectral_densities({"x": {"grid": grid, "density": dens[:-1]}})
