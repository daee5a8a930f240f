"""``keep_freed_memory``: glibc stops handing the buffers of each pass back to the kernel.

Measured by what it is for: the minor page faults of a loop that makes and frees a 64 MiB
buffer, as every pass of a slice does with its activations (before: every pass faults the
whole buffer in again, 16,384 faults of 4 KiB each).
"""

from __future__ import annotations

import platform
import subprocess
import sys

from landscape import keep_freed_memory

LOOP = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from landscape import keep_freed_memory
    assert keep_freed_memory()
torch.empty(16 << 20).fill_(1.0)  # the first pass faults in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.empty(16 << 20).fill_(1.0)  # 64 MiB, freed at once
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", LOOP, mode], capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    return int(out.stdout.split()[-1])


def test_freed_buffers_are_not_faulted_in_again_on_glibc() -> None:
    if not GLIBC:  # nothing to tune: it says so and changes nothing
        assert keep_freed_memory() is False
        return
    default, kept = faults("default"), faults("keep")
    assert default > 20 * 10_000, default  # each of the 20 passes faults ~16,384 pages in
    # The heap may settle once (a small allocation between passes can push the next buffer
    # past the freed one: one more pass faults in, seen in CI at 16,385 of 327,700), never again.
    assert kept < default / 10, (kept, default)


def test_it_is_done_once_and_answers_the_same() -> None:
    first = keep_freed_memory()
    assert keep_freed_memory() is first
    assert first is GLIBC


def test_the_command_line_tunes_it_at_start() -> None:
    code = ("import landscape._device as a, sys; from landscape.cli import main; "
            "sys.argv = ['landscape', 'info', '--help']; "
            "import contextlib\nwith contextlib.suppress(SystemExit): main()\n"
            "print('tuned', a._DONE)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert f"tuned [{GLIBC}]" in out.stdout, out.stdout + out.stderr
