"""Readers for the standard dataset files: CIFAR-10 python batches, IDX, downloads.

Nothing read from a file goes through the stock unpickler: CIFAR-10's "python version"
batches are pickles, read by :class:`_RestrictedUnpickler`, which builds dicts, lists,
bytes, numbers and numeric numpy arrays and refuses every other object. Downloads are
checked against their md5 and written through a temporary file; archives are extracted
only after every member was checked.
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
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from landscape._files import atomic_path, sha256_of

log = logging.getLogger(__name__)

DATA_DIR_ENV = "LANDSCAPE_DATA_DIR"  # root holding cifar10/, mnist/, fashion-mnist/


class DataError(ValueError):
    """A dataset cannot be loaded as asked; the message names the problem and the fix."""


# ----------------------------------------------------------------------------- files, download
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
IDX_FILES += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_MNIST_MD5 = "f68b3c2dcbeaaa9fbdd348bbdeb94873 d53e105ee54ea40749a09fcbcd1e9432 "
_MNIST_MD5 += "9fb629c4189551a2d022fa330f9573f3 ec29112dd5afa0611ce80d1b7f02629c"
_FASHION_MD5 = "8d4fb7e6c68d591d4c3dfef9ec88bf0d 25c81989df183df01b3e8a0aad5dffbe "
_FASHION_MD5 += "bef4ecab320f06d8554ea6380940ec79 bb300cfdad3c16e7a12a480ee83cd310"
# URL -> md5: CIFAR-10 as published on its home page; (Fashion-)MNIST as in torchvision.
REMOTE: dict[str, dict[str, str]] = {
    "cifar10": {_CIFAR_URL: "c58f30108f718f92721af3b95e74349a"},
    "mnist": dict(zip([f"{_MNIST_URL}{f}.gz" for f in IDX_FILES], _MNIST_MD5.split())),
    "fashion-mnist": dict(zip([f"{_FASHION_URL}{f}.gz" for f in IDX_FILES], _FASHION_MD5.split())),
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
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        with atomic_path(dest, suffix=".part") as tmp:
            log.info("downloading %s", url)
            with tmp.open("wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    md5.update(block)
                    out.write(block)
            if md5.hexdigest() != md5_hex:
                raise DataError(
                    f"checksum mismatch for {url}: md5 {md5.hexdigest()}, expected {md5_hex}; "
                    "the file was discarded: retry, or fetch it by hand"
                )
    except OSError as err:
        raise DataError(f"could not download {url} ({err}); fetch it by hand") from err
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


def locate(name: str, data_dir: str | Path | None, download: bool) -> Path:
    root = _data_root(data_dir)
    if name == "cifar10":
        subdirs = ("cifar10/cifar-10-batches-py", "cifar10", "cifar-10-batches-py", ".")
        files, gz, where = CIFAR_FILES, False, root / subdirs[0]
    else:
        subdirs = (name, "MNIST/raw" if name == "mnist" else "FashionMNIST/raw", ".")
        files, gz, where = IDX_FILES, True, root / name
    folder = _find(root, subdirs, files, gz)
    if folder is None and download:
        for url, md5_hex in REMOTE[name].items():
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


def file_meta(source: str, folder: Path, paths: list[Path]) -> dict[str, Any]:
    sha = {p.name: sha256_of(p) for p in paths}
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


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
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


# ----------------------------------------------------------------------------- (Fashion-)MNIST
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path, ndim: int) -> np.ndarray:
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
