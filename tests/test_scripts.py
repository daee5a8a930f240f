"""The figure scripts in scripts/ run their tiny preset and write what they promise.

Each writes ``config.json`` (preset, command line, versions, machine), HDF5 files and PNG
figures under ``--out``; a paper preset whose data set is missing stops with one line and
exit status 2 before writing anything. One tiny run is in the default suite; every script's
tiny preset, on a few training steps, is marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from tests.store.test_schema_doc import DOC, Written, problems

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TIMEOUT_S = 300  # the slowest (li_contours, spectra) take about 40 s on 2 busy cores
ENV = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
#: Per script: the HDF5 files and the figures (under OUT/figures/) its tiny preset writes.
OUTPUTS = {
    "fig1_training.py": (
        ["lr0.1/run.h5", "lr0.5/run.h5", "fig1.h5"],
        ["fig1_training", "fig1_activations_lr0.1", "fig1_activations_lr0.5"],
    ),
    "fig3_ics.py": (["vgg/run.h5", "dln/run.h5"], ["fig3_ics_vgg", "fig3_ics_dln"]),
    "fig4_smoothness.py": (["vgg/run.h5"], ["fig4_gradient_landscape"]),
    "fig9_dln.py": (["dln/run.h5"], ["fig9_dln_gradient_landscape"]),
    "fig10_random_directions.py": (
        ["random_lr0.1/run.h5", "random_lr0.5/run.h5", "gradient_lr0.5/run.h5"],
        [
            f"fig10_{run}_{kind}"
            for run in ("random_lr0.1", "random_lr0.5", "gradient_lr0.5")
            for kind in ("landscape", "gradient_distance")
        ],
    ),
    "li_contours.py": (
        [
            "vgg/run.h5",
            "resnet20/run.h5",
            "resnet20_noskip/run.h5",
            "slices/vgg_bn_random_plane.h5",
            "slices/vgg_plain_random_plane.h5",
            "slices/resnet20_bn_random_plane.h5",
            "slices/resnet20_noskip_bn_random_plane.h5",
        ],
        ["li_bn_vs_plain", "li_skip_vs_noskip"],
    ),
    "spectra.py": (
        ["vgg/run.h5", "vgg/hessian.h5"],
        ["hessian_over_training", "hessian_density_step00000", "hessian_density_step00030"],
    ),
}
#: Scripts that need a data set in their paper preset (fig9's DLN data is synthetic).
NEEDS_CIFAR = sorted(set(OUTPUTS) - {"fig9_dln.py"})


def run_script(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args], cwd=SCRIPTS.parent, env=env or ENV,
        capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip


def check_outputs(name: str, out: Path, steps: int) -> dict:
    """config.json says what ran and lists the figures; the HDF5 files open; PNGs exist."""
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "tiny" and config["status"] == "finished"
    assert config["script"] == f"scripts/{name}" and f"--steps {steps}" in config["command"]
    assert config["settings"]["steps"] == steps and config["wall_s"] > 0
    assert config["machine"]["torch_threads"] == 1 and config["machine"]["nproc"] >= 1
    assert "cpu_flags" in config["machine"] and config["versions"]["torch"]
    h5_files, figures = OUTPUTS[name]
    for rel in h5_files:
        with h5py.File(out / rel, "r") as f:
            assert f.attrs["package"] == "landscape", rel  # provenance on every file
    for fig in figures:
        png = out / "figures" / f"{fig}.png"
        assert png.stat().st_size > 10_000, png
        assert f"figures/{fig}.png" in config["outputs"]
    return config


def test_fig4_tiny_on_few_steps_and_a_second_run_refused(tmp_path: Path) -> None:
    proc = run_script("fig4_smoothness.py", "--out", str(tmp_path), "--steps", "10")
    assert proc.returncode == 0, proc.stderr
    config = check_outputs("fig4_smoothness.py", tmp_path, 10)
    assert config["settings"]["probe_every"] == 1  # 10 of 600 steps, scaled to 10
    assert config["runs"]["vgg"]["probe_every"] == 1
    with h5py.File(tmp_path / "vgg/run.h5", "r") as f:
        assert len(f["probe/bn/step"]) == 10 and len(f["probe/plain/step"]) == 10
    again = run_script("fig4_smoothness.py", "--out", str(tmp_path), "--steps", "10")
    assert again.returncode == 2 and "pass --overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_paper_preset_without_data_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {**ENV, "LANDSCAPE_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "out"
    proc = run_script("fig1_training.py", "--preset", "paper", "--out", str(out), env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cifar10 files not found" in lines[0]
    assert "--data-dir DIR or --download" in lines[0]
    assert not out.exists()  # nothing written


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_every_tiny_preset_runs(name: str, tmp_path: Path) -> None:
    steps = 30
    proc = run_script(name, "--out", str(tmp_path), "--steps", str(steps), "--seed", "1")
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    config = check_outputs(name, tmp_path, steps)
    assert config["seed"] == 1
    if name == "fig1_training.py":  # a study file: what docs/hdf5-schema.md lists for them
        study = Written.of(tmp_path / "fig1.h5")
        assert [p for p in problems(DOC.read_text(), [study]) if p.startswith("fig1.h5")] == []
        assert {lay["index"] for lay in config["layers_chosen"]} == {3, 5}  # as fig2's


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(NEEDS_CIFAR) - {"fig1_training.py"}))
def test_every_paper_preset_names_its_missing_data(name: str, tmp_path: Path) -> None:
    env = {**ENV, "LANDSCAPE_DATA_DIR": str(tmp_path / "data")}
    proc = run_script(name, "--preset", "paper", "--out", str(tmp_path / "out"), env=env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cifar10 files not found" in proc.stderr


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_scripts_say_how_to_run_them(name: str) -> None:
    text = (SCRIPTS / name).read_text()
    assert text.startswith('"""') and f"scripts/{name} [--preset tiny|paper]" in text
    assert "--preset" in text and "PRESETS = {" in text and '"paper":' in text


