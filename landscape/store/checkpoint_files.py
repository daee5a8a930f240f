"""Checkpoint files on disk: names, listing, hashing, atomic saves and weights-only reads.

Files of one run live in ``checkpoints/<variant>/step_XXXXXXX.pt`` (see
:func:`checkpoint_path`). Writes go to a temporary file in the same directory that is
flushed, fsynced and renamed over the target (:func:`landscape._files.atomic_path`), so a
crash never leaves a half-written checkpoint under the final name. Reads use
``torch.load(weights_only=True)``, so nothing in a file is executed; every failure becomes a
:class:`CheckpointError`.
"""

from __future__ import annotations

import io
import operator
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from landscape._files import sha256_of, write_atomically

__all__ = [
    "CheckpointError",
    "PickledObjectsError",
    "as_step",
    "atomic_torch_save",
    "checkpoint_path",
    "checkpoint_sha256",
    "list_checkpoints",
    "safe_torch_load",
    "step_of_name",
]

_STEP_FILE = re.compile(r"step_(\d{7,})\.pt")
_STEP_DIGITS = 7


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, unsafe or not a landscape checkpoint."""


class PickledObjectsError(CheckpointError):
    """A torch file holds objects a weights-only load refuses (a whole pickled model)."""


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """Return ``directory / "step_XXXXXXX.pt"`` (step zero-padded to 7 digits).

    Raises:
        ValueError: If ``step`` is negative or not an integer.
    """
    step = as_step(step)
    return Path(directory) / f"step_{step:0{_STEP_DIGITS}d}.pt"


def step_of_name(name: str) -> int | None:
    """The step in a checkpoint file name ``step_XXXXXXX.pt``; None for any other name."""
    m = _STEP_FILE.fullmatch(name)
    return int(m.group(1)) if m else None


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """List ``(step, path)`` of the checkpoints in ``directory``, sorted by step.

    Only files named ``step_XXXXXXX.pt`` count; temporary files of an interrupted save
    and anything else are ignored. A missing directory yields an empty list.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        step = step_of_name(p.name)
        if step is not None and p.is_file():
            found.append((step, p))
    return sorted(found)


# Recorded next to results to say which checkpoint produced them.
checkpoint_sha256 = sha256_of


def as_step(step: Any) -> int:
    """``step`` as an int if it is a non-negative integer (bools refused), else ValueError."""
    if isinstance(step, bool):
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    try:
        step = operator.index(step)
    except TypeError as exc:
        raise ValueError(f"step must be a non-negative int, got {step!r}") from exc
    if step < 0:
        raise ValueError(f"step must be a non-negative int, got {step}")
    return step


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` into memory, then to a temp file beside ``path``, fsync, rename over it.

    Raises:
        WriteError: the file system refused the write (``path`` is as it was).
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomically(path, buffer.getvalue())


def safe_torch_load(path: Path, map_location: Any) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into CheckpointError."""
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint at {path}: check the path (list_checkpoints shows what exists)"
        )
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file: pass a .pt file")
    try:
        with warnings.catch_warnings():
            # Raised for plain-pickle files; the refusal below is the message that matters.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        # torch reports a disallowed object as "Unsupported global"; any other refusal of
        # the weights-only unpickler (e.g. "Unsupported operand") is a file it cannot parse.
        if "unsupported global" in str(exc).lower():
            raise PickledObjectsError(
                f"refused to load {path}: it holds objects that are not allowed in a weights-only "
                "file and nothing in it was executed; if you trust it, re-save its tensors with "
                "torch.save(model.state_dict(), ...) and load that instead"
            ) from exc
        raise CheckpointError(
            f"{path} is not a landscape checkpoint: not a readable weights-only torch file "
            "(truncated, corrupt, another format, or objects that are not allowed); nothing in "
            "it was executed - re-create it with save_checkpoint or torch.save"
        ) from exc
