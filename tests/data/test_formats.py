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


@pytest.mark.parametrize("name", ["/abs/data_batch_1", "\\windows\\data_batch_1"])
def test_extracting_refuses_absolute_member_names(tmp_path, name):
    """Absolute names (POSIX or Windows) are refused by the archive check itself, before
    Python's own extraction filter (where there is one) would see them."""
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz({"cifar-10-batches-py/data_batch_1": b"x", name: b"x"}))
    with pytest.raises(DataError, match="unsafe member"):
        formats._extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as Python 2 wrote CIFAR-10: the dict's keys are Python 2 ``str`` (pickle
    opcode ``U``), which Python 3 reads as bytes only with ``encoding="bytes"``."""
    array = pickle.dumps(data, protocol=2)[2:-1]  # without PROTO and STOP
    body = b"".join(b"K" + bytes([v]) for v in labels)
    return b"\x80\x02}(U\x04data" + array + b"U\x06labels](" + body + b"eu."


def test_cifar_batches_written_by_python2_are_read(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches = write_cifar(folder)
    data = batches["data_batch_2"][b"data"]
    labels = batches["data_batch_2"][b"labels"]
    (folder / "data_batch_2").write_bytes(_py2_cifar_pickle(data, labels))
    images, got = formats.read_cifar_batch(folder / "data_batch_2")
    assert got.tolist() == labels and np.array_equal(images.reshape(len(data), -1), data)


@pytest.mark.parametrize(
    "batch, says",
    [
        ([1, 2], "is not a CIFAR-10 batch: no uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, r"2 images but 0 labels in 0\.\.9"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "no uint8"),
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, "no uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels in 0"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, -1]}, "labels in 0"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0.0, 1.0]}, "labels in 0"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 images but 1 labels"),
    ],
    ids=[
        "a list",
        "no labels",
        "float data",
        "row size",
        "label 10",
        "label -1",
        "float labels",
        "one label short",
    ],
)
def test_a_cifar_batch_that_is_not_one_is_refused_by_name(tmp_path, batch, says):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=says):
        formats.read_cifar_batch(path)


@pytest.mark.parametrize(
    "raw",
    [b"\x00\x00\x08", b"\x00\x00\x08\x01\x00\x00\x00", b"\x01\x00\x08\x01\x00\x00\x00\x00",
     b"\x00\x00\x0a\x01\x00\x00\x00\x00", b"\x00\x00\x08\x02\x00\x00\x00\x00"],
    ids=["no header", "short dims", "first byte", "unknown type", "two dims"],
)  # fmt: skip
def test_an_idx_header_that_is_not_one_is_refused(tmp_path, raw):
    """A one-dimensional IDX file needs 00 00, a known type, ndim 1 and one 4-byte size."""
    (tmp_path / "x").write_bytes(raw)
    with pytest.raises(DataError, match="bad IDX magic"):
        formats.read_idx(tmp_path / "x", 1)
    (tmp_path / "ok").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")  # an empty vector
    assert formats.read_idx(tmp_path / "ok", 1).shape == (0,)


def test_labels_come_as_int64_and_float_idx_images_unscaled(tmp_path):
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    assert (
        formats.read_cifar_batch(tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1")[
            1
        ].dtype
        == np.int64
    )
    arrays = _write_mnist(tmp_path / "mnist", compress=False)
    images = arrays["train-images-idx3-ubyte"].astype(np.float32) / 7
    (tmp_path / "mnist" / "train-images-idx3-ubyte").write_bytes(_idx(images, code=0x0D))
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte").write_bytes(
        _idx(arrays["t10k-images-idx3-ubyte"].astype(np.float32), code=0x0D)
    )
    ds = load_dataset("mnist", data_dir=tmp_path, standardize=False)
    assert ds.meta["scale"] == 1.0
    torch.testing.assert_close(ds.x_train[:, 0], torch.from_numpy(images))


@pytest.mark.parametrize(
    "name, where",
    [("cifar10", "cifar10"), ("cifar10", "cifar-10-batches-py"), ("cifar10", "."),
     ("mnist", "MNIST/raw"), ("mnist", "."), ("fashion-mnist", "FashionMNIST/raw"),
     ("fashion-mnist", "fashion-mnist")],
)  # fmt: skip
def test_files_are_found_in_every_layout_people_keep_them_in(tmp_path, name, where):
    """The folders of the original archives and of torchvision, or the root itself."""
    folder = tmp_path / where
    if name == "cifar10":
        write_cifar(folder)
    else:
        _write_mnist(folder, compress=True)
    assert formats.locate(name, tmp_path, download=False) == folder


def test_missing_files_name_what_to_put_where(tmp_path):
    with pytest.raises(DataError, match=r"mnist files not found .* \(each may end in \.gz\) in "):
        formats.locate("mnist", tmp_path, download=False)
    with pytest.raises(
        DataError, match=r"data_batch_1, .*test_batch in .*cifar10/cifar-10-batches-py/"
    ):
        formats.locate("cifar10", tmp_path, download=False)
    with pytest.raises(DataError) as cifar:
        formats.locate("cifar10", tmp_path, download=False)
    assert ".gz" not in str(cifar.value)


def test_the_default_data_root_is_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(formats.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert formats._data_root(None) == tmp_path / "xdg" / "landscape"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert formats._data_root(None) == tmp_path / "home" / ".cache" / "landscape"
    monkeypatch.setenv(formats.DATA_DIR_ENV, str(tmp_path / "mine"))
    assert formats._data_root(None) == tmp_path / "mine"


def test_the_restricted_unpicklers_encode_takes_latin1_text_only():
    """Python 3 pickles bytes at protocol 2 as ``_codecs.encode(text, "latin1")``: only
    that call passes."""
    assert formats._latin1_encode("ab\xff") == b"ab\xff"
    assert formats._latin1_encode("ab", "latin-1") == b"ab"
    for args in [(b"ab",), ("ab", "utf-8"), ("ab", "rot13")]:
        with pytest.raises(DataError, match="something other than bytes"):
            formats._latin1_encode(*args)


def test_download_fashion_mnist(tmp_path, monkeypatch):
    files = {f"{k}.gz": gzip.compress(_idx(v)) for k, v in _mnist_arrays().items()}
    _serve(monkeypatch, "fashion-mnist", files, tmp_path / "server")
    ds = load_dataset("fashion-mnist", data_dir=tmp_path / "root", download=True)
    assert ds.x_train.shape == (12, 1, 28, 28)
    assert ds.meta["path"] == str(tmp_path / "root" / "fashion-mnist")
    write_cifar(tmp_path / "c" / "cifar10")
    cifar = load_dataset("cifar10", data_dir=tmp_path / "c", standardize=False)
    assert cifar.meta["path"] == str(tmp_path / "c" / "cifar10")


def test_a_three_dimensional_idx_header_cut_short_is_refused(tmp_path):
    """Images (ndim 3) need 12 bytes of sizes after the magic: 8 are not enough."""
    (tmp_path / "x").write_bytes(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x01" * 2)
    with pytest.raises(DataError, match="bad IDX magic"):
        formats.read_idx(tmp_path / "x", 3)
