"""Devices, spelled once: the ``auto``/``cpu``/``cuda`` choice of the CLI and the configs, and
the device a model lives on. Shared by the trainer, the probes and the slices."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["device_of", "resolve_device"]


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