def test_mutation_runs_take_the_package_top_level_as_the_root_wing(capsys) -> None:
    """``make mutate WING=root MODULES=_params`` mutates ``landscape/_params.py`` against
    ``tests/test_params.py``; a wing's modules stay under the wing; root without modules, a
    module or a test file that does not exist are one usage error each, before any run."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import mutate
    finally:
        sys.path.remove(str(SCRIPTS))
    table = mutate.mutmut_table("root", ["_params"], mutate.default_tests("root", ["_params"]))
    assert 'only_mutate = ["landscape/_params.py"]' in table
    assert 'pytest_add_cli_args_test_selection = ["tests/test_params.py"]' in table
    assert 'only_mutate = ["landscape/probes/core.py"]' in mutate.mutmut_table(
        "probes", ["core"], mutate.default_tests("probes", ["core"])
    )
    assert mutate.default_tests("probes", []) == ["tests/probes/"]
    for argv, says in [
        (["root"], "root needs --modules"),
        (["root", "--modules", "_nope"], "no module landscape/_nope.py"),
        (["probes", "--modules", "_params"], "no module landscape/probes/_params.py"),
        (["root", "--modules", "_files", "--tests", "tests/nope.py"], "no tests at tests/nope.py"),
    ]:
        with pytest.raises(SystemExit) as stop:
            mutate.main(argv)
        assert stop.value.code == 2 and says in capsys.readouterr().err


UNDECORATE_CASE = """
import contextlib
import functools

calls = []

def trace(tag):
    def wrap(fn):
        calls.append(tag)
        @functools.wraps(fn)
        def inner(*args):
            return (tag, fn(*args))
        return inner
    return wrap

@contextlib.contextmanager
def held(x):
    calls.append("enter")
    yield x + 1
    calls.append("exit")

@trace("outer")
@trace("inner")
def twice(x):
    return x * 2

class Box:
    def __init__(self):
        self._v = 1

    @property
    def v(self):
        return self._v

    @v.setter
    def v(self, value):
        self._v = value * 10

    @staticmethod
    def kind():
        return "box"
"""


def test_undecorate_keeps_what_decorated_functions_do() -> None:
    """The rewrite that lets mutmut reach decorated functions: the same behaviour (a
    context manager, stacked decorators applied inner first and once each, a property with
    its setter, a static method left as it is) and no decorated function left."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        from _undecorate import undecorate
    finally:
        sys.path.remove(str(SCRIPTS))
    rewritten = undecorate(UNDECORATE_CASE)
    assert "@contextlib" not in rewritten and "@trace" not in rewritten
    assert "@property" not in rewritten and "@staticmethod" in rewritten
    assert 'twice = trace("outer")(trace("inner")(twice))' in rewritten
    results = []
    for source in (UNDECORATE_CASE, rewritten):
        ns: dict = {}
        exec(compile(source, "<case>", "exec"), ns)  # the test's own literal source
        with ns["held"](1) as got:
            assert got == 2
        box = ns["Box"]()
        box.v = 3
        results.append((ns["twice"](4), box.v, ns["Box"].kind(), ns["calls"]))
    assert results[0] == results[1]
    assert results[0] == (("outer", ("inner", 8)), 30, "box", ["inner", "outer", "enter", "exit"])
