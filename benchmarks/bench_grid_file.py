"""What writing a slice to a resumable HDF5 file costs over evaluating it in memory.

``run_grid`` (file, flushed in chunks) against ``evaluate_grid`` (in memory) on the same
model, data, directions and grid, calls alternated; a small MLP on 1000 digits examples, so
that the evaluation is cheap and the file's share is visible. Prints medians and the ratio.

Run:  .venv/bin/python benchmarks/bench_grid_file.py [--grid 31] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from landscape.data import load_dataset
from landscape.slices import evaluate_grid, random_directions, run_grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--grid", type=int, default=31, help="G: a G x G grid")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10)
    ).eval()
    ds = load_dataset("digits")
    data = [(ds.x_train[:1000], ds.y_train[:1000])]
    dirs = random_directions(model, 2, seed=0)
    axis = f"-1:1:{args.grid}"
    points = args.grid**2
    evaluate_grid(model, F.cross_entropy, data, dirs, "-1:1:3", "-1:1:3")  # warm-up

    memory, file = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            t0 = time.perf_counter()
            evaluate_grid(model, F.cross_entropy, data, dirs, axis, axis)
            memory.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run_grid(Path(tmp) / f"{k}.h5", model, F.cross_entropy, data, dirs, axis, axis, meta={})
            file.append(time.perf_counter() - t0)
    tm, tf = statistics.median(memory), statistics.median(file)
    print(f"torch {torch.__version__}  threads {torch.get_num_threads()}  {points} points")
    print("| evaluate_grid (s) | run_grid (s) | run_grid / evaluate_grid | file cost per point |")
    print("|---|---|---|---|")
    print(f"| {tm:.3f} | {tf:.3f} | {tf / tm:.2f} | {1e6 * (tf - tm) / points:.0f} us |")


if __name__ == "__main__":
    main()
