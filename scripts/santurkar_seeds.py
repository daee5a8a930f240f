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

Run:  .venv/bin/python scripts/santurkar_seeds.py [--seeds 0 1 2] [--steps 600] [--quick]
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

from landscape import store
from landscape.store import RUN_FILE, VARIANTS
from landscape.train import TrainConfig, train_pair

METRICS = ("beta", "grad_pred", "loss_range")
QUICK = {"steps": 60, "probe_every": 10}  # a smoke run: minutes, not a result


def per_step(probe: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per probed step (T,): beta, max over eta of grad_distance, loss range over eta."""
    gd, loss = probe["grad_distance"], probe["loss"]  # (T, K), K = number of step sizes
    return {
        "beta": probe["beta"],
        "grad_pred": gd.max(axis=1),
        "loss_range": loss.max(axis=1) - loss.min(axis=1),
    }


def spread(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    q1, med, q3 = np.nanpercentile(v, [25, 50, 75])
    return {
        "median": med,
        "min": np.nanmin(v),
        "max": np.nanmax(v),
        "iqr": q3 - q1,
        "std": np.nanstd(v, ddof=1) if len(v) > 1 else float("nan"),
    }


def read_run(run_file: Path) -> dict[str, dict]:
    """Per variant: medians over probed steps, number of probes, training status, eval accuracy."""
    out = {}
    with h5py.File(run_file, "r") as f:
        for v in VARIANTS:
            rows = store.read_series(f[f"probe/{v}"])
            series, steps = per_step(rows), rows["step"]
            finite = {k: s[np.isfinite(s)] for k, s in series.items()}
            ev = store.read_series(f[f"eval/{v}"])
            out[v] = {
                **{k: float(np.median(s)) if s.size else float("nan") for k, s in finite.items()},
                "n_probes": len(steps),
                **{f"{k}_step0": float(series[k][0]) for k in METRICS},  # at initialisation
                "n_nonfinite": {k: int((~np.isfinite(s)).sum()) for k, s in series.items()},
                "status": str(f[f"train/{v}"].attrs.get("status", "")),
                "eval_accuracy": float(ev["accuracy"][-1]),
                "final_step": int(ev["step"][-1]),
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
    args = ap.parse_args()
    if args.quick:
        args.steps, args.probe_every = QUICK["steps"], QUICK["probe_every"]
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    base = TrainConfig(
        model="vgg_small",
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
    for seed in args.seeds:
        config = TrainConfig.from_dict({**base.to_dict(), "seed": seed})
        run_dir = args.out / f"seed{seed}"
        t0 = time.perf_counter()
        train_pair(config, run_dir, overwrite=True)
        wall[seed] = time.perf_counter() - t0
        results[seed] = read_run(run_dir / RUN_FILE)
        r = results[seed]
        print(
            f"seed {seed}: {wall[seed]:.0f} s; "
            + "; ".join(
                f"{v} [{r[v]['status']}, acc {r[v]['eval_accuracy']:.3f}] "
                + " ".join(f"{m} {r[v][m]:.4g}" for m in METRICS)
                for v in VARIANTS
            ),
            flush=True,
        )

    seeds = args.seeds
    ratios = {m: [results[s]["bn"][m] / results[s]["plain"][m] for s in seeds] for m in METRICS}
    agg = {v: {m: spread([results[s][v][m] for s in seeds]) for m in METRICS} for v in VARIANTS}
    agg["bn/plain"] = {m: spread(ratios[m]) for m in METRICS}
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
        "ratio_bn_over_plain": {m: dict(zip(map(str, args.seeds), ratios[m])) for m in METRICS},
        "across_seeds": agg,
        "wall_s": {str(s): wall[s] for s in args.seeds},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
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
        f"{grid.high:g}] ({grid.count}, {grid.spacing}), seeds {args.seeds}; median over "
        "probed steps, then median [min..max] (IQR) over seeds\n"
    )
    print("| metric | BN | plain | BN/plain per seed | BN lower in |")
    print("|---|---|---|---|---|")
    for m in METRICS:
        cell = {v: agg[v][m] for v in VARIANTS}
        fmt = {
            v: f"{c['median']:.4g} [{c['min']:.4g}..{c['max']:.4g}] ({c['iqr']:.3g})"
            for v, c in cell.items()
        }
        per = ", ".join(f"{r:.2f}" for r in ratios[m])
        lower = sum(r < 1 for r in ratios[m])
        print(f"| {names[m]} | {fmt['bn']} | {fmt['plain']} | {per} | {lower}/{len(seeds)} seeds |")
    at0 = {
        v: {m: np.median([results[s][v][f"{m}_step0"] for s in seeds]) for m in METRICS}
        for v in VARIANTS
    }
    print(
        "\nat step 0 alone (median over seeds): "
        + "; ".join(f"{m} BN {at0['bn'][m]:.4g} vs plain {at0['plain'][m]:.4g}" for m in METRICS)
    )
    print(f"\nsummary: {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
