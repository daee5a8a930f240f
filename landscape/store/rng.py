"""Exact capture and restore of the global RNG states (Python, NumPy, torch CPU and CUDA).

The captured form holds only what ``torch.load(weights_only=True)`` accepts (tensors,
numbers, strings, tuples, lists, dicts), so it can be stored in a checkpoint file.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from landscape.store.checkpoint_files import CheckpointError

__all__ = ["capture_rng", "restore_rng"]

logger = logging.getLogger(__name__)


def capture_rng() -> dict[str, Any]:
    """Capture the global RNG states in a form ``torch.load(weights_only=True)`` accepts.

    Returns:
        ``{"python": (version, tuple_of_625_ints, gauss_next), "numpy": {"algorithm",
        "keys" (int64 tensor of 624), "pos", "has_gauss", "cached_gaussian"}, "torch":
        uint8 tensor, "cuda": list of uint8 tensors (one per visible device, empty
        without CUDA)}``. :func:`restore_rng` reproduces the exact same draws.
    """
    version, internal, gauss_next = random.getstate()
    # The global legacy generator is exactly what must be captured (NPY002 is off in pyproject).
    algorithm, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    cuda = list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []
    return {
        "python": (int(version), tuple(int(k) for k in internal), gauss_next),
        "numpy": {
            "algorithm": str(algorithm),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64).copy()),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": cuda,
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore the global RNGs from :func:`capture_rng` output (possibly reloaded).

    CUDA states are restored for the devices present; if the checkpoint holds CUDA states
    but CUDA is unavailable, or the device count differs, a warning is logged and the
    CPU-side generators are still restored exactly.

    Args:
        state: Dict with keys ``python``, ``numpy``, ``torch`` and optionally ``cuda``.

    Raises:
        CheckpointError: If a required key is missing or malformed.
    """
    try:
        version, internal, gauss_next = state["python"]
        npy = state["numpy"]
        keys = np.asarray(torch.as_tensor(npy["keys"]).cpu().numpy(), dtype=np.uint32)
        numpy_state = (
            str(npy["algorithm"]),
            keys,
            int(npy["pos"]),
            int(npy["has_gauss"]),
            float(npy["cached_gaussian"]),
        )
        cpu = torch.as_tensor(state["torch"]).cpu()
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"malformed RNG state ({exc!r}): pass the dict returned by capture_rng()"
        ) from exc
    random.setstate((int(version), tuple(int(k) for k in internal), gauss_next))
    np.random.set_state(numpy_state)
    torch.set_rng_state(cpu)
    cuda = [torch.as_tensor(s).cpu() for s in state.get("cuda", [])]
    if not cuda:
        return
    if not torch.cuda.is_available():
        logger.warning("checkpoint holds %d CUDA RNG states but CUDA is unavailable", len(cuda))
        return
    n = torch.cuda.device_count()
    if n != len(cuda):
        logger.warning("checkpoint holds %d CUDA RNG states, %d devices visible", len(cuda), n)
    for i, s in enumerate(cuda[:n]):
        torch.cuda.set_rng_state(s, i)
