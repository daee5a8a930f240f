"""How a 2D loss-landscape slice scales: with the grid, with the evaluation set, in memory.

Setup: ``vgg_small`` (BN) in eval mode on 8x8 digits, float32, a filter-normalized random
plane (``random_directions``, drawn once, outside the timings) evaluated by
``evaluate_grid`` with bn_mode "eval", batches of ``--batch``, on ``-1:1:n`` squared.
Evaluation sets larger than the training split (1438 examples) repeat it. Printed:

    grid size     whole-call time of n x n grids (--grids) on a fixed set of --examples,
                  fitted as  t = a + b * points  (numpy.polyfit, least squares): b is the
                  cost per point, a the call's fixed cost; R^2 and the largest residual
                  relative to the fit say whether it is linear
    eval set      a fixed --size-grid grid over --sizes examples, fitted as
                  t / points = c + d * examples: d is the cost per example, c a point's
                  fixed cost (setting the point, folding BN, the loss read back)
    memory        an n x n slice (--memory-grids: 51x51 and 11x11) on --memory-examples,
                  each in a fresh process: the slice's peak RSS (VmHWM, all allocations,
                  torch's included) over the peak of the model's own forward on the same
                  data, measured first in the same process, the peak reset before each
                  (/proc/self/clear_refs), and tracemalloc's peak (Python allocations
                  only, a second slice). "No per-point copies": both independent of the
                  grid size, where each copy of the parameters would add 0.1 MiB

Timings are medians of --repeats (3; 1 with --quick) whole calls, grid sizes interleaved.
The process's user and system CPU time and minor page faults are printed at the end: on
the 2-core development VM glibc hands the activations' memory back to the kernel after
each batch and faults it in again (a quarter of the run in system time, per-point cost
1.5-1.9x); compare with
MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824 in the environment.

Run:  .venv/bin/python benchmarks/bench_scaling.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import _machine
import numpy as np
import torch
import torch.nn.functional as F

import landscape
from landscape.data import eval_batches


# ----------------------------------------------------------------------------- setup
def make_model(seed: int = 0) -> torch.nn.Module:
    ds = landscape.load_dataset("digits")
    torch.manual_seed(seed)
    return landscape.create_model("vgg_small", bn=True, input_shape=ds.input_shape).eval()


def make_data(examples: int, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``examples`` of the digits training split (repeated past its end), batched."""
    ds = landscape.load_dataset("digits")
    reps = -(-examples // len(ds.y_train))
    x = ds.x_train.repeat(reps, 1, 1, 1)[:examples].contiguous()
    y = ds.y_train.repeat(reps)[:examples].contiguous()
    return list(eval_batches(x, y, batch))


def slice_call(model, data, dirs, n: int) -> float:
    """Seconds for one whole ``evaluate_grid`` call on an n x n grid."""
    spec = f"-1:1:{n}"
    t0 = time.perf_counter()
    landscape.evaluate_grid(model, F.cross_entropy, data, dirs, spec, spec, bn_mode="eval")
    return time.perf_counter() - t0


def forward(model, data) -> None:
    with torch.inference_mode():
        for x, _ in data:
            model(x)


def linear_fit(xs, ys) -> dict:
    """Least-squares ``y = a + b x``; R^2 and residuals relative to the fitted values."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    b, a = np.polyfit(xs, ys, 1)
    fit = a + b * xs
    ss_res = float(((ys - fit) ** 2).sum())
    ss_tot = float(((ys - ys.mean()) ** 2).sum())
    rel = (ys - fit) / fit
    return {
        "a": float(a),
        "b": float(b),
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "rel": rel,
        "max_rel": float(np.abs(rel).max()),
    }


def interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds of each function, one warm-up call each, calls alternated."""
    for f in fns.values():
        f()
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            times[k].append(f())
    return {k: statistics.median(v) for k, v in times.items()}


# ----------------------------------------------------------------------------- sections
def grid_scaling(grids: list[int], examples: int, batch: int, repeats: int) -> dict:
    model = make_model()
    data = make_data(examples, batch)
    t0 = time.perf_counter()
    dirs = landscape.random_directions(model, 2, seed=0)
    t_dirs = time.perf_counter() - t0
    med = interleaved({n: (lambda n=n: slice_call(model, data, dirs, n)) for n in grids}, repeats)
    points = [n * n for n in grids]
    return {"times": med, "fit": linear_fit(points, [med[n] for n in grids]), "dirs": t_dirs}


def size_scaling(sizes: list[int], n: int, batch: int, repeats: int) -> dict:
    model = make_model()
    dirs = landscape.random_directions(model, 2, seed=0)
    data = {m: make_data(m, batch) for m in sizes}
    per_point = interleaved(
        {m: (lambda m=m: slice_call(model, data[m], dirs, n) / (n * n)) for m in sizes}, repeats
    )
    return {"times": per_point, "fit": linear_fit(sizes, [per_point[m] for m in sizes])}


def vm(key: str) -> int:
    """``VmHWM`` (peak RSS) or ``VmRSS`` of this process in bytes, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_child(n: int, examples: int, batch: int) -> None:
    """In a fresh process: the peak RSS of the model's own forward (twice) over the data,
    then of an n x n slice over the same data, each peak reset first (so the import's and
    setup's peak does not hide them); then tracemalloc's peak over a second slice."""
    model = make_model()
    data = make_data(examples, batch)
    dirs = landscape.random_directions(model, 2, seed=0)
    reset = reset_peak()
    base = vm("VmRSS")
    forward(model, data)
    forward(model, data)
    r_forward = vm("VmHWM")
    reset = reset_peak() and reset
    spec = f"-1:1:{n}"
    t0 = time.perf_counter()
    res = landscape.evaluate_grid(model, F.cross_entropy, data, dirs, spec, spec)
    wall = time.perf_counter() - t0
    r_slice = vm("VmHWM")
    tracemalloc.start()
    landscape.evaluate_grid(model, F.cross_entropy, data, dirs, spec, spec)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {
        "base": base,
        "forward": r_forward,
        "slice": r_slice,
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB on Linux
        "reset": reset,
        "py_peak": py_peak,
        "wall": wall,
        "result": sum(v.nbytes for v in res.values.values()),
        "params": sum(p.numel() * p.element_size() for p in model.parameters()),
    }
    print(json.dumps(out))


def memory(n: int, examples: int, batch: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", str(n), "--memory-examples", str(examples)]
    cmd += ["--batch", str(batch), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- report
def allocator_child(mode: str, grids: list[int], examples: int, batch: int, repeats: int) -> None:
    """Print the per-point fit of :func:`grid_scaling` as JSON, with glibc's allocator as
    the library leaves it (``default``) or after ``landscape.keep_freed_memory()``."""
    import json

    from landscape import keep_freed_memory

    kept = keep_freed_memory() if mode == "keep" else False
    before = resource.getrusage(resource.RUSAGE_SELF)
    fit = grid_scaling(grids, examples, batch, repeats)["fit"]
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"b": fit["b"], "r2": fit["r2"], "kept": kept,
                      "system": after.ru_stime - before.ru_stime,
                      "faults": after.ru_minflt - before.ru_minflt}))  # fmt: skip


def allocator(args: argparse.Namespace) -> dict[str, list[dict]]:
    """Both allocator modes, each in fresh processes, alternated twice."""
    import json
    import subprocess
    import sys

    out: dict[str, list[dict]] = {"default": [], "keep": []}
    for _ in range(1 if args.quick else 2):
        for mode in out:
            cmd = [sys.executable, __file__, "--allocator-child", mode, "--threads",
                   str(args.threads), "--batch", str(args.batch), "--examples",
                   str(args.examples), "--repeats", str(args.repeats), "--grids",
                   *map(str, args.grids)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out[mode].append(json.loads(done.stdout.splitlines()[-1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    ap.add_argument("--batch", type=int, default=500, help="evaluation batch size (500)")
    ap.add_argument("--grids", type=int, nargs="+", default=[3, 5, 7, 9, 11], help="n of n x n")
    ap.add_argument("--examples", type=int, default=1000, help="eval set of the grid section")
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    ap.add_argument("--size-grid", type=int, default=5, help="grid of the eval-set section")
    ap.add_argument("--memory-grids", type=int, nargs="+", default=[51, 11])
    ap.add_argument("--memory-examples", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3, help="timings per measurement (median)")
    ap.add_argument("--quick", action="store_true", help="small grids and sets, one repeat")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--allocator-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args.memory_child, args.memory_examples, args.batch)
        return
    if args.allocator_child is not None:
        allocator_child(args.allocator_child, args.grids, args.examples, args.batch,
                        args.repeats)  # fmt: skip
        return
    if args.quick:
        args.grids, args.examples, args.repeats = [2, 3, 4, 5], 250, 1
        args.sizes, args.size_grid, args.memory_grids = [125, 250, 500, 1000], 3, [21, 11]

    start = time.perf_counter()
    print(_machine.cpu())
    print(
        f"nproc {len(os.sched_getaffinity(0))}  threads {torch.get_num_threads()}  "
        f"torch {torch.__version__}"
    )
    print(f"loadavg at start: {_machine.load()}")
    print(
        f"vgg_small (BN) eval, digits, float32, random filter-normalized plane, bn_mode eval, "
        f"batches of {args.batch}, medians of {args.repeats}, whole evaluate_grid calls"
    )

    g = grid_scaling(args.grids, args.examples, args.batch, args.repeats)
    f = g["fit"]
    print(f"\n## Cost vs grid size ({args.examples} examples)\n")
    print("| grid | points | call (s) | ms/point | fit (s) | residual |")
    print("|---|---|---|---|---|---|")
    for n, rel in zip(args.grids, f["rel"]):
        t = g["times"][n]
        print(
            f"| {n}x{n} | {n * n} | {t:.3f} | {1e3 * t / (n * n):.2f} "
            f"| {f['a'] + f['b'] * n * n:.3f} | {100 * rel:+.1f}% |"
        )
    print(
        f"\nfit t = a + b * points: per-point cost b = {1e3 * f['b']:.3f} ms, "
        f"fixed cost a = {1e3 * f['a']:.1f} ms, R^2 = {f['r2']:.5f}, "
        f"largest relative residual {100 * f['max_rel']:.1f}%"
    )
    print(f"(random_directions, outside the calls: {1e3 * g['dirs']:.1f} ms)")
    print("(this process: glibc's allocator as the library leaves it; the CLI and")
    print(" landscape.keep_freed_memory() change it: next section)")

    alloc = allocator(args)
    print("\n## Allocator: landscape.keep_freed_memory() vs glibc's defaults (fresh processes)\n")
    print("| allocator | per-point cost b (ms) | R^2 | system time (s) | minor page faults |")
    print("|---|---|---|---|---|")
    for mode, runs in alloc.items():
        for r in runs:
            label = "keep_freed_memory()" if mode == "keep" else "glibc defaults"
            label += "" if mode == "default" or r["kept"] else " (no glibc: not applied)"
            print(f"| {label} | {1e3 * r['b']:.3f} | {r['r2']:.5f} | {r['system']:.2f} "
                  f"| {r['faults']:,} |")  # fmt: skip
    med = {m: float(np.median([r["b"] for r in runs])) for m, runs in alloc.items()}
    print(f"\nper-point cost, glibc defaults / keep_freed_memory(): "
          f"{med['default'] / med['keep']:.2f}x (medians)")  # fmt: skip

    s = size_scaling(args.sizes, args.size_grid, args.batch, args.repeats)
    f = s["fit"]
    sg = args.size_grid
    print(f"\n## Cost vs evaluation-set size ({sg}x{sg} grid, batches of {args.batch})\n")
    print("| examples | ms/point | us/example | fit (ms/point) | residual |")
    print("|---|---|---|---|---|")
    for m, rel in zip(args.sizes, f["rel"]):
        t = s["times"][m]
        print(
            f"| {m} | {1e3 * t:.2f} | {1e6 * t / m:.2f} | {1e3 * (f['a'] + f['b'] * m):.2f} "
            f"| {100 * rel:+.1f}% |"
        )
    print(
        f"\nfit t/point = c + d * examples: per-example cost d = {1e6 * f['b']:.3f} us, "
        f"fixed per-point cost c = {1e3 * f['a']:.3f} ms, R^2 = {f['r2']:.5f}, "
        f"largest relative residual {100 * f['max_rel']:.1f}%"
    )

    mib = 2.0**20
    mem = {n: memory(n, args.memory_examples, args.batch, args.threads) for n in args.memory_grids}
    print(f"\n## Peak memory ({args.memory_examples} examples, each grid in a fresh process)\n")
    print(
        "| grid | slice (s) | RSS before (MiB) | forward's peak (MiB) | slice's peak (MiB) "
        "| slice peak - forward peak (MiB) | tracemalloc peak (MiB) | result arrays (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n, m in mem.items():
        print(
            f"| {n}x{n} | {m['wall']:.1f} | {m['base'] / mib:.1f} | {m['forward'] / mib:.1f} "
            f"| {m['slice'] / mib:.1f} | {(m['slice'] - m['forward']) / mib:+.2f} "
            f"| {m['py_peak'] / mib:.3f} | {m['result'] / mib:.3f} |"
        )
    if not all(m["reset"] for m in mem.values()):
        print("\n(/proc/self/clear_refs not writable: peaks include the setup's; lower bounds)")
    print(
        "process peak (ru_maxrss, import and setup included): "
        + ", ".join(f"{n}x{n} {m['maxrss'] / mib:.1f} MiB" for n, m in mem.items())
    )
    big, small = max(mem), min(mem)
    if big != small:
        d_rss = (mem[big]["slice"] - mem[big]["forward"]) - (
            mem[small]["slice"] - mem[small]["forward"]
        )
        d_py = mem[big]["py_peak"] - mem[small]["py_peak"]
        params = mem[big]["params"]
        print(
            f"\n{big}x{big} vs {small}x{small} ({big * big} vs {small * small} points): "
            f"slice peak over forward peak differs by {d_rss / mib:+.2f} MiB, tracemalloc peak by "
            f"{d_py / mib:+.3f} MiB; one copy of the parameters is {params / mib:.3f} MiB, "
            f"so {big * big - small * small} per-point copies would add "
            f"{(big * big - small * small) * params / mib:.0f} MiB"
        )
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"\nthis process (memory children apart): user {ru.ru_utime:.1f} s, system "
        f"{ru.ru_stime:.1f} s, minor page faults {ru.ru_minflt:,}; MALLOC_ environment: "
        + (" ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("MALLOC_")) or "none")
    )
    print(f"loadavg at end: {_machine.load()}  (total {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
