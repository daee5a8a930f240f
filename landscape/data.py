"""In-memory datasets, a seeded batch order, and readers for the standard file formats.

Every dataset is loaded whole into CPU float32 tensors (:class:`Dataset`). Training batches
come from :func:`batch_indices`, a pure function of ``(seed, step)``, so the BN and plain
runs of a pair, and a run resumed from a checkpoint, see exactly the same batches.

Nothing read from a file goes through the stock unpickler. CIFAR-10's "python version"
batches are pickles, so they are read by :class:`_RestrictedUnpickler`, which builds dicts,
lists, bytes, numbers and numeric numpy arrays and refuses every other object.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "DatasetSource",
    "accuracy",
    "batch_indices",
    "eval_batches",
    "load_dataset",
    "steps_per_epoch",
]

log = logging.getLogger(__name__)

Task = Literal["classification", "regression"]
DIGITS_ENV = "LANDSCAPE_DIGITS"  # path of an alternative digits.npz
DATA_DIR_ENV = "LANDSCAPE_DATA_DIR"  # root holding cifar10/, mnist/, fashion-mnist/
DIGITS_FILE = Path(__file__).resolve().parent.parent / "data" / "digits" / "digits.npz"
COMMON_OPTIONS: dict[str, Any] = {"subset": None, "test_subset": None}  # every dataset
_META_MAX_FLOATS = 1024  # bigger synthetic parameters are rebuilt from a_seed, not stored
_MASK64 = (1 << 64) - 1


class DataError(ValueError):
    """A dataset cannot be loaded as asked; the message names the problem and the fix."""


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


# ----------------------------------------------------------------------------- batches
def _mix(seed: int, salt: int) -> int:
    """SplitMix64 of ``(seed, salt)`` as a 63-bit seed: stable across versions and platforms."""
    z = ((seed & _MASK64) * 0x9E3779B97F4A7C15 + salt + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches in one pass over ``n`` examples (the last partial batch is dropped)."""
    if not 1 <= batch_size <= n:
        raise DataError(
            f"batch_size must lie in [1, {n}] (the training set size), got {batch_size}"
        )
    return n // batch_size


@lru_cache(maxsize=4)
def _epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch)))


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> Tensor:
    """Indices of training batch ``step``, a pure function of ``(n, batch_size, step, seed)``.

    Epoch ``e = step // (n // batch_size)`` is the permutation
    ``randperm(n, generator=manual_seed(splitmix64(seed, e)))``, cut into ``n // batch_size``
    batches (drop-last). Full batch (``batch_size == n``, gradient descent on the deep linear
    network) gives ``arange(n)`` at every step.

    >>> batch_indices(4, 4, step=7, seed=0).tolist()
    [0, 1, 2, 3]
    """
    per_epoch = steps_per_epoch(n, batch_size)
    if step < 0:
        raise DataError(f"step must be >= 0, got {step}")
    if batch_size == n:
        return torch.arange(n)
    epoch, k = divmod(step, per_epoch)
    return _epoch_permutation(n, seed, epoch)[k * batch_size : (k + 1) * batch_size].clone()


def eval_batches(x: Tensor, y: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Consecutive ``(x, y)`` slices of ``batch_size`` in order; the last may be shorter."""
    if batch_size < 1:
        raise DataError(f"batch_size must be positive, got {batch_size}")
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size], y[i : i + batch_size]


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Fraction of rows whose arg-max logit is the integer target; NaN for no rows."""
    if len(targets) == 0:
        return float("nan")
    return float((logits.argmax(dim=1) == targets).double().mean())


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
        name: a key of :data:`DATASETS`.
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


def _first(x: Tensor, y: Tensor, n: int | None, what: str) -> tuple[Tensor, Tensor]:
    if n is None:
        return x, y
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(x):
        raise DataError(f"{what} must be an integer in [1, {len(x)}], got {n!r}")
    return x[:n], y[:n]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            f"digits file not found at {path}; restore data/digits/digits.npz "
            f"(python data/digits/prepare.py) or point ${DIGITS_ENV} at a copy"
        )
    with np.load(path, allow_pickle=False) as npz:
        images, targets = npz["images"], npz["targets"]
    if images.shape[1:] != (8, 8) or images.shape[:1] != targets.shape:
        raise DataError(f"{path} is not a digits archive: images {images.shape}")
    # Stratified: each class gives round(test_fraction * its count) examples to the test set.
    gen = torch.Generator().manual_seed(_mix(seed, 0xD161))
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
        "sha256": {path.name: _sha256(path)},
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
    total = n + round(n * test_fraction / (1 - test_fraction))
    a_seed = seed if a_seed is None else a_seed
    param_gen = torch.Generator().manual_seed(a_seed)
    gen = torch.Generator().manual_seed(_mix(seed, 0x5E))
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


