"""Curvature against PyHessian on the same model, data and BN mode, errors against a
converged reference (not against each tool's own stopping rule).

Setup: ``vgg_small`` with BN after 100 SGD steps (lr 0.1, batch 128, seed 0) on the bundled
digits; 512 training examples in one batch; ``bn_mode="eval"`` (PyHessian forces eval mode);
float32 model, one thread. Reference: ``eigsh`` with ``tol=1e-10`` (top 6) and Hutch++ with
a large budget for the trace (its standard error printed beside it).

Measured (each printed as a ratio):

1. one Hessian-vector product / one forward+backward (median of repeats), both ways;
2. top-1 eigenvalue to a true relative error 1e-3: products and seconds, ours vs PyHessian;
3. top-5 to 1e-3 each: products, seconds and the worst true error, ours vs PyHessian;
4. trace to a true 1e-2: Hutch++ vs Hutchinson products (median over seeds), and
   PyHessian's true error at its default stopping rule (tol 1e-3, at most 100 samples).

Run:  .venv/bin/python benchmarks/bench_hessian.py [--seeds 3] [--reference-products 3000]
PyHessian is a benchmark-only dependency: ``.venv/bin/pip install pyhessian==0.1``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _machine
import numpy as np
import torch
import torch.nn.functional as F

import landscape as L
from landscape.curvature import HessianOperator, hessian_eigenvalues, hessian_trace


def trained_model() -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    data = L.load_dataset("digits")
    torch.manual_seed(0)
    model = L.create_model("vgg_small", bn=True, input_shape=data.input_shape)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    n = len(data.x_train)
    for step in range(100):
        idx = L.batch_indices(n, 128, step, seed=0)
        opt.zero_grad()
        F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model, (data.x_train[:512], data.y_train[:512])


def product_cost(model, batch, repeats: int) -> dict[str, float]:
    x, y = batch

    def fb() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    model.eval()
    for _ in range(3):
        fb()
    out = {}
    for method in ("graph", "func"):
        with HessianOperator(model, F.cross_entropy, [batch], bn_mode="eval", method=method) as op:
            v = [torch.randn_like(p) for p in op.params]
            op.matvec(v)
            t_fb, t_hv = [], []
            for _ in range(repeats):  # interleaved: the machine is shared
                s = time.perf_counter()
                fb()
                t_fb.append(time.perf_counter() - s)
                s = time.perf_counter()
                op.matvec(v)
                t_hv.append(time.perf_counter() - s)
        out[method] = statistics.median(t_hv) / statistics.median(t_fb)
        out["fb_ms"] = 1e3 * statistics.median(t_fb)
    model.zero_grad(set_to_none=True)
    return out


def ours_top(model, batch, k: int, reference: np.ndarray, tol: float) -> tuple[int, float, float]:
    """Products, seconds and worst true relative error of ``hessian_eigenvalues`` at ``tol``."""
    s = time.perf_counter()
    res = hessian_eigenvalues(model, F.cross_entropy, [batch], k=k, tol=tol, bn_mode="eval")
    secs = time.perf_counter() - s
    return res.products, secs, float(np.max(np.abs(res.values - reference[:k]) / reference[:k]))


def _pyhessian_module():
    import importlib

    return importlib.import_module("pyhessian.hessian")  # the module, not its class


def pyhessian_top(model, batch, k: int, reference: np.ndarray, seed: int, tol: float):
    """Products, seconds and worst true relative error of PyHessian's power iteration."""
    pyh_module = _pyhessian_module()
    count = {"n": 0}
    real = pyh_module.hessian_vector_product

    def counted(*args):
        count["n"] += 1
        return real(*args)

    pyh_module.hessian_vector_product = counted
    try:
        torch.manual_seed(seed)
        s = time.perf_counter()
        h = pyh_module.hessian(model, F.cross_entropy, data=batch, cuda=False)
        values, _ = h.eigenvalues(top_n=k, tol=tol, maxIter=1000)
        secs = time.perf_counter() - s
    finally:
        pyh_module.hessian_vector_product = real
        model.zero_grad(set_to_none=True)
    values = np.sort(np.asarray(values))[::-1]
    return count["n"], secs, float(np.max(np.abs(values - reference[:k]) / reference[:k]))


def to_true(run, target: float = 1e-3) -> tuple[tuple, float]:
    """The first tool tolerance (1e-3, then tighter) whose result is truly within target."""
    for tol in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7):
        out = run(tol)
        if out[2] <= target:
            return out, tol
    return out, tol


def pyhessian_trace(model, batch, reference: float, seed: int) -> tuple[int, float]:
    pyh_module = _pyhessian_module()

    torch.manual_seed(seed)
    h = pyh_module.hessian(model, F.cross_entropy, data=batch, cuda=False)
    samples = h.trace()
    model.zero_grad(set_to_none=True)
    return len(samples), abs(float(np.mean(samples)) - reference) / abs(reference)


