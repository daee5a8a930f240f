"""The Hessian of BN and plain networks over training, over seeds (Ghorbani et al. 2019).

Trains the demo's pair (``vgg_small`` on digits, SGD, lr 0.1, batch 128, 400 steps) once per
seed, then takes the Hessian of the training loss over the first ``--examples`` training
examples (BN in train mode: batch statistics) at the checkpoints of steps ``--at``: the top
three eigenvalues, the trace (Hutch++ to 5 %) and the curvature along the gradient
g^T H g / ||g||^2. Per step and variant it prints the median [min..max] over seeds of

    lambda_1        the top eigenvalue
    lambda_1/lambda_3   how far the top one stands out of the next ones (an outlier: >> 1)
    trace           tr H, the sum of all eigenvalues
    gHg             the curvature along the gradient

and the BN/plain ratio of lambda_1 per seed. Ghorbani et al. found large isolated top
eigenvalues without BN that BN removes. The numbers are reported as measured; a network that
diverged is named and left out.

Run:  .venv/bin/python scripts/hessian_seeds.py [--seeds 0 1 2] [--threads 1]
Writes one run directory per seed under --out (``seed<k>/run.h5``, ``seed<k>/hessian.h5``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from landscape import cpu_description
from landscape.cli.demo import DEMO_CONFIG
from landscape.curvature import HessianConfig, hessian_checkpoints, read_hessian_file
from landscape.store import VARIANTS, checkpoint_dir, checkpoint_path
from landscape.train import train_pair


def fmt(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{np.median(v):.3g} [{v.min():.3g}..{v.max():.3g}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--at", type=int, nargs="+", default=[0, 100, 200, 400])
    ap.add_argument("--examples", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/hessian_seeds"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {cpu_description()}; {torch.get_num_threads()} thread(s); torch {torch.__version__}")
    config = HessianConfig(top_k=3, trace_rtol=0.05, examples=args.examples)
    table: dict[tuple[str, int], dict[str, list[float]]] = {}
    ratio: dict[int, list[float]] = {s: [] for s in args.at}
    start = time.perf_counter()
    for seed in args.seeds:
        run = args.out / f"seed{seed}"
        cfg = DEMO_CONFIG.__class__(**{**DEMO_CONFIG.to_dict(), "seed": seed, "device": "cpu",
                                       "probe_every": 0, "ics_every": 0})  # fmt: skip
        result = train_pair(cfg, run, overwrite=True)
        ended = {v: r for v, r in result.variants.items() if r.status == "finished"}
        for v, r in result.variants.items():
            if r.status != "finished":
                print(f"seed {seed} {v}: {r.status} ({r.message}): left out")
        files = {v: [checkpoint_path(checkpoint_dir(run, v), s) for s in args.at] for v in ended}
        hessian_checkpoints(files, run / "hessian.h5", config, overwrite=True)
        rows = read_hessian_file(run / "hessian.h5").rows
        for v, r in rows.items():
            for i, step in enumerate(r["step"].tolist()):
                lam = r["eigenvalues"][i]
                cell = table.setdefault((v, step), {"l1": [], "l1/l3": [], "trace": [], "gHg": []})
                cell["l1"].append(lam[0])
                cell["l1/l3"].append(lam[0] / lam[2])
                cell["trace"].append(r["trace"][i])
                cell["gHg"].append(r["curvature_gradient"][i])
        if set(rows) == set(VARIANTS):
            for i, step in enumerate(rows["bn"]["step"].tolist()):
                ratio[step].append(
                    rows["bn"]["eigenvalues"][i][0] / rows["plain"]["eigenvalues"][i][0]
                )
    print(f"# seeds {args.seeds}, {args.examples} examples, {time.perf_counter() - start:.0f} s")
    print(f"{'variant':<7}{'step':>5}  {'lambda_1':<24}{'lambda_1/lambda_3':<24}"
          f"{'trace':<24}{'gHg/|g|^2':<24}")  # fmt: skip
    for (v, step), cell in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{v:<7}{step:>5}  " + "".join(f"{fmt(cell[k]):<24}" for k in cell))
    for step, values in ratio.items():
        print(f"BN/plain lambda_1 at step {step}: " + ", ".join(f"{x:.2f}" for x in values))


if __name__ == "__main__":
    main()
