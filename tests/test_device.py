"""``cpu_info`` and ``cpu_description``: the CPU a result came from, read from /proc/cpuinfo."""

from __future__ import annotations

from pathlib import Path

import landscape
from landscape import _device

CPUINFO = """processor\t: 0
model name\t: Test CPU 9000
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16
processor\t: 1
model name\t: Another CPU
flags\t\t: fpu
"""


def fake_cpuinfo(monkeypatch, text: str | None) -> None:
    real = Path.read_text

    def read_text(self, *args, **kwargs):
        if str(self) == "/proc/cpuinfo":
            if text is None:
                raise OSError("no /proc here")
            return text
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)


def test_the_first_processor_s_model_and_flags(monkeypatch):
    fake_cpuinfo(monkeypatch, CPUINFO)
    model, flags = _device.cpu_info()
    assert model == "Test CPU 9000" and flags == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16"}
    assert landscape.cpu_description() == "Test CPU 9000; flags: avx2 avx512f avx512_bf16"


def test_the_x86_family_and_model_follow_the_name(monkeypatch):
    fake_cpuinfo(monkeypatch, "model name : AMD EPYC\ncpu family : 25\nmodel : 17\nflags : avx2\n"
                 "processor : 1\ncpu family : 26\nmodel : 2\n")  # fmt: skip
    assert _device.cpu_description() == "AMD EPYC (family 25, model 17); flags: avx2"


def test_a_cpu_without_the_flags_says_so(monkeypatch):
    fake_cpuinfo(monkeypatch, "model name : Old CPU\nflags : fpu sse2\n")
    assert _device.cpu_description() == (
        "Old CPU; flags: none of avx2, avx512f, avx512_bf16, amx_bf16, amx_tile"
    )


def test_without_proc_the_platform_names_the_processor(monkeypatch):
    fake_cpuinfo(monkeypatch, None)
    monkeypatch.setattr(_device.platform, "processor", lambda: "arm64")
    assert _device.cpu_info() == ("arm64", frozenset())