# ----------------------------------------------------------------------------- files, download
_CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_IDX_FILES += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_MNIST_MD5 = "f68b3c2dcbeaaa9fbdd348bbdeb94873 d53e105ee54ea40749a09fcbcd1e9432 "
_MNIST_MD5 += "9fb629c4189551a2d022fa330f9573f3 ec29112dd5afa0611ce80d1b7f02629c"
_FASHION_MD5 = "8d4fb7e6c68d591d4c3dfef9ec88bf0d 25c81989df183df01b3e8a0aad5dffbe "
_FASHION_MD5 += "bef4ecab320f06d8554ea6380940ec79 bb300cfdad3c16e7a12a480ee83cd310"
# URL -> md5: CIFAR-10 as published on its home page; (Fashion-)MNIST as in torchvision.
_REMOTE: dict[str, dict[str, str]] = {
    "cifar10": {_CIFAR_URL: "c58f30108f718f92721af3b95e74349a"},
    "mnist": dict(zip([f"{_MNIST_URL}{f}.gz" for f in _IDX_FILES], _MNIST_MD5.split())),
    "fashion-mnist": dict(zip([f"{_FASHION_URL}{f}.gz" for f in _IDX_FILES], _FASHION_MD5.split())),
}


def _data_root(data_dir: str | Path | None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "landscape"


def _download(url: str, md5_hex: str, folder: Path) -> Path:
    """Fetch ``url`` into ``folder`` via a temp file and rename; a bad md5 leaves nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / url.rsplit("/", 1)[-1]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{dest.name}.", suffix=".part")
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        log.info("downloading %s", url)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                md5.update(block)
                out.write(block)
        if md5.hexdigest() != md5_hex:
            raise DataError(
                f"checksum mismatch for {url}: md5 {md5.hexdigest()}, expected {md5_hex}; "
                "the file was discarded: retry, or fetch it by hand"
            )
        os.replace(tmp, dest)
    except OSError as err:
        raise DataError(f"could not download {url} ({err}); fetch it by hand") from err
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _extract_tar(archive: Path, folder: Path) -> None:
    """Extract regular files and folders only; refuse absolute paths, '..' and links."""
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            if (
                m.name.startswith(("/", "\\"))
                or ".." in Path(m.name).parts
                or not (m.isfile() or m.isdir())
            ):
                raise DataError(f"refusing to extract {archive.name}: unsafe member {m.name!r}")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second line of defence
            tar.extractall(folder, members=members, filter="data")
        else:
            tar.extractall(folder, members=members)  # members checked above


def _find(root: Path, subdirs: tuple[str, ...], names: tuple[str, ...], gz: bool) -> Path | None:
    """The first candidate folder holding every file (IDX files may also end in .gz)."""
    for folder in (root / sub for sub in subdirs):
        if all((folder / f).is_file() or (gz and (folder / f"{f}.gz").is_file()) for f in names):
            return folder
    return None


def _locate(name: str, data_dir: str | Path | None, download: bool) -> Path:
    root = _data_root(data_dir)
    if name == "cifar10":
        subdirs = ("cifar10/cifar-10-batches-py", "cifar10", "cifar-10-batches-py", ".")
        files, gz, where = _CIFAR_FILES, False, root / subdirs[0]
    else:
        subdirs = (name, "MNIST/raw" if name == "mnist" else "FashionMNIST/raw", ".")
        files, gz, where = _IDX_FILES, True, root / name
    folder = _find(root, subdirs, files, gz)
    if folder is None and download:
        for url, md5_hex in _REMOTE[name].items():
            path = _download(url, md5_hex, root / name)
            if path.name.endswith(".tar.gz"):
                _extract_tar(path, root / name)
        folder = _find(root, subdirs, files, gz)
    if folder is None:
        listing = ", ".join(files) + (" (each may end in .gz)" if gz else "")
        raise DataError(
            f"{name} files not found under {root}: put {listing} in {where}/ (or point "
            f"data_dir / ${DATA_DIR_ENV} at their root), or pass --download (download=True)"
        )
    return folder


def _file_meta(source: str, folder: Path, paths: list[Path]) -> dict[str, Any]:
    sha = {p.name: _sha256(p) for p in paths}
    return {"source": source, "path": str(folder), "split": "official", "sha256": sha}


# ----------------------------------------------------------------------------- CIFAR-10
def _reconstruct() -> Callable:
    try:
        from numpy._core.multiarray import _reconstruct as fn
    except ImportError:  # numpy < 1.26
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _numeric_dtype(*args: Any) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise DataError("it contains an array of Python objects")
    return dtype


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    # Python 3 pickles bytes at protocol 2 as _codecs.encode(str, "latin1"); nothing else passes.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError("it calls _codecs.encode for something other than bytes")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that knows five globals, all needed for CIFAR-10 batches, and no others.

    numpy's ``_reconstruct`` (old and new module name), ``numpy.ndarray``, ``numpy.dtype``
    (object dtypes refused) and ``_codecs.encode`` restricted to latin-1 (batches re-saved
    by Python 3). Any other global, e.g. ``os.system`` or a class, raises DataError before
    anything is called.
    """

    _ALLOWED: ClassVar[dict[tuple[str, str], Callable[[], Any]]] = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: _numeric_dtype,
        ("_codecs", "encode"): lambda: _latin1_encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise DataError(f"it contains object {module}.{name}; only plain arrays are allowed")
        return self._ALLOWED[(module, name)]()


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (n, 3, 32, 32), labels int64 (n,))`` of one CIFAR-10 batch file."""
    try:
        batch = _RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except DataError as err:
        raise DataError(f"refusing to load {path}: {err}") from None
    except Exception as err:  # a malformed stream can fail in many ways
        raise DataError(f"{path} is not a CIFAR-10 batch ({err})") from None
    batch = batch if isinstance(batch, dict) else {}
    data, labels = batch.get(b"data"), np.asarray(batch.get(b"labels", []))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,):
        raise DataError(f"{path} is not a CIFAR-10 batch: no uint8 (n, 3072) b'data' array")
    if (
        len(labels) != len(data)
        or labels.dtype.kind not in "iu"
        or np.any((labels < 0) | (labels > 9))
    ):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels in 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)  # rows: R, G, B planes


@_register("cifar10", "CIFAR-10 python version: 50,000 + 10,000 32x32 RGB images")
def _load_cifar10(*, data_dir: Any, download: bool, **_: Any) -> _Raw:
    folder = _locate("cifar10", data_dir, download)
    parts = [_read_cifar_batch(folder / f) for f in _CIFAR_FILES]
    x_train = torch.from_numpy(np.concatenate([p[0] for p in parts[:5]]))
    y_train = torch.from_numpy(np.concatenate([p[1] for p in parts[:5]]))
    x_test, y_test = (torch.from_numpy(a) for a in parts[5])
    paths = [folder / f for f in _CIFAR_FILES]
    meta = _file_meta("CIFAR-10 python version, www.cs.toronto.edu/~kriz/cifar.html", folder, paths)
    return _Raw("classification", x_train, y_train, x_test, y_test, 10, 1 / 255, meta)


# ----------------------------------------------------------------------------- (Fashion-)MNIST
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file, raw or gzip: magic ``00 00 <type> <ndim>``, big-endian dims, data."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: corrupt gzip stream ({err}); fetch it again") from None
    if len(raw) < 4 + 4 * ndim or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] != ndim:
        raise DataError(f"{path}: bad IDX magic {raw[:4].hex()}, expected 0000XX{ndim:02x}")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    payload = raw[4 + 4 * ndim :]
    if len(payload) != int(np.prod(dims)) * dtype.itemsize:
        raise DataError(f"{path}: {len(payload)} data bytes do not match dims {dims}")
    return np.frombuffer(payload, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _load_idx(name: str, data_dir: Any, download: bool) -> _Raw:
    folder = _locate(name, data_dir, download)
    paths = [folder / f if (folder / f).is_file() else folder / f"{f}.gz" for f in _IDX_FILES]
    arrays = [torch.from_numpy(_read_idx(p, 3 if "images" in p.name else 1)) for p in paths]
    x_train, y_train, x_test, y_test = arrays
    for images, labels, path in ((x_train, y_train, paths[1]), (x_test, y_test, paths[3])):
        bad = labels.is_floating_point() or bool((labels.lt(0) | labels.gt(9)).any())
        if bad or len(labels) != len(images):
            raise DataError(f"{path}: {len(images)} images but {len(labels)} labels in 0..9")
    meta = _file_meta(f"{name} IDX files", folder, paths)
    scale = 1 / 255 if x_train.dtype == torch.uint8 else 1.0
    x_train, x_test = x_train.unsqueeze(1), x_test.unsqueeze(1)  # (N, 1, 28, 28)
    return _Raw("classification", x_train, y_train.long(), x_test, y_test.long(), 10, scale, meta)


@_register("mnist", "MNIST handwritten digits (IDX): 60,000 + 10,000 28x28 images")
def _load_mnist(*, data_dir: Any, download: bool, **_: Any) -> _Raw:
    return _load_idx("mnist", data_dir, download)


@_register("fashion-mnist", "Fashion-MNIST (IDX): 60,000 + 10,000 28x28 images")
def _load_fashion_mnist(*, data_dir: Any, download: bool, **_: Any) -> _Raw:
    return _load_idx("fashion-mnist", data_dir, download)
