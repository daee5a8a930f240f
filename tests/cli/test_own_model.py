"""Your own model, data and weights through the command line: from
``torch.save(model.state_dict(), "m.pt")`` in a scratch folder to probes and slices.

Before: it took a factory with six meaningless keyword arguments, re-saving through private
helpers, ``PYTHONPATH=.`` and ``--trust-factory``; probe and slice had no ``--model``.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from landscape import load_dataset
from landscape.data import dataset_batches
from landscape.probes import read_offline_probes
from landscape.slices import read_grid
from tests.cli.helpers import error_line, invoke

MODELS = """
import torch
from torch import nn

def make(width=16):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.BatchNorm1d(width), nn.ReLU(),
                         nn.Linear(width, 10))
"""
DATA = """
from landscape import load_dataset

def digits():
    return load_dataset("digits")

def batches():
    d = load_dataset("digits")
    return [(d.x_train[i : i + 100], d.y_train[i : i + 100]) for i in (0, 100, 200)]
"""


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder with mymodels_own.py, mydata_own.py and a model trained there by hand."""
    folder = tmp_path_factory.mktemp("own")
    (folder / "mymodels_own.py").write_text(MODELS)
    (folder / "mydata_own.py").write_text(DATA)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                          nn.Linear(16, 10))  # fmt: skip
    d = load_dataset("digits")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(0, 640, 64):
        opt.zero_grad()
        nn.functional.cross_entropy(model(d.x_train[i : i + 64]), d.y_train[i : i + 64]).backward()
        opt.step()
    torch.save(model.state_dict(), folder / "m.pt")
    torch.save(model, folder / "whole.pt")
    return folder, model


OWN = ["--model", "mymodels_own:make", "--model-option", "width=16"]
CPU = ["--device", "cpu", "-q"]


def test_a_plain_state_dict_is_sliced_from_the_shell(scratch):
    """A real shell run: the current folder is importable, as with python -m."""
    folder, model = scratch
    cmd = [sys.executable, "-m", "landscape", "slice", "m.pt", *OWN, "--dataset", "digits",
           "--x", "-1:1:5", "--examples", "200", *CPU, "--out", "s.h5"]  # fmt: skip
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    res = read_grid(folder / "s.h5")
    ((x, y),) = dataset_batches("digits", examples=200)
    with torch.no_grad():
        at_theta = float(nn.functional.cross_entropy(model.eval()(x), y))
    assert res.values["loss"][2] == pytest.approx(at_theta, rel=1e-5)
    assert res.meta["model"] == "mymodels_own:make" and res.meta["spec"]["options"] == {"width": 16}


def test_info_probe_and_slice_of_your_own_weights(scratch, monkeypatch):
    folder, _ = scratch
    monkeypatch.chdir(folder)
    info = invoke("info", "m.pt")
    assert info.exit_code == 0 and "a state_dict, not a landscape checkpoint" in info.output
    assert "tensors: 9 (" in info.output and "pass --model package.module:factory" in info.output
    loads = invoke("info", "m.pt", *OWN)
    assert loads.exit_code == 0 and "load into it" in loads.output
    sliced = invoke("slice", "m.pt", *OWN, "--data", "mydata_own:batches", "--x", "-1:1:3",
                    *CPU, "--out", "b.h5")  # fmt: skip
    assert sliced.exit_code == 0, sliced.output
    assert read_grid(folder / "b.h5").meta["eval_examples"] == 300
    probed = invoke("probe", "--checkpoint", "m.pt", *OWN, "--data", "mydata_own:digits", "--lr",
                    "0.1", "--batch-size", "32", "--batches", "2", "--count", "3", *CPU,
                    "--out", "p.h5")  # fmt: skip
    assert probed.exit_code == 0, probed.output
    rows = read_offline_probes(folder / "p.h5")["model"]
    assert rows["step"].tolist() == [0] and np.isfinite(rows["beta"]).all()


def test_a_pickled_model_needs_trust_and_bad_input_is_one_line(scratch, monkeypatch):
    folder, _ = scratch
    monkeypatch.chdir(folder)
    args = ["slice", "whole.pt", *OWN, "--dataset", "digits", "--x", "-1:1:3", "--examples",
            "100", *CPU]  # fmt: skip
    line = error_line(invoke(*args, "--out", "w.h5"))
    assert "is a whole pickled model: loading it runs code" in line and "--trust-pickle" in line
    assert not (folder / "w.h5").exists()
    assert invoke(*args, "--trust-pickle", "--out", "w.h5").exit_code == 0
    assert "pass --model package.module:factory" in error_line(
        invoke("slice", "m.pt", "--dataset", "digits", *CPU, "--out", "x.h5")
    )
    assert "cannot import model factory 'nosuch:make'" in error_line(
        invoke("slice", "m.pt", "--model", "nosuch:make", "--dataset", "digits", *CPU)
    )
    assert "cannot rebuild its model" in error_line(
        invoke("slice", "m.pt", "--model", "mymodels_own:make", "--model-option", "width=8",
               "--dataset", "digits", *CPU))  # fmt: skip
    assert "records no training data set: pass dataset (--dataset)" in error_line(
        invoke("slice", "m.pt", *OWN, *CPU)
    )
