"""Every performance ratio of the slices and probes in one run, each measured side by side.

Printed (sections first, then one summary table with the targets):

    slice / frozen bound    slice throughput (float32) against the same network frozen for
                            inference (torch.jit.freeze + optimize_for_inference: weights baked
                            in, BN folded, oneDNN layouts) on the same batches, the bound's
                            passes run in blocks after each grid row; target >= 0.9
    slice / own forward     the same point against the model's own eager forward (the older,
                            easier yardstick, labelled as such)
    bf16 / fp32             precision="bf16" against float32, grid rows interleaved, with the
                            largest and median |loss_bf16 - loss_fp32|, for vgg_small at width 16
                            (the default) and 64 (convolutions large enough for bf16's kernels
                            to matter); target >= 1.8. Beside it the vehicle's forward alone in
                            both precisions, passes alternated: the most bf16 can gain here
                            (a point also sets weights and computes the loss, which bf16 does
                            not speed up)
    ours / loss-landscapes  random_plane vs the PyPI package's, one batch (lower is better)
    ours / Li et al.        evaluate_grid vs Li et al.'s per-point loop (set the weights, one
                            pass over a DataLoader with 2 workers, loss.item() and the correct
                            count per batch), the same DataLoader, rows alternated
    per-point overhead      evaluate_grid over a minimal hand loop, small MLP; target <= 50 us
    probe / passes          gradient_probe against its k + 1 forward+backward passes run back
                            to back (k with base=), BN and plain vgg_small; target <= 1.05;
                            beside it the same passes as the probe runs them (conv weights
                            channels_last on the CPU): the probe's own bookkeeping

Setup: vgg_small (BN, eval), the digits training split (1438 examples) in batches of 512,
float32, one thread unless --threads says otherwise; the CPU flags and the load average are
printed with the numbers. Run alone: on a 2-core machine anything else running moves them.

Run:  .venv/bin/python benchmarks/bench_report.py [--quick] [--threads 1]
The peer needs the benchmark-only package: .venv/bin/pip install --no-deps loss-landscapes==3.0.6
"""

from __future__ import annotations

import argparse
import statistics
import time

import _machine
import bench_probe
import bench_slices as B
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import landscape
import landscape.slices as S
import landscape.slices.fold as fold
from landscape._params import channels_last

BOUND_TARGET = 0.9
LI_WORKERS = 2


def li_per_point(model: nn.Module, loader, dirs, coords) -> list[float]:
    """Seconds per point of Li et al.'s evaluation: weights set from the base by new tensors
    (``p.data = w + x d0 + y d1``), ``model.eval()``, one no-grad pass over the DataLoader with
    ``loss.item() * batch`` and the correct count read back per batch."""
    params = dict(model.named_parameters())
    base = {n: p.detach().clone() for n, p in params.items()}
    d1, d2 = dirs
    times = []
    for a, b in coords:
        t0 = time.perf_counter()
        for n, p in params.items():
            p.data = base[n] + a * d1[n] + b * d2[n]
        model.eval()
        total, correct, seen = 0.0, 0, 0
        with torch.no_grad():
            for x, y in loader:
                x, y = x.to(B.DEVICE), y.to(B.DEVICE)
                out = model(x)
                total += F.cross_entropy(out, y).item() * len(y)
                correct += int(out.argmax(1).eq(y).sum().item())
                seen += len(y)
        times.append(time.perf_counter() - t0)
        assert total / seen == total / seen  # a number, as Li's loop returns it
    for n, p in params.items():
        p.data = base[n]
    return times


