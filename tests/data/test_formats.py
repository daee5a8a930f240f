"""File readers and downloads: CIFAR-10 batches (restricted unpickler), IDX, checksums, archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch

from landscape.data import (
    DataError,
    formats,
    load_dataset,
)
from tests.data.helpers import write_cifar


class _Payload:
    """Runs a shell command when unpickled by an unrestricted unpickler."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Custom:
    pass


def _idx(array: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _mnist_arrays(n_train=12, n_test=5):
    rng = np.random.default_rng(0)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def _write_mnist(folder, compress: bool) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = _mnist_arrays()
    for name, array in arrays.items():
        payload = _idx(array)
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return arrays


def _serve(monkeypatch, name, files: dict[str, bytes], source, md5s=None):
    """Point the URL table at file:// copies of ``files`` (md5 taken from the bytes)."""
    source.mkdir(parents=True, exist_ok=True)
    table = {}
    for filename, payload in files.items():
        (source / filename).write_bytes(payload)
        md5 = (md5s or {}).get(filename, hashlib.md5(payload).hexdigest())
        table[(source / filename).as_uri()] = md5
    monkeypatch.setitem(formats.REMOTE, name, table)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        lambda marker: _Payload(marker),
        lambda marker: {b"data": _Custom(), b"labels": []},
        lambda marker: {b"data": np.array([marker, 1], dtype=object), b"labels": [0, 1]},
        lambda marker: {b"data": eval, b"labels": []},
    ],
    ids=["os.system", "custom-class", "object-array", "builtin"],
)
def test_cifar_malicious_pickle_is_refused(tmp_path, make):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "data_batch_3").write_bytes(pickle.dumps(make(str(marker)), protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_reader(tmp_path, name, compress):
    arrays = _write_mnist(tmp_path / name, compress)
    ds = load_dataset(name, data_dir=tmp_path, standardize=False)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.y_train.dtype == torch.int64
    assert ds.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float() / 255
    torch.testing.assert_close(ds.x_train[:, 0], expected)


def test_idx_reader_other_dtypes(tmp_path):
    array = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    (tmp_path / "x").write_bytes(_idx(array, code=0x0C))
    assert np.array_equal(formats.read_idx(tmp_path / "x", 3), array)


def test_idx_wrong_magic_or_size(tmp_path):
    _write_mnist(tmp_path / "mnist", compress=False)
    images = tmp_path / "mnist" / "train-images-idx3-ubyte"
    good = images.read_bytes()
    images.write_bytes(b"\x00\x00\x08\x01" + good[4:])  # claims one dimension
    with pytest.raises(DataError, match="bad IDX magic"):
        load_dataset("mnist", data_dir=tmp_path)
    images.write_bytes(good[:-1])
    with pytest.raises(DataError, match="do not match dims"):
        load_dataset("mnist", data_dir=tmp_path)
    images.write_bytes(good)
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(_idx(np.array([1, 2, 11], dtype=np.uint8)))
    with pytest.raises(DataError, match=r"labels in 0\.\.9"):
        load_dataset("mnist", data_dir=tmp_path)


def test_download_idx(tmp_path, monkeypatch):
    files = {f"{k}.gz": gzip.compress(_idx(v)) for k, v in _mnist_arrays().items()}
    _serve(monkeypatch, "mnist", files, tmp_path / "server")
    with pytest.raises(DataError, match="--download"):
        load_dataset("mnist", data_dir=tmp_path / "root")
    ds = load_dataset("mnist", data_dir=tmp_path / "root", download=True)
    assert ds.x_train.shape == (12, 1, 28, 28)
    assert sorted(p.name for p in (tmp_path / "root" / "mnist").iterdir()) == sorted(files)


def test_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    files = {f"{k}.gz": gzip.compress(_idx(v)) for k, v in _mnist_arrays().items()}
    bad = {"train-images-idx3-ubyte.gz": "0" * 32}
    _serve(monkeypatch, "mnist", files, tmp_path / "server", md5s=bad)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("mnist", data_dir=tmp_path / "root", download=True)
    assert list((tmp_path / "root" / "mnist").iterdir()) == []


def test_download_cifar_archive(tmp_path, monkeypatch):
    write_cifar(tmp_path / "batches")
    members = {
        f"cifar-10-batches-py/{f}": (tmp_path / "batches" / f).read_bytes()
        for f in formats.CIFAR_FILES
    }
    _serve(
        monkeypatch, "cifar10", {"cifar-10-python.tar.gz": _tar_gz(members)}, tmp_path / "server"
    )
    ds = load_dataset("cifar10", data_dir=tmp_path / "root", download=True)
    assert ds.x_train.shape == (20, 3, 32, 32)
    assert (tmp_path / "root" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()


def test_download_refuses_unsafe_archive(tmp_path, monkeypatch):
    archive = _tar_gz({"cifar-10-batches-py/data_batch_1": b"x", "../escaped": b"x"})
    _serve(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive}, tmp_path / "server")
    with pytest.raises(DataError, match=r"unsafe member '\.\./escaped'"):
        load_dataset("cifar10", data_dir=tmp_path / "root", download=True)
    assert not (tmp_path / "root" / "escaped").exists()
    assert not (tmp_path / "root" / "cifar10" / "cifar-10-batches-py").exists()


def test_remote_table_is_complete():
    assert len(formats.REMOTE["mnist"]) == len(formats.REMOTE["fashion-mnist"]) == 4
    for table in formats.REMOTE.values():
        for url, md5 in table.items():
            assert url.startswith(("http://", "https://")) and len(md5) == 32


@pytest.mark.parametrize("which", ["train", "t10k"])
@pytest.mark.parametrize("fault", ["label 10", "label -1", "float labels", "one label short"])
def test_idx_labels_outside_0_to_9_or_not_one_per_image_are_refused(tmp_path, which, fault):
    """Named by the labels file at fault, training or test."""
    arrays = _write_mnist(tmp_path / "mnist", compress=False)
    name = f"{which}-labels-idx1-ubyte"
    labels = arrays[name]
    if fault == "label 10":
        bad, code = np.where(np.arange(len(labels)) == 0, 10, labels).astype(np.uint8), 0x08
    elif fault == "label -1":
        bad, code = np.where(np.arange(len(labels)) == 0, -1, labels).astype(np.int8), 0x09
    elif fault == "float labels":
        bad, code = labels.astype(np.float32), 0x0D
    else:
        bad, code = labels[:-1], 0x08
    (tmp_path / "mnist" / name).write_bytes(_idx(bad, code=code))
    with pytest.raises(DataError, match=rf"{name}: \d+ images but \d+ labels in 0\.\.9"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_and_cifar_datasets_say_what_they_are(tmp_path):
    """Ten classes, pixels in [0, 1] (uint8 / 255), and where they came from."""
    _write_mnist(tmp_path / "mnist", compress=False)
    mnist = load_dataset("mnist", data_dir=tmp_path, standardize=False)
    assert mnist.num_classes == 10 and mnist.task == "classification"
    assert float(mnist.x_train.max()) == 1.0 and float(mnist.x_train.min()) == 0.0
    assert mnist.meta["source"] == "mnist IDX files"
    assert mnist.meta["path"] == str(tmp_path / "mnist") and mnist.meta["split"] == "official"
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    cifar = load_dataset("cifar10", data_dir=tmp_path, standardize=False)
    assert cifar.num_classes == 10 and float(cifar.x_train.max()) == 1.0
    assert cifar.meta["source"].startswith("CIFAR-10 python version")
