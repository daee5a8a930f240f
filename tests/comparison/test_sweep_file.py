"""landscape.comparison.sweep_file and .report: a sweep file made by hand (no training), so
its slopes, counts and tables are known; damaged files are named, never read."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from landscape.comparison import (
    accuracy_table,
    comparison_lines,
    probes_report,
    ratio_table,
    read_sweep,
    slopes_table,
    trainability_table,
)
from landscape.comparison.sweep_file import create_sweep_file, settings_differ, write_pair

SCALES = [0.1, 1.0, 10.0]
COORDS = {"scale": SCALES, "activation": ["sigmoid"], "variant": ["bn", "plain"],
          "seed": [0, 1], "layer": ["a.weight", "b.weight"], "feeds_bn": [1, 0],
          "grad_step": [0, 1], "probe_step": [0, 5], "train_step": list(range(10))}  # fmt: skip
#: Gradient norms at initialisation: BN a^0 (flat), plain a^(2 + seed) in layer a, a^1 in b.
POWERS = {("bn", 0): (0.0, 0.0), ("bn", 1): (0.0, 0.0), ("plain", 0): (2.0, 1.0),
          ("plain", 1): (3.0, 1.0)}  # fmt: skip


def _cell(scale, variant, seed):
    pa, pb = POWERS[variant, seed]
    g0 = np.array([scale**pa, scale**pb])
    diverged = variant == "plain" and scale == 10.0 and seed == 1
    loss = np.linspace(2.3, 0.3, 10)
    if diverged:
        loss[4:] = np.nan
    stalled = variant == "plain" and scale == 0.1
    if stalled:
        loss = np.full(10, 2.3)
    outcome = "diverged" if diverged else "stalled" if stalled else "trained"
    accuracy = np.nan if diverged else 0.1 if stalled else 0.9 + 0.01 * seed
    return {"outcome": outcome, "diverged_step": 4.0 if diverged else np.nan,
            "grad_norm": np.stack([g0, g0]), "grad_ratio": np.full(2, g0.max() / g0.min()),
            "train_loss": loss, "probe_beta": np.array([1.0 + seed, 2.0 + seed]),
            "eval_accuracy": accuracy}  # fmt: skip


@pytest.fixture
def path(tmp_path):
    p = tmp_path / "sweep.h5"
    create_sweep_file(p, COORDS, {"scales": SCALES, "train": {"steps": 10}},
                      {"stall_margin": 0.1}, attrs={"cpu": "test"}, device="cpu")  # fmt: skip
    for i, scale in enumerate(SCALES):
        for k in (0, 1):
            cells = {v: _cell(scale, name, k) for v, name in enumerate(("bn", "plain"))}
            write_pair(p, (i, 0, k), cells, {"wall_s": 1.0, "threads": 2.0})
    return p


def test_a_new_file_is_all_nan_and_not_computed(tmp_path):
    p = tmp_path / "new.h5"
    create_sweep_file(p, COORDS, {}, {}, attrs={}, device="cpu")
    s = read_sweep(p)
    assert not s.computed.any() and (s.cells["outcome"] == "").all()
    assert np.isnan(s.cells["grad_norm"]).all() and s.cells["grad_norm"].shape == (3, 1, 2, 2, 2, 2)
    assert np.isnan(s.pairs["wall_s"]).all()


def test_slopes_of_exact_power_laws(path):
    s = read_sweep(path)
    slopes = s.init_slopes()  # (A, V, N, L)
    np.testing.assert_allclose(slopes[0, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(slopes[0, 1], [[2.0, 1.0], [3.0, 1.0]])
    table = slopes_table(s)
    assert "| sigmoid | `a.weight` | yes | 0.00 [0.00..0.00] | 2.50 [2.00..3.00] |" in table
    assert (
        "| sigmoid | all layers feeding BN | yes | 0.00 [0.00..0.00] | 2.50 [2.00..3.00] |" in table
    )


def test_outcome_counts_and_the_tables(path):
    s = read_sweep(path)
    counts = s.outcome_counts()  # (S, A, V, 3)
    assert counts[0, 0, 1].tolist() == [0, 2, 0] and counts[2, 0, 1].tolist() == [1, 0, 1]
    assert "| sigmoid | plain | 2S | 2T | 1T 1D (step 4) |" in trainability_table(s)
    assert "| sigmoid | BN | 0.91 [0.90..0.91] |" in accuracy_table(s)
    # plain at a = 10: layer a grows as a^2 (seed 0) or a^3, layer b as a: ratio a or a^2
    assert ratio_table(s).endswith("| sigmoid | plain | 55 [10..100] | 1 [1..1] | 55 [10..100] |")
    assert accuracy_table(s).endswith(
        "| 0.10 [0.10..0.10] | 0.91 [0.90..0.91] | 0.90 [0.90..0.90] |"
    )


def test_the_probe_report_counts_the_networks_left_out(path):
    text = probes_report(read_sweep(path), "beta")
    assert "sigmoid, init scale 10: BN 2 trained; plain 1 trained, 1 diverged" in text
    assert "plain  1 [1..1] (1/2; seed 0: 1, seed 1: diverged at step 4)" in text
    assert "plain  - (0/2; seed 0: stalled, seed 1: stalled)" in text


def test_comparison_lines_with_given_levels(path):
    s = read_sweep(path)
    groups = {"bn": s.networks(1, 0, 0), "plain": s.networks(1, 0, 1)}
    lines = comparison_lines(groups, "beta", steps=(0, 5), levels=[1.0], window=1)
    assert lines[0] == "  step 0          BN     1.5 [1..2] (2/2; seed 0: 1, seed 1: 2)"
    assert any(line.startswith("  loss 1") for line in lines)
    with pytest.raises(ValueError, match="unknown probe metric"):
        comparison_lines(groups, "gamma")


def test_a_cell_not_computed_has_no_network(tmp_path):
    p = tmp_path / "new.h5"
    create_sweep_file(p, COORDS, {}, {}, attrs={}, device="cpu")
    with pytest.raises(ValueError, match="not computed yet"):
        read_sweep(p).network(0, 0, 0, 0)
    assert read_sweep(p).networks(0, 0, 0) == []


def test_a_cell_is_found_by_its_coordinates(path):
    s = read_sweep(path)
    assert s.index(10.0, "sigmoid", "plain", 1) == (2, 0, 1, 1)
    with pytest.raises(ValueError, match="no activation 'relu'"):
        s.index(10.0, "relu", "plain", 1)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda f: f["cells/computed"].__setitem__((0, 0, 0, 0), 2), "other than 0 and 1"),
        (lambda f: f["cells/outcome"].__setitem__((0, 0, 0, 0), "great"), "outcome is not"),
        (lambda f: f["cells"].__delitem__("grad_norm"), "/cells/grad_norm is missing"),
        (lambda f: f["coords"].__delitem__("layer"), "/coords/layer is missing"),
        (lambda f: f.attrs.__setitem__("sweep_settings", "[1]"), "not a JSON object"),
        (
            lambda f: _replace(f, "cells/train_loss", np.zeros((3, 1, 2, 2, 9))),
            r"not \(3, 1, 2, 2, 10\)",
        ),
        (lambda f: _replace(f, "pairs/wall_s", np.array(["x"], dtype=object)), "not numbers"),
    ],
)
def test_a_damaged_file_is_named_and_left_alone(path, damage, match):
    with h5py.File(path, "r+") as f:
        damage(f)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=match) as err:
        read_sweep(path)
    assert "run the sweep again into a new file" in str(err.value)
    assert path.read_bytes() == before


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


def test_another_kind_of_file_is_not_a_sweep(tmp_path):
    p = tmp_path / "x.h5"
    with h5py.File(p, "w") as f:
        f.attrs["a"] = 1
    with pytest.raises(ValueError, match="not a sweep file"):
        read_sweep(p)


def test_settings_differ_by_nested_key():
    stored = {"scales": [1.0], "train": {"lr": 0.1, "steps": 10}}
    assert settings_differ(stored, stored) == []
    assert settings_differ(stored, {"scales": [1.0], "train": {"lr": 0.2, "steps": 10}}) == [
        "train.lr"
    ]
    assert settings_differ(stored, {"train": {"lr": 0.1, "steps": 10}}) == ["scales"]
