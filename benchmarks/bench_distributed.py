"""Speed-up of torchrun with 2 processes over 1, for a slice and for offline probes.

Each measurement launches ``torchrun --standalone --nproc_per_node N`` on this script's
worker with one thread per process (``OMP_NUM_THREADS=1``), so N processes use N cores.
The worker times the library call between two barriers (process start-up, imports and the
rendezvous are reported apart, as "launch"), and rank 0 writes the seconds to a JSON file.
Runs of 1 and 2 processes are alternated and the medians compared:

    speed-up = t(1 process) / t(2 processes),  efficiency = speed-up / 2

The speed-up of each repeat is taken from one 1-process and one 2-process run back to back;
the table shows its median and range over the repeats (the machine is shared: single runs
vary by 10-20 %).

Workloads: a 15x15 random plane of vgg_small (BN) on 1000 digits examples (225 points, one
forward pass over the data each), and the offline probes of a small trained pair (22
checkpoints, 2 batches of 128, 8 step sizes, ICS).

Run:  .venv/bin/python benchmarks/bench_distributed.py [--repeats 3] [--grid 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _machine
import torch
import torch.distributed as dist
import torch.nn.functional as F

from landscape import distributed
from landscape.data import dataset_batches
from landscape.models import create_model
from landscape.probes import OfflineProbeConfig, probe_checkpoints
from landscape.slices import random_directions, run_grid
from landscape.store import list_checkpoints
from landscape.train import TrainConfig, train_pair


def worker(args: argparse.Namespace) -> None:
    """Run under torchrun: the timed call between barriers; rank 0 writes the seconds."""
    with distributed.session("cpu") as r:
        out, sync = Path(args.out), (dist.barrier if r.world > 1 else lambda: None)
        if args.worker == "slice":
            torch.manual_seed(0)
            model = create_model("vgg_small", bn=True, input_shape=(1, 8, 8)).eval()
            data = dataset_batches("digits")
            dirs = random_directions(model, 2, seed=0)
            axis = f"-1:1:{args.grid}"
            sync()
            t0 = time.perf_counter()
            run_grid(out / "slice.h5", model, F.cross_entropy, data, dirs, axis, axis, meta={})
        else:
            run = Path(args.trained)
            files = {v: [p for _, p in list_checkpoints(run / "checkpoints" / v)]
                     for v in ("bn", "plain")}  # fmt: skip
            config = OfflineProbeConfig(num_batches=2, ics=True)
            sync()
            t0 = time.perf_counter()
            probe_checkpoints(files, out / "probes.h5", config, device="cpu")
        sync()
        seconds = time.perf_counter() - t0
        if r.main:
            (out / "seconds.json").write_text(json.dumps({"seconds": seconds, "world": r.world}))


def launch(n: int, work: str, grid: int, run: Path) -> tuple[float, float]:
    """(timed seconds, whole launch seconds) of one torchrun with ``n`` processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={n}", __file__, "--worker", work, "--out", tmp,
               "--grid", str(grid), "--trained", str(run)]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        whole = time.perf_counter() - t0
        return json.loads((Path(tmp) / "seconds.json").read_text())["seconds"], whole


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--grid", type=int, default=15, help="G: a G x G slice")
    ap.add_argument("--worker", choices=["slice", "probe"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--trained", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"torch {torch.__version__}; {_machine.cpu()}; load {_machine.load()}; "
          "one thread per process")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        config = TrainConfig(model="vgg_small", steps=40, checkpoint_every=4, device="cpu")
        train_pair(config, run)  # 11 checkpoints per variant
        print("| workload | 1 process (s) | 2 processes (s) | speed-up median [range] "
              "| efficiency | launch, 1 / 2 (s) |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for work in ("slice", "probe"):
            times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
            for _ in range(args.repeats):
                for n in (1, 2):
                    times[n].append(launch(n, work, args.grid, run))
            t1, t2 = (statistics.median(t for t, _ in times[n]) for n in (1, 2))
            w1, w2 = (statistics.median(w for _, w in times[n]) for n in (1, 2))
            ups = [a / b for (a, _), (b, _) in zip(times[1], times[2])]
            up = statistics.median(ups)
            what = f"slice {args.grid}x{args.grid}" if work == "slice" else "probe 22 ckpts"
            print(f"| {what} | {t1:.2f} | {t2:.2f} | {up:.2f} [{min(ups):.2f}..{max(ups):.2f}] "
                  f"| {up / 2:.0%} | {w1:.1f} / {w2:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
