"""The installed package is complete: a wheel built from this tree, installed into a scratch
folder, loads the bundled digits and runs its command line (before, a regular install lacked
the data: `load_dataset("digits")` failed)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_a_wheel_carries_the_digits_and_runs(tmp_path):
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(wheels), str(ROOT)], check=True, capture_output=True)
    (wheel,) = wheels.glob("landscape-*.whl")
    assert "landscape/data/digits.npz" in zipfile.ZipFile(wheel).namelist()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import landscape; from landscape import load_dataset; "
            "print(landscape.__file__); print(len(load_dataset('digits').x_train))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert out[0].startswith(str(target)) and out[1] == "1438"
    demo = subprocess.run([sys.executable, "-m", "landscape", "demo", "--help"], env=env,
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert demo.returncode == 0 and "Usage: landscape demo" in demo.stdout
