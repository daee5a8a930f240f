"""render.sweep: gradient scaling and the trainability map, checked on their artists."""

from __future__ import annotations

import numpy as np
import pytest

from landscape.render.sweep import gradient_scaling, trainability_map

pytestmark = pytest.mark.filterwarnings("error")

SCALES = np.array([0.1, 1.0, 10.0])


def _norms(seeds: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(S, A=2, V=2, N, L=3): BN flat, plain a^2; slopes (A, V, N, L) to match."""
    g = np.ones((3, 2, 2, seeds, 3))
    g[:, :, 1] = (SCALES**2)[:, None, None, None]
    slopes = np.zeros((2, 2, seeds, 3))
    slopes[:, 1] = 2.0
    return g, slopes


def test_gradient_scaling_draws_every_layer_and_its_slope():
    g, slopes = _norms()
    fig = gradient_scaling(SCALES, g, slopes, activations=["sigmoid", "relu"],
                           variants=["bn", "plain"], feeds_bn=[1, 1, 0])  # fmt: skip
    top, bottom = fig.axes[:2], fig.axes[2:4]
    assert all(ax.get_xscale() == ax.get_yscale() == "log" for ax in top)
    assert len(top[0].get_lines()) == 6  # 3 layers x 2 variants
    np.testing.assert_allclose(top[0].get_lines()[3].get_ydata(), SCALES**2)  # plain, layer 1
    assert top[0].get_title() == "(a) sigmoid: gradient at initialisation"
    assert bottom[1].get_title() == "(d) relu: fitted slopes"
    lines = [tuple(np.asarray(line.get_ydata(), float)) for line in bottom[0].get_lines()]
    assert (0.0, 0.0) in lines and (-1.0, -1.0) in lines  # the reference slopes
    assert (2.0, 2.0, 2.0) in lines and (0.0, 0.0, 0.0) in lines  # plain, BN medians
    assert len(bottom[0].patches) == 1  # the shaded layer with no BN after it
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert labels[:2] == ["Standard + BatchNorm", "Standard"]


def test_gradient_scaling_survives_missing_and_zero_norms():
    g, slopes = _norms(seeds=1)
    g[0, 0, 1, 0, 0], g[1, 0, 1, 0, 1] = np.nan, 0.0
    slopes[0, 1, 0, 0] = np.nan
    gradient_scaling(SCALES, g, slopes, activations=["a", "b"], variants=["bn", "plain"],
                     feeds_bn=[1, 1, 0])  # fmt: skip


def test_gradient_scaling_checks_shapes():
    g, slopes = _norms()
    with pytest.raises(ValueError, match=r"norms must be \(S, A, V, N, L\)"):
        gradient_scaling(SCALES[:2], g, slopes, activations=["a", "b"], variants=["bn", "plain"],
                         feeds_bn=[1, 1, 0])  # fmt: skip
    with pytest.raises(ValueError, match="slopes must be"):
        gradient_scaling(SCALES, g, slopes[:1], activations=["a", "b"],
                         variants=["bn", "plain"], feeds_bn=[1, 1, 0])  # fmt: skip


def test_the_trainability_map_splits_each_cell_by_outcome():
    shape = (3, 1, 2)  # scales, activations, variants
    trained, stalled, diverged = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    trained[:, 0, 0] = 3  # BN trains everywhere
    stalled[0, 0, 1], trained[1, 0, 1], trained[2, 0, 1], diverged[2, 0, 1] = 3, 3, 1, 2
    accuracy = np.full(shape, 0.9)
    first = np.full(shape, np.nan)
    first[2, 0, 1] = 4
    counts = {"trained": trained, "stalled": stalled, "diverged": diverged}
    fig = trainability_map(SCALES, counts, activations=["sigmoid"], variants=["bn", "plain"],
                           accuracy=accuracy, diverged_at=first)  # fmt: skip
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "3T\nacc 0.90" in texts and "3S\nacc 0.90" in texts
    assert "1T 2D\nacc 0.90\nfrom step 4" in texts
    widths = sorted(round(p.get_width(), 3) for p in ax.patches if p.get_fill())
    assert widths.count(1.0) == 5 and {0.333, 0.667} <= set(widths)  # the mixed cell
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sigmoid · Standard + BatchNorm",
                                                            "sigmoid · Standard"]  # fmt: skip


def test_the_trainability_map_checks_its_inputs():
    with pytest.raises(ValueError, match="unknown outcomes"):
        trainability_map(SCALES, {"exploded": np.zeros((3, 1, 1))}, activations=["a"],
                         variants=["bn"])  # fmt: skip
    with pytest.raises(ValueError, match=r"counts\['trained'\] must be"):
        trainability_map(SCALES, {"trained": np.zeros((2, 1, 1))}, activations=["a"],
                         variants=["bn"])  # fmt: skip
    with pytest.raises(ValueError, match="accuracy must be"):
        trainability_map(SCALES, {"trained": np.zeros((3, 1, 1))}, activations=["a"],
                         variants=["bn"], accuracy=np.zeros(3))  # fmt: skip
