"""In-memory datasets loaded by name, with held-out splits and provenance.

Every dataset is loaded whole into CPU float32 tensors (:class:`Dataset`). The file formats
(CIFAR-10 python batches through a restricted unpickler, IDX, checked downloads) are read
by :mod:`landscape.data.formats`; the seeded batch order is :mod:`landscape.data.batches`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from landscape._files import sha256_of
from landscape._imports import import_object, is_import_path
from landscape.data.batches import mix_seed
from landscape.data.formats import (
    CIFAR_FILES,
    IDX_FILES,
    DataError,
    file_meta,
    locate,
    read_cifar_batch,
    read_idx,
)

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "DatasetSource",
    "Task",
    "dataset_from_factory",
    "load_dataset",
]


Task = Literal["classification", "regression"]
DIGITS_ENV = "LANDSCAPE_DIGITS"  # path of an alternative digits.npz
DIGITS_FILE = Path(__file__).resolve().with_name("digits.npz")  # package data
COMMON_OPTIONS: dict[str, Any] = {"subset": None, "test_subset": None}  # every dataset
_META_MAX_FLOATS = 1024  # bigger synthetic parameters are rebuilt from a_seed, not stored


@dataclass
class Dataset:
    """A whole dataset held in memory.

    Attributes:
        name: registry name (``"digits"``, ``"cifar10"``, ...).
        task: ``"classification"`` (int64 labels) or ``"regression"`` (float32 targets).
        x_train: float32 ``(N, *input_shape)``; ``x_test`` likewise.
        y_train: int64 ``(N,)`` labels, or float32 ``(N, num_classes)`` targets; ``y_test``
            likewise.
        input_shape: shape of one example, e.g. ``(1, 8, 8)``.
        num_classes: number of classes; for regression the output dimension.
        meta: JSON-safe provenance: source, sizes, split seed, standardisation, checksums.
    """

    name: str
    task: Task
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    input_shape: tuple[int, ...]
    num_classes: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Raw:
    """What a loader returns; ``x`` may be uint8, multiplied by ``scale`` after subsetting."""

    task: Task
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    scale: float
    meta: dict[str, Any]


@dataclass(frozen=True)
class DatasetSource:
    """A registry entry: the loader, the options it accepts (with defaults), a description."""

    loader: Callable[..., _Raw]
    options: dict[str, Any]
    description: str


DATASETS: dict[str, DatasetSource] = {}


def _register(name: str, description: str, **defaults: Any) -> Callable:
    def wrap(loader: Callable[..., _Raw]) -> Callable[..., _Raw]:
        DATASETS[name] = DatasetSource(loader, defaults, description)
        return loader

    return wrap


# ----------------------------------------------------------------------------- loading
def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    seed: int = 0,
    test_fraction: float = 0.2,
    standardize: bool = True,
    **options: Any,
) -> Dataset:
    """Load a registered dataset whole into CPU float32 tensors.

    Args:
        name: a key of :data:`DATASETS`, or an import path ``package.module:factory`` of your
            own: ``factory(**options)`` returns a :class:`Dataset` (the current directory is
            importable; the other arguments do not apply).
        data_dir: folder of the files (default ``$LANDSCAPE_DATA_DIR``, else
            ``~/.cache/landscape``); for ``digits`` the folder holding ``digits.npz``.
        download: fetch missing files from their canonical URL (md5 verified).
        seed: seed of the held-out split and of synthetic data.
        test_fraction: held-out share where there is no official test set (digits, synthetic).
        standardize: ``(x - mean) / std`` per channel (axis 1) with training-split statistics;
            classification only, so that regression keeps ``y = A x``.
        **options: the dataset's options (``DATASETS[name].options``), plus ``subset`` /
            ``test_subset``: keep the first n training / test examples.

    Raises:
        DataError: unknown dataset or option, bad value, missing or corrupt files.
    """
    if is_import_path(name):  # your own: package.module:factory() -> Dataset
        return dataset_from_factory(name, **options)
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    allowed = {**COMMON_OPTIONS, **DATASETS[name].options}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(f"unknown option(s) {unknown} for {name!r}; valid: {sorted(allowed)}")
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    opts = {**allowed, **options}
    subset, test_subset = opts.pop("subset"), opts.pop("test_subset")
    raw = DATASETS[name].loader(
        data_dir=data_dir, download=download, seed=seed, test_fraction=test_fraction, **opts
    )
    x_train, y_train = _first(raw.x_train, raw.y_train, subset, "subset")
    x_test, y_test = _first(raw.x_test, raw.y_test, test_subset, "test_subset")
    x_train, x_test = x_train.float() * raw.scale, x_test.float() * raw.scale
    meta = {"name": name, "seed": seed, **raw.meta, "options": opts, "scale": raw.scale}
    meta.update(subset=subset, test_subset=test_subset, n_train=len(x_train), n_test=len(x_test))
    meta.update(standardized=False, mean=None, std=None)
    if standardize and raw.task == "classification" and len(x_train) > 1:
        dims = [d for d in range(x_train.ndim) if d != 1]
        mean = x_train.double().mean(dim=dims, keepdim=True)
        std = x_train.double().std(dim=dims, keepdim=True)
        std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel stays put
        x_train, x_test = ((x_train - mean) / std).float(), ((x_test - mean) / std).float()
        meta.update(standardized=True, mean=mean.flatten().tolist(), std=std.flatten().tolist())
    shape = tuple(x_train.shape[1:])
    x_train, x_test = x_train.contiguous(), x_test.contiguous()
    return Dataset(name, raw.task, x_train, y_train, x_test, y_test, shape, raw.num_classes, meta)


def dataset_from_factory(path: str, **options: Any) -> Dataset:
    """The :class:`Dataset` that ``package.module:factory(**options)`` returns.

    Raises:
        DataError: the path does not import, the call fails, or it returns something else.
    """
    try:
        made = import_object(path, "data factory")(**options)
    except (ValueError, TypeError) as exc:
        raise DataError(f"data factory {path!r} fails: {exc}") from None
    if not isinstance(made, Dataset):
        raise DataError(
            f"data factory {path!r} returns a {type(made).__name__}, not a landscape Dataset; "
            "slices also take a factory of batches: see dataset_batches"
        )
    return made


def _first(x: Tensor, y: Tensor, n: int | None, what: str) -> tuple[Tensor, Tensor]:
    if n is None:
        return x, y
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(x):
        raise DataError(f"{what} must be an integer in [1, {len(x)}], got {n!r}")
    return x[:n], y[:n]


# ----------------------------------------------------------------------------- digits
@_register("digits", "UCI optical digits: 1797 8x8 images, bundled (offline)")
def _load_digits(*, data_dir: Any, seed: int, test_fraction: float, **_: Any) -> _Raw:
    if data_dir is not None:
        path = Path(data_dir) / "digits.npz"
        path = path if path.is_file() else Path(data_dir) / "digits" / "digits.npz"
    else:
        path = Path(os.environ.get(DIGITS_ENV) or DIGITS_FILE)
    if not path.is_file():
        raise DataError(
            f"digits file not found at {path}: reinstall landscape (it ships "
            f"landscape/data/digits.npz) or point ${DIGITS_ENV} at a copy"
        )
    with np.load(path, allow_pickle=False) as npz:
        images, targets = npz["images"], npz["targets"]
    if images.shape[1:] != (8, 8) or images.shape[:1] != targets.shape:
        raise DataError(f"{path} is not a digits archive: images {images.shape}")
    # Stratified: each class gives round(test_fraction * its count) examples to the test set.
    gen = torch.Generator().manual_seed(mix_seed(seed, 0xD161))
    labels = torch.from_numpy(targets.astype(np.int64))
    train, test = [], []
    for c in labels.unique():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        k = round(test_fraction * len(members))
        test.append(members[:k])
        train.append(members[k:])
    train_idx, test_idx = torch.cat(train), torch.cat(test)
    train_idx = train_idx[torch.randperm(len(train_idx), generator=gen)]
    test_idx = test_idx[torch.randperm(len(test_idx), generator=gen)]
    x = torch.from_numpy(images.astype(np.uint8)).unsqueeze(1)  # (N, 1, 8, 8)
    meta = {
        "source": "UCI optical recognition of handwritten digits (scikit-learn load_digits)",
        "path": str(path),
        "sha256": {path.name: sha256_of(path)},
        "split": "stratified",
        "split_seed": seed,
        "test_fraction": test_fraction,
    }
    x_train, y_train, x_test, y_test = (
        x[train_idx],
        labels[train_idx],
        x[test_idx],
        labels[test_idx],
    )
    return _Raw("classification", x_train, y_train, x_test, y_test, 10, 1 / 16, meta)


# ----------------------------------------------------------------------------- synthetic
_SYNTHETIC = {"kind": "gaussian-mixture", "n": 1000, "dim": 10, "num_classes": 4}


@_register("synthetic", "Gaussian mixture, or DLN y = A x", **_SYNTHETIC, noise=1.0, a_seed=None)
def _load_synthetic(*, seed: int, test_fraction: float, a_seed: int | None, **opt: Any) -> _Raw:
    """``n`` training points plus ``round(n * f / (1 - f))`` test points from the same law.

    Cluster means or ``A`` depend on ``a_seed`` (default ``seed``) alone:
    ``A = torch.randn(dim, dim, generator=Generator().manual_seed(a_seed), dtype=float64)``.
    The points depend on ``seed``. ``meta`` stores ``A`` / ``means`` up to 1024 entries.
    """
    kind, n, dim, num_classes = opt["kind"], opt["n"], opt["dim"], opt["num_classes"]
    for key in ("n", "dim", "num_classes"):
        if not isinstance(opt[key], int) or opt[key] < 1:
            raise DataError(f"synthetic option {key} must be a positive integer, got {opt[key]!r}")
    noise = opt["noise"]
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
        raise DataError(f"synthetic option noise must be a finite number >= 0, got {noise!r}")
    total = n + round(n * test_fraction / (1 - test_fraction))
    a_seed = seed if a_seed is None else a_seed
    param_gen = torch.Generator().manual_seed(a_seed)
    gen = torch.Generator().manual_seed(mix_seed(seed, 0x5E))
    meta: dict[str, Any] = {"source": "synthetic", "kind": kind, "a_seed": a_seed, "dim": dim}
    if kind == "gaussian-mixture":
        means = torch.randn(num_classes, dim, generator=param_gen, dtype=torch.float64)
        y = torch.randint(num_classes, (total,), generator=gen)
        x = means[y] + opt["noise"] * torch.randn(total, dim, generator=gen, dtype=torch.float64)
        meta["means"] = means.tolist() if means.numel() <= _META_MAX_FLOATS else None
        task: Task = "classification"
    elif kind == "linear-regression":
        a = torch.randn(dim, dim, generator=param_gen, dtype=torch.float64)
        x = torch.randn(total, dim, generator=gen).double()  # float32 values, exact in float64
        y = (x @ a.T).float()  # rounded once, from the exact product
        meta["A"] = a.tolist() if a.numel() <= _META_MAX_FLOATS else None
        task, num_classes = "regression", dim
    else:
        raise DataError(
            f"unknown synthetic kind {kind!r}; use gaussian-mixture or linear-regression"
        )
    x = x.float()
    return _Raw(task, x[:n], y[:n], x[n:], y[n:], num_classes, 1.0, meta)


@_register("cifar10", "CIFAR-10 python version: 50,000 + 10,000 32x32 RGB images")
def _load_cifar10(*, data_dir: Any, download: bool, **_: Any) -> _Raw:
    folder = locate("cifar10", data_dir, download)
    parts = [read_cifar_batch(folder / f) for f in CIFAR_FILES]
    x_train = torch.from_numpy(np.concatenate([p[0] for p in parts[:5]]))
    y_train = torch.from_numpy(np.concatenate([p[1] for p in parts[:5]]))
    x_test, y_test = (torch.from_numpy(a) for a in parts[5])
    paths = [folder / f for f in CIFAR_FILES]
    meta = file_meta("CIFAR-10 python version, www.cs.toronto.edu/~kriz/cifar.html", folder, paths)
    return _Raw("classification", x_train, y_train, x_test, y_test, 10, 1 / 255, meta)


# ----------------------------------------------------------------------------- (Fashion-)MNIST
def _load_idx(name: str, data_dir: Any, download: bool) -> _Raw:
    folder = locate(name, data_dir, download)
    paths = [folder / f if (folder / f).is_file() else folder / f"{f}.gz" for f in IDX_FILES]
    arrays = [torch.from_numpy(read_idx(p, 3 if "images" in p.name else 1)) for p in paths]
    x_train, y_train, x_test, y_test = arrays
    for images, labels, path in ((x_train, y_train, paths[1]), (x_test, y_test, paths[3])):
        bad = labels.is_floating_point() or bool((labels.lt(0) | labels.gt(9)).any())
        if bad or len(labels) != len(images):
            raise DataError(f"{path}: {len(images)} images but {len(labels)} labels in 0..9")
    meta = file_meta(f"{name} IDX files", folder, paths)
    scale = 1 / 255 if x_train.dtype == torch.uint8 else 1.0
    x_train, x_test = x_train.unsqueeze(1), x_test.unsqueeze(1)  # (N, 1, 28, 28)
    return _Raw("classification", x_train, y_train.long(), x_test, y_test.long(), 10, scale, meta)


@_register("mnist", "MNIST handwritten digits (IDX): 60,000 + 10,000 28x28 images")
def _load_mnist(*, data_dir: Any, download: bool, **_: Any) -> _Raw:
    return _load_idx("mnist", data_dir, download)


@_register("fashion-mnist", "Fashion-MNIST (IDX): 60,000 + 10,000 28x28 images")
def _load_fashion_mnist(*, data_dir: Any, download: bool, **_: Any) -> _Raw:
    return _load_idx("fashion-mnist", data_dir, download)
