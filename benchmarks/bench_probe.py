"""Cost of one gradient probe against the forward+backward passes it is made of.

``gradient_probe`` with k step sizes does k + 1 forward+backward passes (one at theta for g,
one per step size) on the same batch. This script times, in the same process and interleaved,
a steady baseline, the probe's passes run back to back as one loop (``passes`` forward+backward
passes, loss + ``torch.autograd.grad``, timed as one), and one probe on ``vgg_small`` (BN and
plain) with a batch of 128 digits, and prints three ratios:

    ratio per pass = t_probe / t_loop       against the passes the form makes, as the model
                                            runs them (passes = k + 1 for full, k for base);
                                            issue 12 item 4's target: <= 1.05
    as run         = t_probe / t_loop_cl    against the same passes with the conv weights
                                            channels_last, as the probe runs them on the CPU
                                            (5-12% faster): the probe's own bookkeeping,
                                            also fitted over the k given as a fixed cost
                                            per probe plus a cost per step size
    ratio_k        = t_probe / (k * t_fb)   t_fb = t_loop / passes; the older target <= 1.15

It times two forms of the probe: ``full`` computes g itself (k + 1 passes); ``base`` is
given the caller's own loss and gradient at theta, as the trainer does after its backward
pass (``gradient_probe(..., base=(loss, grads))``), and makes exactly k passes.

Run:  .venv/bin/python benchmarks/bench_probe.py [--repeats 30] [--threads N] [--profile]
      [--glibc-defaults]   (default: landscape.keep_freed_memory(), as the command line does)
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import _machine
import torch
import torch.nn.functional as F

import landscape
from landscape._params import channels_last
from landscape.data import batch_indices, load_dataset
from landscape.models import create_model
from landscape.probes import StepSizes, gradient_probe

TARGET = 1.15  # issue 4's bound on t_probe / (k * t_fb)
PASS_TARGET = 1.05  # issue 12's bound on t_probe / t_loop (the passes back to back)
LR = 0.1  # step grid [0.5, 4] x lr, the paper's VGG setting
VARIANTS = ("bn", "plain")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fb_loop(model, params, x, y, device, passes: int, as_run: bool = False) -> float:
    """Seconds for ``passes`` forward+backward passes back to back (the steady baseline); with
    ``as_run``, the conv weights channels_last as the probe holds them on the CPU."""
    with channels_last(model, as_run and device.type == "cpu"):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(passes):
            loss = F.cross_entropy(model(x), y)
            torch.autograd.grad(loss, params)
        sync(device)
        return time.perf_counter() - t0


def probe_once(model, x, y, etas, device, base=None) -> float:
    sync(device)
    t0 = time.perf_counter()
    gradient_probe(model, F.cross_entropy, (x, y), etas, base=base)  # ends in a host sync
    sync(device)
    return time.perf_counter() - t0


def measure(batch: int, ks: list[int], repeats: int, warmup: int, device: torch.device) -> dict:
    """Probe and loop-of-passes timings, interleaved: ``{"loop"|"loop_cl"|"probe": {(variant,
    k, form): [seconds]}, "models", "batch"}`` (forms: ``full`` computes g, ``base`` is given
    it; ``loop_cl``: the passes with the conv weights channels_last, as the probe runs them)."""
    data = load_dataset("digits")
    idx = batch_indices(len(data.x_train), batch, 0, 0)
    x, y = data.x_train[idx].to(device), data.y_train[idx].to(device)
    models = {
        v: create_model("vgg_small", bn=(v == "bn"), input_shape=(1, 8, 8)).to(device).train()
        for v in VARIANTS
    }
    params = {v: [p for p in m.parameters() if p.requires_grad] for v, m in models.items()}
    etas = {k: StepSizes.vgg(LR, count=k).values() for k in ks}
    bases = {}
    for v, m in models.items():
        loss = F.cross_entropy(m(x), y)
        grads = torch.autograd.grad(loss, params[v])
        names = [n for n, p in m.named_parameters() if p.requires_grad]
        bases[v] = (loss.detach(), dict(zip(names, grads)))
    forms = {"full": lambda v: None, "base": lambda v: bases[v]}
    for _ in range(warmup):
        for v in VARIANTS:
            fb_loop(models[v], params[v], x, y, device, 1)
            for k in ks:
                for form in forms.values():
                    probe_once(models[v], x, y, etas[k], device, form(v))

    # Interleave: every probe timing sits next to a timing of its passes run back to back, so
    # a slow patch of a loaded machine hits numerator and denominator alike. One (variant, k,
    # form) at a time: switching models between the two timings of a pair made the pairs
    # scatter 3x more (the other model's tensors evicted from the caches in between).
    loop = {(v, k, f): [] for v in VARIANTS for k in ks for f in forms}
    loop_cl = {(v, k, f): [] for v in VARIANTS for k in ks for f in forms}
    probe = {(v, k, f): [] for v in VARIANTS for k in ks for f in forms}
    for v in VARIANTS:
        for k in ks:
            for f, base in forms.items():
                passes = k + 1 if f == "full" else k
                for _ in range(repeats):
                    loop[v, k, f].append(fb_loop(models[v], params[v], x, y, device, passes))
                    probe[v, k, f].append(probe_once(models[v], x, y, etas[k], device, base(v)))
                    cl = fb_loop(models[v], params[v], x, y, device, passes, as_run=True)
                    loop_cl[v, k, f].append(cl)
    return {"loop": loop, "loop_cl": loop_cl, "probe": probe, "models": models, "batch": (x, y)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--k", type=int, nargs="+", default=[4, 8, 16], help="step-size counts")
    ap.add_argument("--repeats", type=int, default=30, help="probe timings per (variant, k)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--glibc-defaults", action="store_true",
                    help="leave glibc's allocator as it is (the default calls "
                    "landscape.keep_freed_memory(), as the command line does)")  # fmt: skip
    ap.add_argument(
        "--profile", action="store_true", help="cProfile one k=8 BN probe and print the top"
    )
    args = ap.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    kept = False if args.glibc_defaults else landscape.keep_freed_memory()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}  threads {torch.get_num_threads()}  device {device}  "
        f"batch {args.batch}  repeats {args.repeats} (each probe next to a loop of its passes)  "
        f"{_machine.cpu()}  allocator "
        f"{'keep_freed_memory()' if kept else 'glibc defaults'}  load {_machine.load()}"
    )
    r = measure(args.batch, args.k, args.repeats, args.warmup, device)
    loop, loop_cl, probe, forms = r["loop"], r["loop_cl"], r["probe"], ("full", "base")
    print(
        f"\n| variant | form | k | passes | t_loop median (ms) | t_probe median (ms) "
        f"| ratio per pass = t_probe/t_loop | median of pairs | <= {PASS_TARGET} "
        f"| as run = t_probe/t_loop_cl | ratio_k = t_probe/(k t_fb) | <= {TARGET} |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for v in VARIANTS:
        for f in forms:
            for k in args.k:
                passes = k + 1 if f == "full" else k
                t_l, t_p = statistics.median(loop[v, k, f]), statistics.median(probe[v, k, f])
                pairs = statistics.median(a / b for a, b in zip(probe[v, k, f], loop[v, k, f]))
                r_pass, r_k = t_p / t_l, t_p / (k * t_l / passes)
                as_run = t_p / statistics.median(loop_cl[v, k, f])
                print(
                    f"| {v} | {f} | {k} | {passes} | {1e3 * t_l:.2f} | {1e3 * t_p:.2f} "
                    f"| {r_pass:.3f} | {pairs:.3f} | {'PASS' if r_pass <= PASS_TARGET else 'FAIL'} "
                    f"| {as_run:.3f} | {r_k:.3f} | {'PASS' if r_k <= TARGET else 'FAIL'} |"
                )
    print(
        "\nfloor of ratio_k from the passes alone: (k+1)/k = "
        + ", ".join(f"k={k}: {(k + 1) / k:.3f}" for k in args.k)
    )
    if len(set(args.k)) > 1:
        print("\nbookkeeping = t_probe - t_loop_cl (medians), fitted as fixed + per step * k:")
        for v in VARIANTS:
            for f in forms:
                extra = [statistics.median(probe[v, k, f]) - statistics.median(loop_cl[v, k, f])
                         for k in args.k]  # fmt: skip
                per_step, fixed = statistics.linear_regression(args.k, extra)
                print(f"  {v} {f}: {1e3 * fixed:.2f} ms per probe + {1e3 * per_step:.3f} ms "
                      "per step size")  # fmt: skip

    if args.profile:
        k = 8 if 8 in args.k else args.k[0]
        prof = cProfile.Profile()
        prof.enable()
        model, x, y = r["models"]["bn"], *r["batch"]
        etas = StepSizes.vgg(LR, count=k).values()
        for _ in range(20):
            gradient_probe(model, F.cross_entropy, (x, y), etas)
        prof.disable()
        print(f"\ncProfile, 20 BN probes with k={k} (tottime):")
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
