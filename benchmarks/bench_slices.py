"""Cost of a 2D loss-landscape slice against the model's own forward pass over the same data.

A slice point is one pass over the evaluation data, so the limit is the model's forward
(inference mode, same batches) timed in the same run. Setup: ``vgg_small`` (BN) in eval mode,
the digits training split (1438 examples) in batches of ``--batch``, float32, a random
filter-normalized plane on ``-1:1:G`` squared. Printed, each measured side by side:

    throughput   slice vs limit and frozen bound: after each grid row, as many limit passes
                 and bound passes back to back, run from the slice's progress callback; medians
                 of points and of passes (target >= 0.95 of the limit)
    levers       the slice with each fast path (landscape.slices.fold) switched off/on, grid
                 rows interleaved; forward-only levers (batch size, vmap, torch.compile)
    bf16         precision="bf16" vs float32, grid rows interleaved (target >= 1.8x), with
                 the max and median |loss_bf16 - loss_fp32| over the grid
    overhead     evaluate_grid's per-point cost over a minimal hand loop (set the point, one
                 forward over the same batches) on a small MLP, in microseconds per point,
                 rows of the grid alternated between the two (target <= 50 us)
    peer         our random_plane vs loss-landscapes' random_plane: one batch, same grid,
                 whole calls alternated (their steps/distance semantics differ: time only)
    memory       a 51x51 slice in a fresh process: ru_maxrss growth over the model's own
                 forward pass (all allocations, torch's included) and the tracemalloc peak
                 (Python allocations only)

Run:  .venv/bin/python benchmarks/bench_slices.py [--quick] [--threads 1] [--grid 51]
The peer needs the benchmark-only package: .venv/bin/pip install loss-landscapes==3.0.6
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import json
import pstats
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator

import _machine
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import landscape.slices as S
import landscape.slices.fold as fastpath
from landscape._device import cpu_info
from landscape.data import eval_batches, load_dataset
from landscape.models import create_model
from landscape.slices import random_directions

LIMIT_TARGET = 0.95  # slice throughput / forward throughput
BF16_TARGET = 1.8  # t_fp32 / t_bf16
MEMORY_GRID = 51  # Li et al.'s 51 x 51
OVERHEAD_TARGET_US = 50.0  # evaluate_grid's point - the hand loop's point
# few examples through a small MLP, so that a point's fixed cost is not lost in its forward
OVERHEAD_EXAMPLES, OVERHEAD_BATCH = 256, 128


DEVICE = torch.device("cpu")  # --device; data, model and directions live there


def sync() -> None:
    """Wait for queued GPU work, so that a clock read after it measures it."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def setup(batch: int, seed: int = 0, width: int = 16):
    """vgg_small (BN, eval, ``width`` channels in its first block), digits train batches, two
    filter-normalized directions, all on ``DEVICE`` (evaluation data resident there)."""
    ds = load_dataset("digits")
    data = [(x.to(DEVICE), y.to(DEVICE)) for x, y in eval_batches(ds.x_train, ds.y_train, batch)]
    model = create_model(
        "vgg_small", bn=True, width=width, input_shape=(1, 8, 8), num_classes=10
    ).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # trained-like biases and BN state: a fresh model has zeros there,
        for m in model.modules():  # which makes folding trivial and loss-landscapes divide by 0
            for name, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
                if name in ("bias", "running_mean"):
                    t.copy_(torch.rand(t.shape, generator=gen) * 0.4 - 0.2)
                elif (
                    isinstance(m, nn.modules.batchnorm._BatchNorm) and name != "num_batches_tracked"
                ):
                    t.copy_(torch.rand(t.shape, generator=gen) + 0.5)  # weight, running_var
    model.to(DEVICE)
    return model, data, random_directions(model, 2, seed=seed)


def forward_pass(model: Callable, data) -> float:
    """Seconds for the model's own forward over all batches (the limit)."""
    sync()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for x, _ in data:
            model(x)
    sync()
    return time.perf_counter() - t0


def hardware_name() -> str:
    """The GPU's name, or "cpu"."""
    return torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu"


