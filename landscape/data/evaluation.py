"""The batch/loss protocol: what a probe, a slice (any measurement of a loss) is evaluated
on, and with which loss.

Two forms, accepted by every entry point:

- ``(inputs, targets)`` batches with ``loss_fn(model(inputs), targets)`` -> the batch mean;
- any batch (a dict with ``input_ids``, ``attention_mask``, ``labels``; tuple inputs;
  keyword arguments; masks) with ``batch_loss(fn)``, ``fn(model, batch)`` -> the batch mean,
  and ``size(batch)`` the number of examples that weight it (default: the leading dimension
  of the first tensor found).

Evaluation data are re-iterable batches: one pass over them is one evaluation, so a one-shot
iterator is refused (:func:`as_batches`). A dataset name stands for a fixed seeded subset
of it (:func:`dataset_batches`); :func:`loss_function` is the loss a data set's task implies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from landscape._imports import import_object, is_import_path
from landscape.data.batches import eval_batches
from landscape.data.datasets import Dataset, load_dataset

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_EXAMPLES",
    "SUBSET_SEED",
    "Batch",
    "BatchLoss",
    "Batches",
    "Data",
    "DataSummary",
    "Loss",
    "LossFn",
    "Metric",
    "accuracy",
    "as_batches",
    "batch_loss",
    "dataset_batches",
    "describe_data",
    "loss_function",
    "move",
    "objective",
    "pair",
]

Batch = tuple[Tensor, Tensor]  # (inputs, targets)
Data = Iterable[Batch] | Callable[[], Iterable[Batch]] | str  # str: a dataset name
Metric = Callable[[Tensor, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]  # (outputs, targets) -> batch mean


@dataclass(frozen=True)
class BatchLoss:
    """A loss of a whole batch, for batches that are not ``(inputs, targets)``.

    ``fn(model, batch)`` returns the mean loss over the batch's examples (a scalar tensor);
    ``size(batch)`` their number, which weights the batch in averages over several batches
    (None: the leading dimension of the first tensor in the batch). Make one with
    :func:`batch_loss`; metrics and accuracy take the same form.
    """

    fn: Callable[[nn.Module, Any], Tensor]
    size: Callable[[Any], int] | None = None

    def __call__(self, model: nn.Module, batch: Any) -> Tensor:
        return self.fn(model, batch)

    def count(self, batch: Any) -> int:
        """The batch's number of examples (``size``, else the first tensor's length)."""
        if self.size is not None:
            return int(self.size(batch))
        t = _first_tensor(batch)
        if t is None or t.ndim == 0:
            raise ValueError("cannot tell how many examples the batch holds: pass "
                             "batch_loss(fn, size=lambda batch: ...)")  # fmt: skip
        return int(t.shape[0])


def batch_loss(fn: Callable[[nn.Module, Any], Tensor], size: Callable[[Any], int] | None = None
               ) -> BatchLoss:  # fmt: skip
    """The loss of batches of any form: ``fn(model, batch)`` -> the batch's mean loss.

    Example, a HuggingFace-style model whose batches are dicts::

        loss = batch_loss(lambda model, b: model(**b).loss)
        gradient_probe(model, loss, {"input_ids": ids, "attention_mask": mask, "labels": y},
                       StepSizes.vgg(1e-3))

    Args:
        fn: ``fn(model, batch)`` -> scalar tensor, the mean over the batch's examples.
        size: ``size(batch)`` -> the number of examples (weights the batch in averages);
            default the leading dimension of the first tensor found in the batch.
    """
    if not callable(fn) or (size is not None and not callable(size)):
        raise ValueError("batch_loss needs fn(model, batch) and, optionally, size(batch)")
    return BatchLoss(fn, size)


Loss = LossFn | BatchLoss


def _first_tensor(batch: Any) -> Tensor | None:
    if isinstance(batch, Tensor):
        return batch
    items = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(items, (list, tuple)) or isinstance(batch, Mapping):
        for item in items:
            if (t := _first_tensor(item)) is not None:
                return t
    return None


def move(batch: Any, device: torch.device | str | None, dtype: torch.dtype | None = None) -> Any:
    """``batch`` with every tensor in it on ``device`` (floating ones in ``dtype`` if given);
    dicts, lists and tuples are walked, anything else is kept as it is."""
    if isinstance(batch, Tensor):
        floating = dtype if dtype is not None and batch.is_floating_point() else None
        return batch.to(device=device, dtype=floating, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: move(v, device, dtype) for k, v in batch.items()})
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(move(v, device, dtype) for v in batch)
    return batch


def objective(loss: Loss, batch: Any) -> tuple[Callable[[nn.Module], Tensor], int]:
    """``batch``'s loss as a function of the model, and its number of examples.

    Raises:
        ValueError: a dict (or anything but a pair) given with a plain ``loss_fn``: it names
            :func:`batch_loss`.
    """
    if isinstance(loss, BatchLoss):
        return (lambda model: loss(model, batch)), loss.count(batch)
    inputs, targets = pair(batch)
    return (lambda model: loss(model(inputs), targets)), _length(targets)


def pair(batch: Any) -> tuple[Any, Any]:
    """``(inputs, targets)`` of a plain batch; anything else is refused, naming
    :func:`batch_loss` (a 2-key dict would otherwise unpack into its keys)."""
    if isinstance(batch, Mapping):
        raise ValueError(
            f"the batch is a dict (keys {list(batch)[:4]}): pass "
            "loss_fn=landscape.batch_loss(fn) with fn(model, batch) -> the batch's mean loss"
        )
    try:
        inputs, targets = batch
    except (TypeError, ValueError) as err:
        raise ValueError(
            "batch must be a pair (inputs, targets); for any other batch pass "
            "loss_fn=landscape.batch_loss(fn) with fn(model, batch) -> the mean loss"
        ) from err
    return inputs, targets


def _length(targets: Any) -> int:
    t = _first_tensor(targets)
    return int(t.shape[0]) if t is not None and t.ndim > 0 else 1


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
    # the pass's first batch as it came, so that a check on one batch needs no second pass
    first: Any = field(default=None, repr=False, compare=False)


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
        dataset: A name for :func:`landscape.data.load_dataset` (default options), a loaded
            :class:`~landscape.data.Dataset` (e.g. with the training run's options), or an
            import path ``package.module:factory`` of your own whose ``factory()`` returns a
            Dataset, or batches (taken as they are: ``examples`` and ``split`` then do not
            apply; ``source["examples"]`` counts the leading dimension of each batch's targets,
            or of a dict batch's first tensor).
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
    if isinstance(dataset, str) and is_import_path(dataset):
        made = import_object(dataset, "data factory")()
        if not isinstance(made, Dataset):  # your batches, as they are
            batches = [move(b, device, dtype) for b in as_batches(made)]
            count = sum(_length(b if isinstance(b, Mapping) else pair(b)[1]) for b in batches)
            return Batches(batches, {"dataset": dataset, "split": None, "examples": count,
                                     "subset_seed": None})  # fmt: skip
        dataset = made
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

    Nothing is iterated here: the pass is the caller's one ``iter()`` of the result (a
    DataLoader with workers starts them once per pass, not twice).

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
    if isinstance(data, Mapping):
        return [data]  # a single dict batch
    if callable(data):
        return data()
    # Iterator: has __next__; a re-iterable (list, DataLoader) is never iter()-ed to tell
    if isinstance(data, Iterator) and iter(data) is data:
        raise ValueError(
            "data is a one-shot iterator; pass a list of batches, a DataLoader or a "
            "callable returning a fresh iterator"
        )
    return data


def _is_labels(t: Tensor) -> bool:
    return t.ndim == 1 and not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def describe_data(data: Data, loss: Loss | None = None) -> DataSummary:
    """Count examples and batches and check whether targets are class labels (never, for
    batches of a :class:`BatchLoss`: their form is the loss's business)."""
    examples = batches = 0
    labels = not isinstance(loss, BatchLoss)
    first = None
    for batch in as_batches(data):
        first = batch if batches == 0 else first
        if isinstance(loss, BatchLoss):
            examples += loss.count(batch)
        else:
            _, targets = pair(batch)
            examples += _length(targets)
            labels = labels and isinstance(targets, Tensor) and _is_labels(targets)
        batches += 1
    if batches == 0 or examples == 0:
        raise ValueError("the evaluation data is empty")
    return DataSummary(examples, batches, labels, getattr(data, "source", None), first)


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
