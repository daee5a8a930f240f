"""What a slice is evaluated at and on: grid coordinates and the evaluation data.

Coordinates are a ``"start:stop:num"`` range string or the points themselves
(:func:`as_coords`). Evaluation data are re-iterable ``(inputs, targets)`` batches: one pass
over them is one point of a slice, so a one-shot iterator is refused (:func:`as_batches`).
A dataset name stands for a fixed seeded subset of it (:func:`dataset_batches`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from landscape.data import Dataset, eval_batches, load_dataset

__all__ = [
    "DEFAULT_EXAMPLES",
    "MAX_POINTS",
    "MAX_POINTS_PER_AXIS",
    "Batch",
    "Batches",
    "Coords",
    "Data",
    "DataSummary",
    "LossFn",
    "Metric",
    "as_batches",
    "as_coords",
    "dataset_batches",
    "describe_data",
    "parse_range",
]

Batch = tuple[Tensor, Tensor]
Data = Iterable[Batch] | Callable[[], Iterable[Batch]] | str  # str: a dataset name
Metric = Callable[[Tensor, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> batch mean
Coords = str | Sequence[float] | np.ndarray  # "start:stop:num" or the points themselves

#: A guard against typos: 100,000 points per axis is 10^10 evaluations for a plane.
MAX_POINTS_PER_AXIS = 100_000
#: ... and 10^7 points per grid (80 MB per metric in memory); more is a typo, not a slice.
MAX_POINTS = 10_000_000
#: A dataset given by name is evaluated on this many training examples, drawn with this seed.
DEFAULT_EXAMPLES = 1000
SUBSET_SEED = 0
#: Batch size of :func:`dataset_batches`: under BN eval mode it only orders the summation.
DEFAULT_BATCH_SIZE = 1024
_RANGE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")
_RANGE_HELP = "expected 'start:stop:num' with start <= stop and an integer num >= 1, e.g. '-1:1:51'"


@dataclass(frozen=True)
class DataSummary:
    """What one pass over the evaluation data sees, found without a forward pass."""

    examples: int
    batches: int
    classification: bool  # every target is a 1-D tensor of integer class labels
    source: dict | None = None  # the dataset subset, for batches from dataset_batches


class Batches(list):
    """Batches of a dataset subset that remember it (``source``, JSON-safe)."""

    def __init__(self, batches: Iterable[Batch], source: dict) -> None:
        super().__init__(batches)
        self.source = source


def parse_range(spec: str) -> np.ndarray:
    """Parse ``"start:stop:num"`` into ``num`` evenly spaced points, endpoints included.

    Example:
        >>> parse_range("-1:1:5")
        array([-1. , -0.5,  0. ,  0.5,  1. ])
        >>> parse_range("0:0:1")
        array([0.])
    """
    m = _RANGE.match(spec) if isinstance(spec, str) else None
    if m is None:
        raise ValueError(f"bad range {spec!r}: {_RANGE_HELP}")
    try:
        start, stop, num = float(m[1]), float(m[2]), int(m[3])
    except ValueError:
        raise ValueError(f"bad range {spec!r}: {_RANGE_HELP}") from None
    if not (math.isfinite(start) and math.isfinite(stop)) or num < 1 or start > stop:
        raise ValueError(f"bad range {spec!r}: {_RANGE_HELP}")
    if start == stop and num != 1:
        raise ValueError(f"bad range {spec!r}: start == stop needs num == 1")
    if num > MAX_POINTS_PER_AXIS:
        raise ValueError(f"bad range {spec!r}: at most {MAX_POINTS_PER_AXIS} points per axis")
    if not math.isfinite(stop - start):
        raise ValueError(f"bad range {spec!r}: stop - start overflows; use a smaller range")
    return np.linspace(start, stop, num)


def as_coords(v: Coords, name: str = "x") -> np.ndarray:
    """A range string (see :func:`parse_range`) or numbers -> finite float64 array (n,)."""
    arr = parse_range(v) if isinstance(v, str) else np.asarray(v, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} coordinates must be finite and non-empty")
    return arr


def dataset_batches(
    dataset: str | Dataset,
    *,
    examples: int = DEFAULT_EXAMPLES,
    batch_size: int = DEFAULT_BATCH_SIZE,
    split: str = "train",
    seed: int = SUBSET_SEED,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Batches:
    """A fixed seeded subset of a dataset's split, resident on ``device``, cut into batches.

    The same arguments give the same examples in the same order on every machine, so slices
    of different models (BN and plain) see the same data.

    Args:
        dataset: A name for :func:`landscape.data.load_dataset` (default options), or a
            loaded :class:`~landscape.data.Dataset` (e.g. with the training run's options).
        examples: Size of the subset (drawn without replacement, kept in dataset order);
            0 or more than the split holds: the whole split.
        batch_size: Examples per batch; the last batch may be shorter.
        split: ``"train"`` or ``"test"``.
        seed: Seed of the subset.
        device, dtype: Where the batches live; ``dtype`` applies to floating tensors.

    Returns:
        The batches, with ``source`` = ``{"dataset", "split", "examples", "subset_seed"}``.
    """
    if examples < 0 or batch_size < 1:
        raise ValueError(f"need examples >= 0 (0: all) and batch_size >= 1, "
                         f"got {examples} and {batch_size}")  # fmt: skip
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    d = load_dataset(dataset) if isinstance(dataset, str) else dataset
    x, y = (d.x_train, d.y_train) if split == "train" else (d.x_test, d.y_test)
    if 0 < examples < len(x):
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(x), generator=gen)[:examples].sort().values
        x, y = x[idx], y[idx]
    x, y = (t.to(device=device, dtype=dtype if t.is_floating_point() else None) for t in (x, y))
    source = {"dataset": d.name, "split": split, "examples": len(x), "subset_seed": seed}
    return Batches(eval_batches(x, y, batch_size), source)  # batch_size checked above


def as_batches(data: Data, model: nn.Module | None = None) -> Iterable[Batch]:
    """One fresh pass over ``data``: a single ``(x, y)`` tuple, a re-iterable or a callable.

    A string is a dataset name: :func:`dataset_batches` with its defaults (1000 training
    examples drawn with seed 0, batches of 1024) on ``model``'s device and dtype.

    Raises:
        ValueError: If ``data`` is a one-shot iterator (a second pass would see nothing).
    """
    if isinstance(data, str):
        ts = [] if model is None else [*model.parameters(), *model.buffers()]
        device = next((t.device for t in ts), None)
        dtype = next((t.dtype for t in ts if t.is_floating_point()), None)
        return dataset_batches(data, device=device, dtype=dtype)
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        return [data]  # a single (inputs, targets) batch
    if callable(data):
        return data()
    if iter(data) is data:
        raise ValueError(
            "data is a one-shot iterator; pass a list of batches, a DataLoader or a "
            "callable returning a fresh iterator"
        )
    return data


def _is_labels(t: Tensor) -> bool:
    return t.ndim == 1 and not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def describe_data(data: Data) -> DataSummary:
    """Count examples and batches and check whether targets are class labels."""
    examples = batches = 0
    labels = True
    for _, targets in as_batches(data):
        examples += int(targets.shape[0])
        batches += 1
        labels = labels and _is_labels(targets)
    if batches == 0 or examples == 0:
        raise ValueError("the evaluation data is empty")
    return DataSummary(examples, batches, labels, getattr(data, "source", None))
