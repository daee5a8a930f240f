"""The machine a benchmark's numbers come from, printed beside them by every script here."""

from __future__ import annotations

import os

import landscape


def cpu() -> str:
    """The CPU's model and the vector flags that decide torch's kernels
    (:func:`landscape.cpu_description`), and its core count."""
    return f"CPU {landscape.cpu_description()}; {os.cpu_count()} cores"


def load() -> str:
    """The 1, 5 and 15 minute load averages ("n/a" where the system has none)."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"
