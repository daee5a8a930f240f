"""Data: datasets by name, their file formats, the batch order, the evaluation protocol.

Owns :mod:`.datasets` (``load_dataset``: digits bundled, synthetic, CIFAR-10, (Fashion-)MNIST,
held whole in memory with provenance), :mod:`.formats` (file readers and checked downloads;
nothing is unpickled with the stock unpickler), :mod:`.batches` (training batches as a pure
function of seed and step) and :mod:`.evaluation` (the batches a measurement averages over,
a dataset by name as a fixed seeded subset, the loss a task implies).

May import: :mod:`landscape._files` and :mod:`landscape._imports` (your own data set by
import path).
"""

from landscape.data.batches import batch_indices, eval_batches, mix_seed, steps_per_epoch
from landscape.data.datasets import DATASETS, Dataset, DatasetSource, Task, load_dataset
from landscape.data.evaluation import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EXAMPLES,
    SUBSET_SEED,
    Batch,
    Batches,
    BatchLoss,
    Data,
    DataSummary,
    Loss,
    LossFn,
    Metric,
    accuracy,
    as_batches,
    batch_loss,
    dataset_batches,
    describe_data,
    loss_function,
    move,
    objective,
)
from landscape.data.formats import DATA_DIR_ENV, DataError

__all__ = [
    # datasets
    "DATASETS",
    "DATA_DIR_ENV",
    "DataError",
    "Dataset",
    "DatasetSource",
    "Task",
    "load_dataset",
    # batch order
    "batch_indices",
    "eval_batches",
    "mix_seed",
    "steps_per_epoch",
    # evaluation data and loss
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
]