def versus_li(model, data, dirs, g: int) -> dict:
    """Ours and Li's per-point loop on the same DataLoader with workers, rows alternated.
    Ours is timed from one point's progress call to the next (its setup, the describing pass
    and the vehicle's check, is the call's, not a point's: bench_scaling fits it apart)."""
    x = torch.cat([b[0] for b in data]).cpu()  # a DataLoader serves host memory
    y = torch.cat([b[1] for b in data]).cpu()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=len(data[0][1]), num_workers=LI_WORKERS
    )
    coords = np.linspace(-1, 1, g)
    spec = f"-1:1:{g}"
    ours: list[float] = []
    li: list[float] = []
    for row in [[0, 1], *B.grid_rows(g)]:  # first "row": warm-up, not counted
        li_t = li_per_point(model, loader, dirs, [(coords[k % g], coords[k // g]) for k in row])
        marks: list[float] = []  # progress to progress: the call's setup is not a point's
        S.evaluate_grid(
            model, F.cross_entropy, loader, dirs, spec, spec, points=row, accuracy=True,
            progress=lambda done, total, marks=marks: marks.append(time.perf_counter()),
        )  # fmt: skip
        if row != [0, 1]:
            li += li_t
            ours += list(np.diff(marks))
    return {"ours": B.med(ours), "li": B.med(li), "ratio": B.med(ours) / B.med(li)}


def vehicle_parts(model: nn.Module, data, repeats: int = 30) -> dict[str, float]:
    """Where a point's time goes: the frozen bound, the slice's vehicle forward alone, the
    vehicle's refresh of every fold (a grid pays it only for folds whose scale its directions
    move: the others are set with the point), medians of interleaved timings (seconds)."""
    bound = B.frozen_bound(model, data)
    if bound is None:
        return {}
    cl = fold.CHANNELS_LAST and B.DEVICE.type == "cpu"
    with channels_last(model, cl):
        vehicle = fold.vehicle(model, data[0][0], channels_last=cl, running_stats=True,
                               bf16=False)  # fmt: skip
        if vehicle is None:
            return {}
        vehicle.refresh()
        fns = {"bound": lambda: B.forward_pass(bound, data),
               "vehicle forward": lambda: B.forward_pass(vehicle, data)}  # fmt: skip

        def refresh() -> float:
            t0 = time.perf_counter()
            vehicle.refresh()
            return time.perf_counter() - t0

        fns["refresh of every fold (as when the directions move gamma)"] = refresh
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for k, f in fns.items():
                times[k].append(f())
    return {k: B.med(v) for k, v in times.items()}


def bf16_ceiling(model: nn.Module, data, repeats: int = 15) -> dict[str, float]:
    """The slice's vehicle forward alone over ``data``, float32 and bf16 (its blocked trunk in
    bfloat16, the rest under autocast, as ``precision="bf16"`` runs it), passes alternated;
    medians in seconds. Empty where no vehicle is built (no blocked trunk on this device)."""
    cl = fold.CHANNELS_LAST and B.DEVICE.type == "cpu"
    with channels_last(model, cl):
        first = data[0][0]
        found = {
            bf16: fold.vehicle(model, first, channels_last=cl, running_stats=True, bf16=bf16)
            for bf16 in (False, True)
        }
        if any(v is None or not v.convs for v in found.values()):
            return {}
        for v in found.values():
            v.refresh()
        autocast = torch.autocast(B.DEVICE.type, dtype=torch.bfloat16)
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for _ in range(repeats):
            times["fp32"].append(B.forward_pass(found[False], data))
            with autocast:
                times["bf16"].append(B.forward_pass(found[True], data))
    return {k: B.med(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--grid", type=int, default=11, help="G x G grids (throughput, bf16, Li)")
    ap.add_argument("--probe-repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--quick", action="store_true", help="tiny grids and repeats (a smoke run)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:k]: model, data, directions")
    args = ap.parse_args()
    B.DEVICE = torch.device(args.device)
    if B.DEVICE.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here")
    if args.quick:
        args.grid, args.probe_repeats = 3, 2
    torch.set_num_threads(args.threads)
    kept = landscape.keep_freed_memory()
    g = args.grid
    print(
        f"torch {torch.__version__}  device {B.hardware_name()}  "
        f"threads {torch.get_num_threads()}  {_machine.cpu()}  allocator "
        f"{'keep_freed_memory()' if kept else 'glibc defaults'}  load {_machine.load()}"
    )
    rows: list[tuple[str, str, str]] = []  # (quantity, value, target and verdict)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    model, data, dirs = B.setup(512)
    t = B.throughput(model, data, dirs, g)
    print(f"\n## slice vs bound and own forward ({g}^2, vgg_small BN, 1438 examples)\n")
    print(f"point {1e3 * t['point_median']:.2f} ms, frozen bound {1e3 * t['bound_median']:.2f} "
          f"ms, model's own forward {1e3 * t['limit_median']:.2f} ms (medians)")  # fmt: skip
    rows.append(("slice / frozen-forward bound (fp32), medians; row pairs",
                 f"{t['bound_ratio']:.3f}; {t['bound_pairs']:.3f}",
                 f">= {BOUND_TARGET}: {verdict(t['bound_ratio'] >= BOUND_TARGET)}"))  # fmt: skip
    parts = vehicle_parts(model, data)
    if parts:
        print("vehicle alone (medians, interleaved): "
              + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in parts.items()))  # fmt: skip
        rows.append(("the vehicle's forward alone / frozen bound (no loss, no point set)",
                     f"{parts['bound'] / parts['vehicle forward']:.3f}", ""))  # fmt: skip
    rows.append(("slice / model's own forward (the older yardstick)",
                 f"{t['ratio_median']:.3f}", ""))  # fmt: skip

    print("\n## bf16 vs fp32 (rows interleaved)\n")
    print("| vgg_small width | fp32 ms/pt | bf16 ms/pt | fp32/bf16 | max abs dev "
          "| median abs dev | forward alone fp32/bf16 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for width in (16, 64):
        m, d, dr = B.setup(512, width=width)
        b = B.bf16_vs_fp32(m, d, dr, min(g, 5))
        c = bf16_ceiling(m, d, 3 if args.quick else 15)
        ceiling = f"{c['fp32'] / c['bf16']:.2f}" if c else "n/a"
        print(f"| {width} | {1e3 * b['fp32']['steady']:.2f} | {1e3 * b['bf16']['steady']:.2f} "
              f"| {b['speedup']:.2f} | {b['max_dev']:.2e} | {b['median_dev']:.2e} "
              f"| {ceiling} |")  # fmt: skip
        rows.append((f"bf16 / fp32 speed, width {width} (max, median abs dev)",
                     f"{b['speedup']:.2f} ({b['max_dev']:.1e}, {b['median_dev']:.1e})",
                     f">= {B.BF16_TARGET}: {verdict(b['speedup'] >= B.BF16_TARGET)}"))  # fmt: skip
        rows.append((f"bf16 / fp32, the vehicle's forward alone, width {width} (the ceiling)",
                     ceiling, ""))  # fmt: skip

    p = B.versus_peer(model, data, g, 2 if args.quick else 3)
    value = "not installed" if p is None else f"{p['ratio']:.3f}"
    rows.append(("ours / loss-landscapes random_plane (one batch)", value, "< 1 is faster"))

    li = versus_li(model, data, dirs, min(g, 5))
    print(f"\n## ours vs Li et al.'s per-point loop (DataLoader, {LI_WORKERS} workers)\n")
    print(f"ours {1e3 * li['ours']:.1f} ms/pt, Li's {1e3 * li['li']:.1f} ms/pt")
    rows.append((f"ours / Li's per-point method, DataLoader with {LI_WORKERS} workers",
                 f"{li['ratio']:.3f}", "< 1 is faster"))  # fmt: skip

    o = B.overhead(min(g, 5))
    for name, v in o.items():
        over = 1e6 * (v["grid"] - v["hand"])
        target = B.OVERHEAD_TARGET_US
        rows.append((f"per-point overhead over a hand loop, mlp {name} (us)", f"{over:.0f}",
                     f"<= {target:.0f}: {verdict(over <= target)}"))  # fmt: skip

    k = 8
    r = bench_probe.measure(128, [k], args.probe_repeats, 3, B.DEVICE)
    for v in bench_probe.VARIANTS:
        for form, passes in (("full", k + 1), ("base", k)):
            key = (v, k, form)
            probe = statistics.median(r["probe"][key])
            ratio = probe / statistics.median(r["loop"][key])
            rows.append((f"probe / its {passes} passes back to back, {v}, {form}",
                         f"{ratio:.3f}",
                         f"<= {bench_probe.PASS_TARGET}: "
                         f"{verdict(ratio <= bench_probe.PASS_TARGET)}"))  # fmt: skip
            as_run = probe / statistics.median(r["loop_cl"][key])
            rows.append((f"probe / the same passes as it runs them (channels_last), {v}, {form}",
                         f"{as_run:.3f}", "its own bookkeeping; no target"))  # fmt: skip

    print(f"\n## Summary (load at the end: {_machine.load()})\n")
    print("| quantity | measured | target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")


if __name__ == "__main__":
    main()