def hardware() -> dict:
    """What bf16 can gain here: the CPU's or GPU's bf16 support, and one large matmul and
    the model's forward in bf16 (weights and inputs converted once) against float32."""
    info: dict = {"device": str(DEVICE)}
    if DEVICE.type == "cuda":
        info["name"] = torch.cuda.get_device_name(DEVICE)
        info["bf16"] = "supported" if torch.cuda.is_bf16_supported() else "not supported"
    else:
        info["name"] = f"CPU, torch capability {torch.backends.cpu.get_cpu_capability()}"
        flags = cpu_info()[1]
        native = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
        info["bf16"] = ", ".join(native) if native else "no avx512_bf16 / AMX flag"
    a = torch.randn(512, 1024, device=DEVICE)
    b = torch.randn(1024, 1024, device=DEVICE)
    ab, bb = a.bfloat16(), b.bfloat16()
    model, data, _ = setup(512)
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    half = copy.deepcopy(cl).bfloat16()
    data_cl = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in data]
    data_bf = [(x.bfloat16(), y) for x, y in data_cl]

    def timed(f: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            sync()
            t0 = time.perf_counter()
            with torch.inference_mode():
                f()
            sync()
            return time.perf_counter() - t0

        return run

    pairs = {
        "matmul 512x1024 @ 1024x1024": (timed(lambda: a @ b), timed(lambda: ab @ bb)),
        "model forward, channels_last": (
            lambda: forward_pass(cl, data_cl),
            lambda: forward_pass(half, data_bf),
        ),
    }
    rows = []
    for name, (f32, bf) in pairs.items():
        f32(), bf()
        t32, t16 = [], []
        for _ in range(15):
            t32.append(f32())
            t16.append(bf())
        rows.append((name, med(t32), med(t16)))
    info["rows"] = rows
    return info


def grid_rows(g: int) -> list[list[int]]:
    return [list(range(j * g, (j + 1) * g)) for j in range(g)]


@contextlib.contextmanager
def levers(fold: bool, channels_last: bool) -> Iterator[None]:
    saved = fastpath.FOLD_BN, fastpath.CHANNELS_LAST
    fastpath.FOLD_BN, fastpath.CHANNELS_LAST = fold, channels_last
    try:
        yield
    finally:
        fastpath.FOLD_BN, fastpath.CHANNELS_LAST = saved


def med(ts: list[float]) -> float:
    return statistics.median(ts)


# ----------------------------------------------------------------------------- sections
def frozen_bound(model: nn.Module, data) -> Callable | None:
    """The model frozen for inference: ``torch.jit.freeze`` + ``optimize_for_inference`` of its
    trace (weights baked in, BN folded, oneDNN layouts, fused activations). No per-point
    evaluation can beat it: it bounds what a slice can reach (issue 12, item 1). None where
    tracing or freezing fails."""
    try:
        with torch.no_grad():
            traced = torch.jit.trace(copy.deepcopy(model).eval(), data[0][0])
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            for _ in range(3):
                forward_pass(frozen, data)
        return frozen
    except Exception:  # a model torch.jit cannot take: no bound printed
        return None


def throughput(model, data, dirs, g: int) -> dict:
    """Slice points beside passes of the limit and of the frozen bound, in blocks: after each
    grid row of ``g`` points (each timed from the progress callback), ``g`` limit passes and
    ``g`` bound passes back to back, each timed. Each side runs in its steady state, as over a
    whole grid, and medians compare a typical point with a typical pass (a row's first point,
    just after the blocks, starts with cold caches, as does each block's first pass).
    Interleaving single passes after every point instead started every point cold (measured:
    0.85 of the bound; benchmarks/README.md). ``*_pairs``: the median over the rows of the
    ratio of the row's and its blocks' medians."""
    limit_model = copy.deepcopy(model)  # the untouched model: its own layout, no folding
    for _ in range(3):
        forward_pass(limit_model, data)
    bound = frozen_bound(model, data)  # on CUDA too: cuDNN's fused conv+BN, frozen
    S.evaluate_grid(model, F.cross_entropy, data, dirs, "-1:1:2", "0:0:1")  # warm-up
    rows: list[tuple[list[float], list[float], list[float]]] = []  # (points, limit, bound)
    point_t: list[float] = []
    clock = [0.0]

    def progress(done: int, total: int) -> None:
        point_t.append(time.perf_counter() - clock[0])
        if done % g == 0:
            limit = [forward_pass(limit_model, data) for _ in range(g)]
            passes = [forward_pass(bound, data) for _ in range(g)] if bound is not None else []
            rows.append((point_t[-g:], limit, passes))
        clock[0] = time.perf_counter()

    clock[0] = start = time.perf_counter()
    S.evaluate_grid(model, F.cross_entropy, data, dirs, f"-1:1:{g}", f"-1:1:{g}", progress=progress)
    tail = time.perf_counter() - clock[0]
    n = sum(len(y) for _, y in data)
    limit_t = [t for _, limit, _ in rows for t in limit]
    bound_t = [t for _, _, passes in rows for t in passes]
    total = sum(point_t) + tail  # the whole call, setup and teardown included
    nan = float("nan")
    return {
        "examples": n,
        "points": g * g,
        "limit_median": med(limit_t),
        "point_median": med(point_t),
        "limit_mean": statistics.fmean(limit_t),
        "call_per_point": total / (g * g),
        "ratio_median": med(limit_t) / med(point_t),
        "ratio_mean": statistics.fmean(limit_t) / (total / (g * g)),
        "ratio_pairs": med([med(li) / med(pt) for pt, li, _ in rows]),
        "wall": time.perf_counter() - start,
        "bound_median": med(bound_t) if bound_t else nan,
        "bound_ratio": med(bound_t) / med(point_t) if bound_t else nan,
        "bound_pairs": med([med(b) / med(pt) for pt, _, b in rows]) if bound_t else nan,
    }


def rows_interleaved(model, data, dirs, g: int, variants: dict[str, dict]) -> dict[str, dict]:
    """One ``evaluate_grid`` call per grid row and variant, variants alternated row by row.

    A variant is ``{"levers": (fold, channels_last), **evaluate_grid options}``. Returns per
    variant: ``steady`` (median seconds of a point after the first of its call: no setup),
    ``whole`` (seconds per point of the whole calls) and ``loss`` (g, g).
    """
    spec = f"-1:1:{g}"
    steady: dict[str, list[float]] = {k: [] for k in variants}
    whole = dict.fromkeys(variants, 0.0)
    loss = {k: np.full((g, g), np.nan) for k in variants}
    for row in [[0, 1], *grid_rows(g)]:  # first "row": warm-up, not counted
        for name, opts in variants.items():
            opts = dict(opts)
            marks: list[float] = []
            with levers(*opts.pop("levers", (True, True))):
                t0 = time.perf_counter()
                r = S.evaluate_grid(
                    model, F.cross_entropy, data, dirs, spec, spec, points=row, **opts,
                    progress=lambda done, total, marks=marks: marks.append(time.perf_counter()),
                )  # fmt: skip
            if row != [0, 1]:
                whole[name] += time.perf_counter() - t0
                steady[name] += list(np.diff(marks))
                loss[name][r.computed] = r.values["loss"][r.computed]
    return {
        k: {"steady": med(steady[k]), "whole": whole[k] / (g * g), "loss": loss[k]}
        for k in variants
    }


def slice_levers(model, data, dirs, g: int) -> dict[str, dict]:
    """The slice with each fast path (``landscape.slices.fold``, used by the engine) off/on."""
    variants = {
        "neither (plain evaluation)": (False, False),
        "fold BN": (True, False),
        "channels_last": (False, True),
        "fold BN + channels_last (default)": (True, True),
    }
    return rows_interleaved(model, data, dirs, g, {k: {"levers": v} for k, v in variants.items()})


def forward_levers(model, data, dirs, repeats: int, compile_: bool) -> list[tuple[str, float, str]]:
    """Per-pass seconds of forward-only variants, interleaved, as (name, seconds, note)."""
    x_all = torch.cat([x for x, _ in data])
    y_all = torch.cat([y for _, y in data])
    b = len(data[0][0])
    variants: dict[str, Callable[[], float]] = {}
    variants[f"model forward, batch {b} (limit)"] = lambda: forward_pass(model, data)
    for bs in sorted({256, 1024, len(x_all)} - {b}):
        other = list(eval_batches(x_all, y_all, bs))
        variants[f"model forward, batch {bs}"] = lambda other=other: forward_pass(model, other)
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    variants["model forward, channels_last"] = lambda: forward_pass(cl, data)
    folded = fastpath.Vehicle.build(copy.deepcopy(model), channels_last=True)
    folded.refresh()
    variants["fold BN + channels_last vehicle"] = lambda: forward_pass(folded, data)

    k = 4  # grid points per vmapped pass
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    a = torch.linspace(-1, 1, k, device=DEVICE)
    stacked = {
        n: p + a.view(-1, *[1] * p.ndim) * dirs[0][n] + a.view(-1, *[1] * p.ndim) * dirs[1][n]
        for n, p in params.items()
    }

    def loss_at(ps, x, y):
        return F.cross_entropy(torch.func.functional_call(model, (ps, buffers), (x,)), y)

    vloss = torch.func.vmap(loss_at, in_dims=(0, None, None))

    def vmapped() -> float:
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for x, y in data:
                vloss(stacked, x, y)
        sync()
        return (time.perf_counter() - t0) / k

    variants[f"vmap over {k} grid points (per point)"] = vmapped
    notes: dict[str, str] = {}
    if compile_:
        compiled = torch.compile(copy.deepcopy(model))
        t0 = time.perf_counter()
        forward_pass(compiled, data)
        forward_pass(compiled, data)
        notes["torch.compile (inductor)"] = f"compile {time.perf_counter() - t0:.0f} s"
        variants["torch.compile (inductor)"] = lambda: forward_pass(compiled, data)
    for f in variants.values():
        f()
    times: dict[str, list[float]] = {n: [] for n in variants}
    for _ in range(repeats):
        for n, f in variants.items():
            times[n].append(f())
    return [(n, med(ts), notes.get(n, "")) for n, ts in times.items()]


def bf16_vs_fp32(model, data, dirs, g: int) -> dict:
    """Both precisions on the same grid; deviations of bf16 from float32 over all of it."""
    r = rows_interleaved(
        model, data, dirs, g, {"fp32": {"precision": "native"}, "bf16": {"precision": "bf16"}}
    )
    fp32, bf16 = r["fp32"], r["bf16"]
    dev = np.abs(bf16["loss"] - fp32["loss"])
    return {
        "fp32": fp32,
        "bf16": bf16,
        "speedup": fp32["steady"] / bf16["steady"],
        "speedup_whole": fp32["whole"] / bf16["whole"],
        "max_dev": float(dev.max()),
        "median_dev": float(np.median(dev)),
        "loss_range": (float(fp32["loss"].min()), float(fp32["loss"].max())),
    }


def hand_loop(model: nn.Module, data, dirs, coords: list[tuple[float, float]]) -> list[float]:
    """Seconds per point of the minimal loop: ``theta <- base + a d1 + b d2`` in place, one
    forward over the batches, their example-weighted mean loss read back (the model restored)."""
    params = dict(model.named_parameters())
    base = {n: p.detach().clone() for n, p in params.items()}
    d1, d2 = dirs
    n = sum(len(y) for _, y in data)
    times = []
    for a, b in coords:
        t0 = time.perf_counter()
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(base[name]).add_(d1[name], alpha=a).add_(d2[name], alpha=b)
        with torch.inference_mode():
            total = sum(F.cross_entropy(model(x), y) * len(y) for x, y in data)
        float(total) / n  # the value on the host, as evaluate_grid returns it
        times.append(time.perf_counter() - t0)
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(base[name])
    return times


def overhead(g: int) -> dict:
    """evaluate_grid's point (progress to progress: no setup) against the hand loop's, grid
    rows alternated between them, for a plain and a BN small MLP (``mlp``, 3 x 128) on
    ``OVERHEAD_EXAMPLES`` digits examples. Accuracy is off in the comparison (the hand loop
    computes the loss only) and timed apart: it costs only when asked for."""
    ds = load_dataset("digits")
    x, y = ds.x_train[:OVERHEAD_EXAMPLES].to(DEVICE), ds.y_train[:OVERHEAD_EXAMPLES].to(DEVICE)
    data = list(eval_batches(x, y, OVERHEAD_BATCH))
    spec = f"-1:1:{g}"
    coords = np.linspace(-1, 1, g)
    out = {}
    for bn in (False, True):
        torch.manual_seed(0)
        model = create_model("mlp", bn=bn, input_shape=(1, 8, 8), num_classes=10).eval()
        model.to(DEVICE)
        dirs = random_directions(model, 2, seed=0)
        t: dict[str, list[float]] = {"hand": [], "grid": [], "grid, accuracy": []}
        whole: dict[str, float] = {"grid": 0.0, "grid, accuracy": 0.0}
        for row in [[0, 1], *grid_rows(g)]:  # first "row": warm-up, not counted
            hand = hand_loop(model, data, dirs, [(coords[k % g], coords[k // g]) for k in row])
            for name, acc in (("grid", False), ("grid, accuracy", True)):
                marks: list[float] = []
                t0 = time.perf_counter()
                S.evaluate_grid(
                    model, F.cross_entropy, data, dirs, spec, spec, points=row, accuracy=acc,
                    progress=lambda done, total, marks=marks: marks.append(time.perf_counter()),
                )  # fmt: skip
                if row != [0, 1]:
                    whole[name] += time.perf_counter() - t0
                    t[name] += list(np.diff(marks))
            if row != [0, 1]:
                t["hand"] += hand[1:]  # like the grid's: every point of the row but its first
        out["BN" if bn else "plain"] = {
            "hand": med(t["hand"]),
            "grid": med(t["grid"]),
            "grid_acc": med(t["grid, accuracy"]),
            "whole": whole["grid"] / (g * g),
        }
    return out


def versus_peer(model, data, g: int, repeats: int) -> dict | None:
    try:
        import loss_landscapes
        from loss_landscapes.metrics import Loss
    except ImportError:
        return None
    x, y = data[0]
    metric = Loss(F.cross_entropy, x, y)

    def ours() -> float:
        t0 = time.perf_counter()
        S.random_plane(model, F.cross_entropy, (x, y), f"-1:1:{g}", f"-1:1:{g}", seed=0)
        return time.perf_counter() - t0

    def theirs() -> float:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        # deepcopy_model: their walk moves the model in place (and drifts)
        loss_landscapes.random_plane(model, metric, distance=1, steps=g, deepcopy_model=True)
        return time.perf_counter() - t0

    ours(), theirs()
    to, tt = [], []
    for _ in range(repeats):
        to.append(ours())
        tt.append(theirs())
    return {"ours": med(to), "theirs": med(tt), "ratio": med(to) / med(tt), "batch": len(x)}


def memory_child(batch: int, g: int) -> None:
    """In a fresh process: peak-RSS growth of a g x g slice over the model's own forward."""
    model, data, dirs = setup(batch)
    forward_pass(model, data)
    forward_pass(model, data)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    cuda = DEVICE.type == "cuda"
    gpu0 = torch.cuda.max_memory_allocated(DEVICE) if cuda else 0  # peak of the forwards
    tracemalloc.start()
    S.evaluate_grid(model, F.cross_entropy, data, dirs, f"-1:1:{g}", f"-1:1:{g}")
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu1 = torch.cuda.max_memory_allocated(DEVICE) if cuda else 0
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    out = {"rss0": rss0 * 1024, "rss1": rss1 * 1024, "py_peak": py_peak, "params": param_bytes}
    if cuda:
        out |= {"gpu0": gpu0, "gpu1": gpu1}
    print(json.dumps(out))


def memory(batch: int, g: int, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", str(g), "--batch", str(batch)]
    cmd += ["--device", str(DEVICE)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- report
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--grid", type=int, default=21, help="G: the throughput grid is G x G")
    ap.add_argument("--batch", type=int, default=512, help="evaluation batch size")
    ap.add_argument("--lever-grid", type=int, default=11, help="grid of the lever comparison")
    ap.add_argument("--peer-repeats", type=int, default=3)
    ap.add_argument("--fwd-repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:k]: model, data, directions")
    ap.add_argument("--quick", action="store_true", help="small grids, no lever section")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow)")
    ap.add_argument(
        "--skip", nargs="*", default=[], help="sections to skip: levers bf16 overhead peer memory"
    )
    ap.add_argument("--profile", action="store_true", help="cProfile a 7x7 slice")
    ap.add_argument("--glibc-defaults", action="store_true",
                    help="leave glibc's allocator as it is (the default calls "
                    "landscape.keep_freed_memory(), as the command line does)")  # fmt: skip
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available here")
    if args.memory_child is not None:
        memory_child(args.batch, args.memory_child)
        return
    if args.quick:
        args.grid, args.lever_grid, args.peer_repeats, args.fwd_repeats = 5, 3, 2, 5
        args.skip = [*args.skip, "levers"]
    from landscape import keep_freed_memory

    kept = False if args.glibc_defaults else keep_freed_memory()
    torch.manual_seed(0)
    model, data, dirs = setup(args.batch)
    n = sum(len(y) for _, y in data)
    print(
        f"torch {torch.__version__}  threads {torch.get_num_threads()}  vgg_small (BN) eval  "
        f"digits train {n} examples in batches of {args.batch}  float32  grid {args.grid}^2  "
        f"device {DEVICE}  {_machine.cpu()}  "
        f"allocator {'keep_freed_memory()' if kept else 'glibc defaults'}  "
        f"load {_machine.load()}"
    )

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        S.evaluate_grid(model, F.cross_entropy, data, dirs, "-1:1:7", "-1:1:7")
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)

    r = throughput(model, data, dirs, args.grid)
    verdict = "PASS" if min(r["ratio_median"], r["ratio_mean"]) >= LIMIT_TARGET else "FAIL"
    print(f"\n## Throughput: {r['points']}-point slice vs the model's forward (same run)\n")
    print("| quantity | examples/s | pass (ms) |")
    print("|---|---|---|")
    rows = {
        "limit: model forward, median": r["limit_median"],
        "slice, median point": r["point_median"],
        "limit: model forward, mean": r["limit_mean"],
        "slice, whole call / points (setup included)": r["call_per_point"],
    }
    for name, t in rows.items():
        print(f"| {name} | {n / t:,.0f} | {1e3 * t:.1f} |")
    if r["bound_median"] == r["bound_median"]:  # not NaN: the bound could be built
        print(f"| bound: frozen forward (jit.freeze + optimize_for_inference), median "
              f"| {n / r['bound_median']:,.0f} | {1e3 * r['bound_median']:.1f} |")  # fmt: skip
    print(
        f"\nratio slice/limit (the model's own forward): medians {r['ratio_median']:.3f}, "
        f"means {r['ratio_mean']:.3f}, median of row pairs {r['ratio_pairs']:.3f}  "
        f"(target >= {LIMIT_TARGET}: {verdict})"
    )
    print(
        f"ratio slice/bound (the frozen forward, fp32): medians {r['bound_ratio']:.3f}, median "
        f"of row pairs {r['bound_pairs']:.3f}  (1 would be the bound reached)"
    )

    if "levers" not in args.skip:
        lv = slice_levers(model, data, dirs, args.lever_grid)
        b0 = lv["neither (plain evaluation)"]
        print(f"\n## Slice levers ({args.lever_grid}^2 grid, one call per row, interleaved)\n")
        print(
            "| slice fast path | ms/point, median | speed-up | ms/point, whole calls | speed-up |"
        )
        print("|---|---|---|---|---|")
        for name, v in lv.items():
            t, w = v["steady"], v["whole"]
            speedups = f"{b0['steady'] / t:.2f}x | {1e3 * w:.1f} | {b0['whole'] / w:.2f}x"
            print(f"| {name} | {1e3 * t:.1f} | {speedups} |")
        fl = forward_levers(model, data, dirs, args.fwd_repeats, args.compile)
        print(f"\n## Forward-pass levers (median of {args.fwd_repeats}, interleaved)\n")
        print("| pass over the data | ms | vs limit | note |")
        print("|---|---|---|---|")
        for name, t, note in fl:
            print(f"| {name} | {1e3 * t:.1f} | {fl[0][1] / t:.2f}x | {note} |")

    if "bf16" not in args.skip:
        b = bf16_vs_fp32(model, data, dirs, args.grid)
        ok = "PASS" if b["speedup"] >= BF16_TARGET else "FAIL"
        print(
            f"\n## bf16 autocast vs float32 ({args.grid}^2 grid, one call per row, interleaved)\n"
        )
        print(
            "| ms/pt fp32 | bf16 | t_fp32 / t_bf16 | whole calls | max abs dev | median abs dev |"
        )
        print("|---|---|---|---|---|---|")
        lo, hi = b["loss_range"]
        print(
            f"| {1e3 * b['fp32']['steady']:.1f} | {1e3 * b['bf16']['steady']:.1f} "
            f"| {b['speedup']:.2f} (>= {BF16_TARGET}: {ok}) | {b['speedup_whole']:.2f} "
            f"| {b['max_dev']:.2e} | {b['median_dev']:.2e} |"
        )
        print(f"\nfp32 loss over the grid: {lo:.3f} .. {hi:.3f}")
        h = hardware()
        print(f"\nbf16 on this hardware: {h['name']}; {h['bf16']} (medians of 15, interleaved)\n")
        print("| pure bf16 vs float32 | fp32 (ms) | bf16 (ms) | t_fp32 / t_bf16 |")
        print("|---|---|---|---|")
        for name, t32, t16 in h["rows"]:
            print(f"| {name} | {1e3 * t32:.2f} | {1e3 * t16:.2f} | {t32 / t16:.2f} |")

    if "overhead" not in args.skip:
        g = args.grid
        o = overhead(g)
        print(
            f"\n## Per-point overhead: evaluate_grid vs a hand loop ({g}^2, mlp 3x128, "
            f"{OVERHEAD_EXAMPLES} examples in batches of {OVERHEAD_BATCH}, rows alternated)\n"
        )
        print(
            "| model | hand loop (us/pt) | evaluate_grid (us/pt) | overhead (us/pt) "
            "| whole calls (us/pt) | accuracy costs (us/pt) |"
        )
        print("|---|---|---|---|---|---|")
        for name, v in o.items():
            over = 1e6 * (v["grid"] - v["hand"])
            ok = "PASS" if over <= OVERHEAD_TARGET_US else "FAIL"
            print(
                f"| {name} | {1e6 * v['hand']:.0f} | {1e6 * v['grid']:.0f} "
                f"| {over:.0f} (<= {OVERHEAD_TARGET_US:.0f}: {ok}) | {1e6 * v['whole']:.0f} "
                f"| {1e6 * (v['grid_acc'] - v['grid']):.0f} |"
            )

    if "peer" not in args.skip:
        p = versus_peer(model, data, args.grid, args.peer_repeats)
        print(f"\n## Peer: loss-landscapes random_plane ({args.grid}^2, one batch)\n")
        if p is None:
            print("loss-landscapes not installed: pip install loss-landscapes==3.0.6")
        else:
            print("| batch | ours (s) | loss-landscapes (s) | ours / theirs |")
            print("|---|---|---|---|")
            print(f"| {p['batch']} | {p['ours']:.2f} | {p['theirs']:.2f} | {p['ratio']:.3f} |")

    if "memory" not in args.skip:
        g = 11 if args.quick else MEMORY_GRID
        m = memory(args.batch, g, args.threads)
        mib = 2.0**20
        print(f"\n## Memory: {g}x{g} slice in a fresh process\n")
        print(
            "| ru_maxrss after forward (MiB) | after slice (MiB) | growth (MiB) "
            "| tracemalloc peak (MiB) | parameters (MiB) |"
        )
        print("|---|---|---|---|---|")
        grow = (m["rss1"] - m["rss0"]) / mib
        print(
            f"| {m['rss0'] / mib:.1f} | {m['rss1'] / mib:.1f} | {grow:.1f} "
            f"| {m['py_peak'] / mib:.2f} | {m['params'] / mib:.3f} |"
        )
        if "gpu0" in m:
            print(
                f"\nGPU allocator peak: forward {m['gpu0'] / mib:.1f} MiB, with the slice "
                f"{m['gpu1'] / mib:.1f} MiB (growth {(m['gpu1'] - m['gpu0']) / mib:.1f} MiB)"
            )


if __name__ == "__main__":
    main()
