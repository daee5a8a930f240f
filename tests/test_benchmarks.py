"""The benchmark scripts run in their quick mode and print what they promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import landscape

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TIMEOUT_S = 60  # about 7 s on 2 cores; a hang fails instead of blocking CI
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_benchmark(name: str, *args: str) -> str:
    """Run ``benchmarks/<name> *args`` from the repository root; its stdout."""
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        cwd=BENCHMARKS.parent, env=ENV, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def number(pattern: str, text: str) -> float:
    match = re.search(pattern + r" (-?[0-9.]+(?:e[-+]?[0-9]+)?)", text)
    assert match, f"{pattern!r} not in:\n{text}"
    return float(match.group(1))


def test_bench_scaling_quick() -> None:
    out = run_benchmark("bench_scaling.py", "--quick")
    assert "threads 1" in out and "loadavg at start" in out and "loadavg at end" in out
    assert number("per-point cost b =", out) > 0
    assert number("per-example cost d =", out) > 0
    for fit in ("fixed cost a =", "fixed per-point cost c ="):
        number(fit, out)  # printed, whatever its sign
    assert len(re.findall(r"R\^2 = [0-9.]+", out)) == 2
    assert "| 21x21 |" in out and "| 11x11 |" in out and "tracemalloc peak by" in out


def test_bench_slices_quick_prints_the_limit_and_the_frozen_bound() -> None:
    out = run_benchmark("bench_slices.py", "--quick", "--threads", "1", "--skip", "bf16", "peer",
                        "memory")  # fmt: skip
    assert "allocator keep_freed_memory()" in out or "allocator glibc defaults" in out
    assert number("ratio slice/limit \\(the model's own forward\\): medians", out) > 0
    assert 0 < number("ratio slice/bound \\(the frozen forward, fp32\\): medians", out) < 2
    assert "| BN |" in out and "overhead" in out


def test_bench_report_quick_prints_every_ratio_of_the_summary() -> None:
    out = run_benchmark("bench_report.py", "--quick")
    assert landscape.cpu_description() in out and "load" in out
    summary = out.split("## Summary")[1]
    for row in (
        "slice / frozen-forward bound (fp32)",
        "slice / model's own forward",
        "bf16 / fp32 speed, width 16",
        "bf16 / fp32 speed, width 64",
        "bf16 / fp32, the vehicle's forward alone, width 16 (the ceiling)",
        "ours / loss-landscapes",
        "ours / Li's per-point method, DataLoader with 2 workers",
        "per-point overhead over a hand loop, mlp plain (us)",
        "per-point overhead over a hand loop, mlp BN (us)",
        "probe / its 9 passes back to back, bn, full",
        "probe / its 8 passes back to back, plain, base",
    ):
        assert f"| {row}" in summary, row
    bound = r"\| slice / frozen-forward bound \(fp32\), medians; row pairs \|"
    assert 0 < number(bound, summary) < 3
    ceiling = r"\| bf16 / fp32, the vehicle's forward alone, width 64 \(the ceiling\) \|"
    assert 0.2 < number(ceiling, summary) < 10
