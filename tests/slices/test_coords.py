"""Grid coordinates: 'start:stop:num' ranges and their guards."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from landscape.slices import (
    random_line,
    random_plane,
)
from landscape.slices.coords import MAX_POINTS_PER_AXIS, as_coords, parse_range


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("-1:1:5", [-1.0, -0.5, 0.0, 0.5, 1.0]),
        ("0:1:3", [0.0, 0.5, 1.0]),
        ("-2:0:3", [-2.0, -1.0, 0.0]),
        ("-0.5:1.5:5", [-0.5, 0.0, 0.5, 1.0, 1.5]),
        (" 0:0:1 ", [0.0]),
        ("2:3:1", [2.0]),
    ],
)
def test_parse_range_good(spec, expected):
    np.testing.assert_allclose(parse_range(spec), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "spec", ["", "1:2", "a:b:3", "0:1:0", "0:1:2.5", "1:0:5", "0:0:3", "nan:1:3", "0:1:3:4", None]
)
def test_parse_range_bad(spec):
    with pytest.raises(ValueError, match=r"start:stop:num|start == stop"):
        parse_range(spec)


def test_default_range_has_51_points():
    for fn, arg in ((random_line, "x"), (random_plane, "x"), (random_plane, "y")):
        assert inspect.signature(fn).parameters[arg].default == "-1:1:51"
    xs = parse_range(inspect.signature(random_line).parameters["x"].default)
    assert len(xs) == 51 and xs[0] == -1.0 and xs[-1] == 1.0 and 0.0 in xs
    with pytest.raises(ValueError, match="finite"):
        as_coords([0.0, np.inf])


@pytest.mark.parametrize(
    ("spec", "match"),
    [("-1:1:100000000000", "at most"), ("-1e308:1e308:3", "overflows")],
)
def test_parse_range_guards(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_range(spec)


def test_the_largest_axis_is_allowed():
    assert len(parse_range(f"0:1:{MAX_POINTS_PER_AXIS}")) == MAX_POINTS_PER_AXIS
    with pytest.raises(ValueError, match="at most"):
        parse_range(f"0:1:{MAX_POINTS_PER_AXIS + 1}")


def test_numbers_become_a_flat_float64_array_named_in_errors():
    for v, expected in (([0, 1, 2], [0.0, 1.0, 2.0]), ([[0, 1], [2, 3]], [0.0, 1.0, 2.0, 3.0]),
                        (0.5, [0.5])):  # fmt: skip
        arr = as_coords(v)
        assert arr.dtype == np.float64 and arr.tolist() == expected
    with pytest.raises(ValueError, match=r"^x coordinates must be finite"):
        as_coords([0.0, np.nan])
    with pytest.raises(ValueError, match=r"^y coordinates must be finite"):
        as_coords([], "y")
