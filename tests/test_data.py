"""Tests for landscape.data: bundled digits, synthetic tasks, batch order, file readers."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch

from landscape import data, formats
from landscape.data import (
    DATASETS,
    DataError,
    accuracy,
    batch_indices,
    eval_batches,
    load_dataset,
    steps_per_epoch,
)

# ----------------------------------------------------------------------------- digits


def test_digits_shapes_labels_and_standardisation():
    ds = load_dataset("digits")
    assert ds.task == "classification" and ds.input_shape == (1, 8, 8) and ds.num_classes == 10
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert 350 <= len(ds.x_test) <= 370
    assert ds.x_test.shape[1:] == (1, 8, 8)
    for y in (ds.y_train, ds.y_test):
        assert set(y.tolist()) == set(range(10))
    assert abs(ds.x_train.mean().item()) < 1e-5
    assert ds.x_train.std().item() == pytest.approx(1.0, abs=1e-4)
    assert ds.meta["standardized"] and ds.meta["n_test"] == len(ds.x_test)
    assert json.loads(json.dumps(ds.meta)) == ds.meta  # JSON-safe provenance
    assert (
        ds.meta["sha256"]["digits.npz"] == hashlib.sha256(data.DIGITS_FILE.read_bytes()).hexdigest()
    )


def test_digits_split_is_stratified():
    ds = load_dataset("digits", standardize=False)
    counts = torch.bincount(torch.cat([ds.y_train, ds.y_test]), minlength=10)
    expected = torch.tensor([round(0.2 * int(c)) for c in counts])
    assert torch.equal(torch.bincount(ds.y_test, minlength=10), expected)
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1  # pixel counts / 16


def test_digits_test_split_uses_training_statistics():
    raw = load_dataset("digits", seed=3, standardize=False)
    ds = load_dataset("digits", seed=3)
    mean, std = ds.meta["mean"][0], ds.meta["std"][0]
    assert mean == pytest.approx(raw.x_train.double().mean().item())
    assert std == pytest.approx(raw.x_train.double().std().item())
    torch.testing.assert_close(ds.x_test, (raw.x_test - mean) / std)
    assert abs(ds.x_test.mean().item()) > 1e-4  # not re-standardised with its own mean


def test_digits_split_depends_on_seed_only():
    a, b, c = (load_dataset("digits", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)
    assert a.meta["split_seed"] == 0 and c.meta["split_seed"] == 1


def test_digits_subset_and_test_fraction():
    ds = load_dataset("digits", subset=100, test_subset=50, test_fraction=0.5)
    assert ds.x_train.shape == (100, 1, 8, 8) and ds.x_test.shape == (50, 1, 8, 8)
    assert ds.meta["n_train"] == 100 and ds.meta["test_fraction"] == 0.5
    with pytest.raises(DataError, match="subset must be an integer"):
        load_dataset("digits", subset=10**6)
    with pytest.raises(DataError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.0)


def test_digits_file_override(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DIGITS_ENV, str(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match=r"digits file not found.*LANDSCAPE_DIGITS"):
        load_dataset("digits")
    images = np.tile(np.arange(10, dtype=np.uint8).reshape(10, 1, 1), (3, 8, 8))
    np.savez(tmp_path / "digits.npz", images=images, targets=np.tile(np.arange(10), 3))
    ds = load_dataset("digits", data_dir=tmp_path)
    assert len(ds.x_train) + len(ds.x_test) == 30


def test_unknown_dataset_and_option():
    with pytest.raises(DataError, match=r"unknown dataset 'imagenet'.*digits"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match=r"unknown option\(s\) \['colour'\].*subset"):
        load_dataset("digits", colour=True)
    with pytest.raises(DataError, match="unknown synthetic kind"):
        load_dataset("synthetic", kind="spirals")
    assert {"digits", "synthetic", "cifar10", "mnist", "fashion-mnist"} <= set(DATASETS)


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_gaussian_mixture():
    ds = load_dataset("synthetic", n=200, dim=5, num_classes=3, seed=1)
    assert ds.task == "classification" and ds.input_shape == (5,) and ds.num_classes == 3
    assert ds.x_train.shape == (200, 5) and ds.x_test.shape == (50, 5)
    assert set(ds.y_train.tolist()) == {0, 1, 2}
    again = load_dataset("synthetic", n=200, dim=5, num_classes=3, seed=1)
    assert torch.equal(ds.x_train, again.x_train)
    other = load_dataset("synthetic", n=200, dim=5, num_classes=3, seed=2)
    assert not torch.equal(ds.x_train, other.x_train)
    with pytest.raises(DataError, match="positive integer"):
        load_dataset("synthetic", n=0)


def test_synthetic_linear_regression_is_y_equals_a_x():
    ds = load_dataset("synthetic", kind="linear-regression", seed=4)
    assert ds.task == "regression" and ds.num_classes == 10 and ds.input_shape == (10,)
    assert ds.x_train.shape == (1000, 10) and ds.y_train.shape == (1000, 10)
    assert ds.y_train.dtype == torch.float32 and not ds.meta["standardized"]
    a = torch.tensor(ds.meta["A"], dtype=torch.float64)
    rebuilt = torch.randn(10, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert ds.meta["a_seed"] == 4 and torch.equal(a, rebuilt)
    assert json.loads(json.dumps(ds.meta)) == ds.meta  # JSON-safe provenance
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        torch.testing.assert_close(y.double(), x.double() @ a.T, atol=1e-5, rtol=0)
    # The matrix depends on a_seed alone: new points, same task.
    other = load_dataset("synthetic", kind="linear-regression", seed=5, a_seed=4)
    assert other.meta["A"] == ds.meta["A"] and not torch.equal(other.x_train, ds.x_train)


# ----------------------------------------------------------------------------- batches


def test_batch_indices_cover_each_epoch_once():
    n, bs, seed = 103, 10, 7
    per_epoch = steps_per_epoch(n, bs)
    assert per_epoch == 10
    for epoch in range(3):
        steps = range(epoch * per_epoch, (epoch + 1) * per_epoch)
        seen = torch.cat([batch_indices(n, bs, s, seed) for s in steps])
        assert len(seen) == per_epoch * bs and len(seen.unique()) == len(seen)  # no repeats
        assert int(seen.min()) >= 0 and int(seen.max()) < n


def test_batch_indices_pure_and_seeded():
    first = [batch_indices(50, 8, s, seed=0) for s in range(20)]
    # out of order, after other calls: same answer (what a resumed run relies on)
    batch_indices(50, 8, 0, seed=1)
    for s in reversed(range(20)):
        assert torch.equal(batch_indices(50, 8, s, seed=0), first[s])
    assert first[0].dtype == torch.int64
    assert not torch.equal(first[0], first[6])  # epoch 0 vs epoch 1 (6 steps per epoch)
    assert not torch.equal(first[0], batch_indices(50, 8, 0, seed=1))


def test_batch_indices_full_batch_and_errors():
    assert torch.equal(batch_indices(12, 12, 5, seed=3), torch.arange(12))
    with pytest.raises(DataError, match="batch_size"):
        batch_indices(10, 11, 0, seed=0)
    with pytest.raises(DataError, match="step"):
        batch_indices(10, 5, -1, seed=0)


def test_eval_batches_and_accuracy():
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    batches = list(eval_batches(x, y, 4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(0.75)
    assert np.isnan(accuracy(logits[:0], torch.tensor([], dtype=torch.long)))


# ----------------------------------------------------------------------------- CIFAR-10


def _cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def _write_cifar(folder, n=4) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, name in enumerate(formats.CIFAR_FILES):
        batches[name] = _cifar_batch(n if name != "test_batch" else 3, seed=i)
        with open(folder / name, "wb") as f:
            pickle.dump(batches[name], f, protocol=2)  # as the originals
    return batches


def test_cifar_reader_layout_and_split(tmp_path):
    batches = _write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
    ds = load_dataset("cifar10", data_dir=tmp_path, standardize=False)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.input_shape == (3, 32, 32) and ds.meta["split"] == "official"
    train_labels = [v for i in range(1, 6) for v in batches[f"data_batch_{i}"][b"labels"]]
    assert ds.y_train.tolist() == train_labels
    assert ds.y_test.tolist() == batches["test_batch"][b"labels"]
    row = batches["data_batch_1"][b"data"][1]  # 1024 red, then green, then blue, row-major
    assert round(ds.x_train[1, 1, 2, 3].item() * 255) == row[1024 + 2 * 32 + 3]
    std = load_dataset("cifar10", data_dir=tmp_path, subset=8)
    assert len(std.x_train) == 8 and len(std.meta["mean"]) == 3
    assert set(std.meta["sha256"]) == set(formats.CIFAR_FILES)
    assert json.loads(json.dumps(std.meta)) == std.meta
    assert torch.allclose(std.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)


def test_cifar_files_directly_in_data_dir_and_legacy_numpy_name(tmp_path, monkeypatch):
    _write_cifar(tmp_path)
    path = tmp_path / "data_batch_2"
    legacy = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(legacy)  # what numpy < 2 (and the real batches) write
    monkeypatch.setenv(formats.DATA_DIR_ENV, str(tmp_path))
    assert load_dataset("cifar10").x_train.shape == (20, 3, 32, 32)


class _Payload:
    """Runs a shell command when unpickled by an unrestricted unpickler."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Custom:
    pass


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
    _write_cifar(folder)
    (folder / "data_batch_3").write_bytes(pickle.dumps(make(str(marker)), protocol=2))
    with pytest.raises(DataError, match="refusing to load"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()


def test_cifar_wrong_content_and_missing_files(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    _write_cifar(folder)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": [1, 2]}, protocol=2))
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        load_dataset("cifar10", data_dir=tmp_path)
    (folder / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"data_batch_1.*test_batch.*cifar-10-batches-py.*download"):
        load_dataset("cifar10", data_dir=tmp_path / "empty")


# ----------------------------------------------------------------------------- (Fashion-)MNIST


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


def test_idx_missing_directory_names_the_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    message = str(err.value)
    for name in formats.IDX_FILES:
        assert name in message
    assert str(tmp_path / "nowhere" / "fashion-mnist") in message and "--download" in message


# ----------------------------------------------------------------------------- download


def _serve(monkeypatch, name, files: dict[str, bytes], source, md5s=None):
    """Point the URL table at file:// copies of ``files`` (md5 taken from the bytes)."""
    source.mkdir(parents=True, exist_ok=True)
    table = {}
    for filename, payload in files.items():
        (source / filename).write_bytes(payload)
        md5 = (md5s or {}).get(filename, hashlib.md5(payload).hexdigest())
        table[(source / filename).as_uri()] = md5
    monkeypatch.setitem(formats.REMOTE, name, table)


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


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_download_cifar_archive(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "batches")
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
