"""The evaluation protocol: what a slice (and any measurement that averages a loss over
data) is evaluated on, and with which loss.

Evaluation data are re-iterable ``(inputs, targets)`` batches: one pass over them is one
evaluation, so a one-shot iterator is refused (:func:`as_batches`). A dataset name stands
for a fixed seeded subset of it (:func:`dataset_batches`). ``loss_fn(outputs, targets)``
returns the batch mean; :func:`loss_function` is the one a data set's task implies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from landscape.data.batches import eval_batches
from landscape.data.datasets import Dataset, load_dataset

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EXAMPLES",
    "SUBSET_SEED",
    "Batch",
    "Batches",
    "Data",
    "DataSummary",
    "LossFn",
    "Metric",
    "accuracy",
    "as_batches",
    "dataset_batches",
    "describe_data",
    "loss_function",
]

Batch = tuple[Tensor, Tensor]  # (inputs, targets)
Data = Iterable[Batch] | Callable[[], Iterable[Batch]] | str  # str: a dataset name
Metric = Callable[[Tensor, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> batch mean

#: A dataset given by name is evaluated on this many training examples, drawn with this seed.
DEFAULT_EXAMPLES = 1000
SUBSET_SEED = 0
#: Batch size of :func:`dataset_batches`: under BN eval mode it only orders the summation.
DEFAULT_BATCH_SIZE = 1024


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


def loss_function(task: str) -> LossFn:
    """Cross-entropy for classification, mean squared error for regression (the DLN)."""
    if task == "classification":
        return nn.functional.cross_entropy
    if task == "regression":
        return nn.functional.mse_loss
    raise ValueError(f"unknown task {task!r}")


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Fraction of rows whose arg-max logit is the integer target; NaN for no rows."""
    if len(targets) == 0:
        return float("nan")
    return float((logits.argmax(dim=1) == targets).double().mean())
