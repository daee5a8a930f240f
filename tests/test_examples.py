"""The scripts in examples/ run and write what they promise (a broken example fails CI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from landscape import read_grid
from landscape.probes import read_offline_probes
from landscape.store import open_run, read_series

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT_S = 120  # each takes 3-10 s on 2 cores; a hang fails instead of blocking CI
# Tiny models: one thread each is faster than two, and the test runs in parallel with others.
ENV = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


def run_example(name: str, out: Path) -> str:
    """Run ``examples/<name> --out out`` from the repository root; its stdout."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--out", str(out)],
        cwd=EXAMPLES.parent, env=ENV, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def probe_rows(path: Path, group: str) -> dict[str, np.ndarray]:
    with open_run(path) as f:
        return read_series(f[group])


def test_own_training_loop(tmp_path: Path) -> None:
    run_example("own_training_loop.py", tmp_path)
    for variant in ("bn", "plain"):
        rows = probe_rows(tmp_path / "probes.h5", f"probe/{variant}")
        np.testing.assert_array_equal(rows["step"], np.arange(0, 151, 10))
        assert rows["loss"].shape == (16, 8) and np.isfinite(rows["beta"]).all()
    assert (tmp_path / "fig4_gradient_landscape.png").stat().st_size > 10_000


def test_dict_batch_model(tmp_path: Path) -> None:
    stdout = run_example("dict_batch_model.py", tmp_path)
    assert "ProbeResult(" in stdout and "81 of 81 computed" in stdout
    rows = probe_rows(tmp_path / "probes.h5", "probe/model")
    np.testing.assert_array_equal(rows["step"], [0, 20, 40, 60])
    plane = read_grid(tmp_path / "plane.h5")
    assert plane.shape == (9, 9) and plane.computed.all()
    assert np.isfinite(plane.values["loss"]).all()


def test_state_dict_cli(tmp_path: Path) -> None:
    stdout = run_example("state_dict_cli.py", tmp_path)
    assert "they load into it" in stdout  # landscape info on the state_dict
    plane = read_grid(tmp_path / "slice.h5")
    assert plane.shape == (11, 11) and plane.computed.all()
    assert np.isfinite(plane.values["loss"]).all()
    probes = read_offline_probes(tmp_path / "probes.h5")["model"]  # landscape probe's log
    assert probes["loss"].shape == (1, 2, 8)  # one checkpoint, 2 batches, 8 step sizes
    assert np.isfinite(probes["beta"]).all()
    assert (tmp_path / "slice.png").stat().st_size > 10_000


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_is_self_contained(name: str) -> None:
    """Public API only, a docstring saying how to run it, short enough to read."""
    text = (EXAMPLES / name).read_text()
    assert text.startswith('"""') and "landscape._" not in text
    assert len(text.splitlines()) <= 80
    if name != "tiny_models.py":
        assert f"python examples/{name} --out" in text
