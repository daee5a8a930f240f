"""Devices, spelled once: the ``auto``/``cpu``/``cuda`` choice of the CLI and the configs, the
device a model lives on, and the host allocator's setting for many passes
(:func:`keep_freed_memory`). Shared by the trainer, the probes, the slices and the CLI.

Keep freed memory: a slice or a Hessian runs the same forward (and backward) passes
thousands of times. With glibc's defaults, the large activation buffers of each batch are
returned to the kernel when freed (``munmap``, or ``sbrk`` trimming the heap's top) and
faulted in again, page by page, on the next pass: on a 2-core CPU a quarter of a slice's CPU
time was the kernel's (5.3 million minor page faults for a few hundred points), and a point
of ``vgg_small`` on 1000 digits took 12.2-12.4 ms instead of 6.8-6.9 ms
(``benchmarks/bench_scaling.py``, allocator section).

:func:`keep_freed_memory` raises glibc's mmap threshold to 256 MiB and its trim threshold
to 1 GiB (``mallopt``, as ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` would):
buffers below 256 MiB come from the heap and stay there once freed. The peak memory is
unchanged (a 51x51 slice: +5.5 vs +5.3 MiB over the model's forward); the resident size no
longer shrinks between passes. The command line calls it at start; call it yourself in
your own long-running scripts. Elsewhere (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "CPU_FLAGS",
    "cpu_description",
    "cpu_info",
    "device_of",
    "keep_freed_memory",
    "resolve_device",
]


#: The vector extensions that decide torch's CPU kernels (and so the last bits of float
#: sums: results differ between machines that differ here), as /proc/cpuinfo names them.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_info() -> tuple[str, frozenset[str]]:
    """The first processor's model name and all its flags (Linux: /proc/cpuinfo; elsewhere
    the processor string of ``platform`` and no flags).

    Where /proc/cpuinfo gives the x86 family and model numbers they follow the name, as in
    ``AMD EPYC (family 25, model 17)``: virtual machines often show a bare "AMD EPYC",
    and the numbers tell its generation (25 is Zen 3/4, 26 Zen 5), which decides how much
    avx512_bf16 gains.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine() or "unknown", frozenset()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name", "unknown")
    if "cpu family" in fields and "model" in fields:
        model += f" (family {fields['cpu family']}, model {fields['model']})"
    return model, frozenset(fields.get("flags", "").split())


def cpu_description() -> str:
    """One line for a result's provenance: the CPU's model and which of :data:`CPU_FLAGS`
    it has."""
    model, flags = cpu_info()
    found = " ".join(f for f in CPU_FLAGS if f in flags) or f"none of {', '.join(CPU_FLAGS)}"
    return f"{model}; flags: {found}"


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but no CUDA device is available: use --device cpu")
    if device in ("cpu", "cuda"):
        return torch.device(device)
    raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for an empty model)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30
_DONE: list[bool] = []


def keep_freed_memory() -> bool:
    """Tune glibc's allocator to keep freed memory for the next pass (once per process).

    Returns:
        True where glibc took both settings, False where there is no glibc (nothing done).
    """
    if _DONE:
        return _DONE[0]
    ok = False
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            )
        except (OSError, AttributeError):
            ok = False
    _DONE.append(ok)
    return ok
