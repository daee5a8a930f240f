"""landscape.comparison.scaling: log-log slopes against exact power laws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape.comparison import loglog_slope, loglog_slopes

SCALES = np.array([0.1, 0.3, 1.0, 3.0, 10.0, 30.0])


@pytest.mark.parametrize("power", [-1.0, 0.0, 0.5, 5.0])
def test_an_exact_power_law_gives_its_exponent(power):
    assert loglog_slope(SCALES, 3.0 * SCALES**power) == pytest.approx(power, abs=1e-12)


def test_non_finite_and_non_positive_points_are_left_out():
    y = SCALES**-1.0
    y[[1, 4]] = [np.nan, 0.0]
    assert loglog_slope(SCALES, y) == pytest.approx(-1.0)
    assert math.isnan(loglog_slope(SCALES, np.full(6, np.nan)))
    assert math.isnan(loglog_slope([1.0, 1.0], [1.0, 2.0]))  # one distinct x


def test_the_least_squares_slope_of_three_points():
    # log y = 0, 1, 3 at log x = 0, 1, 2 (base e): slope = 1.5
    x, y = np.exp([0.0, 1.0, 2.0]), np.exp([0.0, 1.0, 3.0])
    assert loglog_slope(x, y) == pytest.approx(1.5)


def test_slopes_along_the_first_axis_keep_the_other_axes():
    y = np.stack([SCALES**p for p in (-1.0, 2.0)], axis=-1)[:, None, :]  # (S, 1, 2)
    np.testing.assert_allclose(loglog_slopes(SCALES, y), [[-1.0, 2.0]])


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        loglog_slope([1.0, 2.0], [1.0])


def test_the_docstring_examples_hold():
    import doctest

    from landscape.comparison import matched, outcomes, scaling

    for module in (matched, outcomes, scaling):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_loglog_slope_skips_zero_x_and_needs_two_distinct_points():
    from landscape.comparison.scaling import loglog_slope

    assert loglog_slope([0.0, 1.0, 10.0], [5.0, 1.0, 100.0]) == pytest.approx(2.0)
    assert loglog_slope([1.0, 10.0], [1.0, 10.0]) == pytest.approx(1.0)
    assert math.isnan(loglog_slope([2.0, 2.0, 0.0], [1.0, 3.0, 4.0]))
