"""Santurkar et al. (2018) Sec. 3.2 over seeds: is BN smoother than plain on digits at lr 0.1?

Trains the BN / plain pair (``vgg_small`` on digits, SGD, lr 0.1, batch 128) once per seed,
probing along the gradient every ``--probe-every`` steps on the step's batch with the paper's
VGG grid eta in [0.5, 4] x lr (8 step sizes, linear). Per seed and variant it reports the
median over probed steps of

    beta          effective beta-smoothness: max_eta ||grad L(theta - eta g) - g|| / ||eta g||
    grad_pred     gradient predictiveness: max_eta ||grad L(theta - eta g) - g||
                  (lower = more predictive)
    loss_range    max_eta L(theta - eta g) - min_eta L(theta - eta g)

then, across seeds, their median, min..max, IQR and std, and the BN/plain ratio per seed.
Santurkar et al. found BN lower on all three. The numbers are reported as measured.
The seed sets the initial weights, the batch order and the digits train/test split.

Outcomes first (science.md s. 5, ``landscape.comparison``): each network is trained,
stalled at chance or diverged; only the networks that trained enter a median (the others
are counted and named, never averaged in), and every seed's value is printed beside the
median and range. The probes are also compared at matched step (0, the middle, the last
probed step) and at matched training loss (the first probe at or after the first step whose
10-step mean training loss is at most L, for levels L inside the range every trained
network reaches): a network on a plateau is trivially "smooth" at a matched step.

Run:  .venv/bin/python scripts/santurkar_seeds.py [--seeds 0 1 2] [--steps 600] [--quick]
      [--activation sigmoid]
Writes one run directory per seed under --out (``seed<k>/run.h5``) and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from landscape import cpu_description, store
from landscape.comparison import (
    Network,
    comparison_lines,
    outcome_text,
    over_run,
    run_networks,
)
from landscape.data import load_dataset
from landscape.store import RUN_FILE, VARIANTS
from landscape.train import TrainConfig, train_pair

METRICS = ("beta", "grad_pred", "loss_range")
QUICK = {"steps": 60, "probe_every": 10}  # a smoke run: minutes, not a result


def spread(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).any():  # no seed trained: nothing to summarise
        return dict.fromkeys(("median", "min", "max", "iqr", "std"), float("nan"))
    q1, med, q3 = np.nanpercentile(v, [25, 50, 75])
    return {
        "median": med,
        "min": np.nanmin(v),
        "max": np.nanmax(v),
        "iqr": q3 - q1,
        "std": np.nanstd(v, ddof=1) if len(v) > 1 else float("nan"),
    }


def read_run(run_file: Path, seed: int, num_classes: int) -> dict[str, dict]:
    """Per variant: its network (outcome, curve, probes), medians over probed steps, number of
    probes, outcome, training status, eval accuracy."""
    out = {}
    nets = run_networks(run_file, num_classes=num_classes, label=f"seed {seed}")
    with h5py.File(run_file, "r") as f:
        for v in VARIANTS:
            net, verdict = nets[v]
            finite = {k: s[np.isfinite(s)] for k, s in net.probes.items()}
            ev = store.read_series(f[f"eval/{v}"])
            out[v] = {
                **{k: float(np.median(s)) if s.size else float("nan") for k, s in finite.items()},
                "n_probes": len(net.probe_steps),
                **{f"{k}_step0": float(net.probes[k][0]) for k in METRICS},  # at initialisation
                "n_nonfinite": {k: int((~np.isfinite(s)).sum()) for k, s in net.probes.items()},
                "status": str(f[f"train/{v}"].attrs.get("status", "")),
                "outcome": verdict.outcome,
                "outcome_reason": verdict.reason,
                "eval_accuracy": float(ev["accuracy"][-1]),
                "final_step": int(ev["step"][-1]),
                "network": net,
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--probe-every", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("runs/santurkar_seeds"))
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK}")
    ap.add_argument("--activation", default="relu", choices=["relu", "sigmoid", "tanh"])
    args = ap.parse_args()
    if args.quick:
        args.steps, args.probe_every = QUICK["steps"], QUICK["probe_every"]
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    base = TrainConfig(
        model="vgg_small",
        activation=args.activation,
        dataset="digits",
        optimizer="sgd",
        lr=0.1,
        batch_size=128,
        steps=args.steps,
        device=args.device,
        eval_every=max(args.steps // 10, 1),
        probe_every=args.probe_every,
        probe_low=0.5,
        probe_high=4.0,
        probe_count=8,
        probe_spacing="linear",
        probe_direction="gradient",
        probe_bn_mode="train",
    )
    results, wall = {}, {}
    num_classes = load_dataset(base.dataset).num_classes
    for seed in args.seeds:
        config = TrainConfig.from_dict({**base.to_dict(), "seed": seed})
        run_dir = args.out / f"seed{seed}"
        t0 = time.perf_counter()
        train_pair(config, run_dir, overwrite=True)
        wall[seed] = time.perf_counter() - t0
        results[seed] = read_run(run_dir / RUN_FILE, seed, num_classes)
        r = results[seed]
        print(
            f"seed {seed}: {wall[seed]:.0f} s; "
            + "; ".join(
                f"{v} [{r[v]['outcome']}, acc {r[v]['eval_accuracy']:.3f}] "
                + " ".join(f"{m} {r[v][m]:.4g}" for m in METRICS)
                for v in VARIANTS
            ),
            flush=True,
        )

    seeds = args.seeds
    nets: dict[str, list[Network]] = {
        v: [results[s][v].pop("network") for s in seeds] for v in VARIANTS
    }
    both = [s for s in seeds if all(results[s][v]["outcome"] == "trained" for v in VARIANTS)]
    ratios = {m: [results[s]["bn"][m] / results[s]["plain"][m] for s in both] for m in METRICS}
    trained = {v: [s for s in seeds if results[s][v]["outcome"] == "trained"] for v in VARIANTS}
    agg = {v: {m: spread([results[s][v][m] for s in trained[v]] or [np.nan]) for m in METRICS}
           for v in VARIANTS}  # fmt: skip
    agg["bn/plain"] = {m: spread(ratios[m] or [np.nan]) for m in METRICS}
    outcomes = {v: [results[s][v]["outcome"] for s in seeds] for v in VARIANTS}
    mid = results[seeds[0]]["bn"]["n_probes"] // 2 * args.probe_every
    last = (results[seeds[0]]["bn"]["n_probes"] - 1) * args.probe_every
    matched = {m: comparison_lines(nets, m, steps=(0, mid, last), over_the_run=False)
               for m in METRICS}  # fmt: skip
    summary = {
        "what": "Santurkar et al. 2018 Sec. 3.2 gradient probes, BN vs plain, medians over probes",
        "config": {**base.to_dict(), "seed": None},
        "seeds": args.seeds,
        "step_sizes": base.step_sizes().values().tolist(),
        "metrics": {
            "beta": "median_t beta",
            "grad_pred": "median_t max_eta grad_distance",
            "loss_range": "median_t (max_eta loss - min_eta loss)",
        },
        "per_seed": {str(s): results[s] for s in args.seeds},
        "ratio_bn_over_plain": {m: dict(zip(map(str, both), ratios[m])) for m in METRICS},
        "outcomes": outcomes,
        "matched": matched,
        "across_seeds": agg,
        "wall_s": {str(s): wall[s] for s in args.seeds},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_description(),
        "quick": args.quick,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")

    names = {
        "beta": "effective beta",
        "grad_pred": "grad. predictiveness (max_eta ||dg||)",
        "loss_range": "loss range over eta",
    }
    grid = base.step_sizes()
    print(
        f"\n{base.model}, {base.dataset}, {base.optimizer.upper()} lr {base.lr:g}, batch "
        f"{base.batch_size}, {base.steps} steps, probe every {base.probe_every} "
        f"({results[seeds[0]]['bn']['n_probes']} probes), eta = lr x [{grid.low:g}, "
        f"{grid.high:g}] ({grid.count}, {grid.spacing}), {base.activation}, seeds "
        f"{args.seeds}; median over probed steps per seed, then over seeds\n"
    )
    for v in VARIANTS:
        counts = [outcomes[v].count(o) for o in ("trained", "stalled", "diverged")]
        print(f"{v}: {outcome_text(counts)}")
    print("\nmedian [min..max] (networks in the median / seeds; each seed's value, or why it is "
          "left out) over the seeds that trained\n")  # fmt: skip
    print("| metric | BN | plain | BN/plain per seed (both trained) | BN lower in |")
    print("|---|---|---|---|---|")
    for m in METRICS:
        cell = {v: over_run(nets[v], m).text("{:.4g}") for v in VARIANTS}
        per = ", ".join(f"{r:.2f}" for r in ratios[m]) or "-"
        lower = f"{sum(r < 1 for r in ratios[m])}/{len(both)} seeds"
        print(f"| {names[m]} | {cell['bn']} | {cell['plain']} | {per} | {lower} |")
    for m in METRICS:
        print(f"\n{names[m]} at matched step and at matched training loss:")
        print("\n".join(matched[m]))
    print(f"\n{cpu_description()}; {torch.get_num_threads()} threads")
    print(f"summary: {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