def trace_to(model, batch, method: str, reference: float, seed: int) -> tuple[int, float]:
    """Products until the estimate's stderr <= 0.5 % (two standard errors inside 1 %)."""
    res = hessian_trace(model, F.cross_entropy, [batch], method=method, rtol=5e-3,
                        max_products=4000, bn_mode="eval", seed=seed)  # fmt: skip
    return res.products, abs(res.value - reference) / abs(reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--reference-products", type=int, default=3000)
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="leave glibc's allocator as it is (the default calls "
                        "landscape.keep_freed_memory(), as the command line does)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    kept = False if args.glibc_defaults else L.keep_freed_memory()
    allocator = "keep_freed_memory()" if kept else "glibc defaults"
    print(f"# {_machine.cpu()}; torch {torch.__version__}, 1 thread; allocator {allocator}; "
          f"load {_machine.load()}")  # fmt: skip
    model, batch = trained_model()
    n = sum(p.numel() for p in model.parameters())
    print(f"vgg_small (BN) after 100 steps: {n} parameters; 512 digits; bn_mode eval\n")

    cost = product_cost(model, batch, args.repeats)
    print(f"1. product / forward+backward ({cost['fb_ms']:.1f} ms): graph {cost['graph']:.2f}x, "
          f"func {cost['func']:.2f}x   (target <= 2.5x)")  # fmt: skip

    ref = hessian_eigenvalues(model, F.cross_entropy, [batch], k=6, tol=1e-10, bn_mode="eval")
    top = ref.values
    r = args.reference_products
    tr_ref = hessian_trace(model, F.cross_entropy, [batch], rtol=0, max_products=r,
                           rank=r // 3, bn_mode="eval", seed=99)  # fmt: skip
    print(
        f"   reference: top 6 {np.round(top, 4).tolist()} (residual "
        f"{float(ref.residuals.max()):.1e}); trace {tr_ref.value:.6g} +- {tr_ref.stderr:.2g}"
    )

    try:
        import pyhessian  # noqa: F401
    except ImportError:
        pyh = False
        print("   pyhessian not installed: `.venv/bin/pip install pyhessian==0.1` to compare")
    else:
        pyh = True
    for k, label in ((1, "2. top-1"), (5, "3. top-5")):
        own = ours_top(model, batch, k, top, 1e-3)
        true, t_tol = to_true(lambda tol, k=k: ours_top(model, batch, k, top, tol))
        print(
            f"{label}, tol 1e-3: ours {own[0]} products, {own[1]:.2f} s, worst true error "
            f"{own[2]:.1e}; to a true 1e-3: {true[0]} products, {true[1]:.2f} s (tol {t_tol:g})"
        )
        if not pyh:
            continue
        runs = [pyhessian_top(model, batch, k, top, s, 1e-3) for s in range(args.seeds)]
        fair = [to_true(lambda tol, k=k, s=s: pyhessian_top(model, batch, k, top, s, tol))
                for s in range(args.seeds)]  # fmt: skip
        med = [statistics.median(x[i] for x in runs) for i in range(3)]
        fmed = [statistics.median(x[0][i] for x in fair) for i in range(2)]
        errs = [x[2] for x in runs]
        print(
            f"   PyHessian, tol 1e-3: {med[0]:g} products, {med[1]:.2f} s, worst true error "
            f"median {statistics.median(errs):.1e} [{min(errs):.1e}..{max(errs):.1e}] over "
            f"{args.seeds} seeds; to a true 1e-3: {fmed[0]:g} products, {fmed[1]:.2f} s "
            f"(tols {', '.join(f'{x[1]:g}' for x in fair)})"
        )
        print(
            f"   PyHessian / ours, to a true 1e-3: products {fmed[0] / true[0]:.2f}x, time "
            f"{fmed[1] / true[1]:.2f}x   (target: >= 1 for top-1, >= 3 for top-5)"
        )

    pp = [trace_to(model, batch, "hutch++", tr_ref.value, s) for s in range(args.seeds)]
    hu = [trace_to(model, batch, "hutchinson", tr_ref.value, s) for s in range(args.seeds)]
    med = {name: statistics.median(x[0] for x in runs) for name, runs in (("pp", pp), ("hu", hu))}
    print(f"4. trace, stderr <= 0.5 %: Hutch++ {med['pp']:g} products (true errors "
          f"{', '.join(f'{x[1]:.1e}' for x in pp)}), Hutchinson {med['hu']:g} "
          f"(true errors {', '.join(f'{x[1]:.1e}' for x in hu)}); Hutchinson/Hutch++ "
          f"products {med['hu'] / med['pp']:.2f}x   (target >= 2x)")  # fmt: skip
    if pyh:
        runs = [pyhessian_trace(model, batch, tr_ref.value, s) for s in range(args.seeds)]
        print(
            f"   PyHessian trace at its default rule: {statistics.median(x[0] for x in runs):g}"
            f" products, true errors {', '.join(f'{x[1]:.1e}' for x in runs)}"
        )


if __name__ == "__main__":
    main()
