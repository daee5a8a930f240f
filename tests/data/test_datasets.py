"""Datasets by name: bundled digits, synthetic tasks, CIFAR-10 and IDX sets from files."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
import torch

from landscape.data import (
    DATASETS,
    DataError,
    formats,
    load_dataset,
)
from landscape.data import datasets as data
from tests.data.helpers import write_cifar

#: sha256 prefixes of what ``test_the_bundled_data_do_not_change_between_versions`` reads.
DATA_DIGESTS = {"digits": "08c5757fb173b53e", "synthetic": "c524712bcaa9dc6b"}


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
    for noise in (float("nan"), -1.0, float("inf"), "loud"):
        with pytest.raises(DataError, match="noise must be a finite number >= 0"):
            load_dataset("synthetic", noise=noise)
    assert {"digits", "synthetic", "cifar10", "mnist", "fashion-mnist"} <= set(DATASETS)


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


def test_cifar_reader_layout_and_split(tmp_path):
    batches = write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py")
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
    write_cifar(tmp_path)
    path = tmp_path / "data_batch_2"
    legacy = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    path.write_bytes(legacy)  # what numpy < 2 (and the real batches) write
    monkeypatch.setenv(formats.DATA_DIR_ENV, str(tmp_path))
    assert load_dataset("cifar10").x_train.shape == (20, 3, 32, 32)


def test_cifar_wrong_content_and_missing_files(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": [1, 2]}, protocol=2))
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        load_dataset("cifar10", data_dir=tmp_path)
    (folder / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a CIFAR-10 batch"):
        load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"data_batch_1.*test_batch.*cifar-10-batches-py.*download"):
        load_dataset("cifar10", data_dir=tmp_path / "empty")


def test_idx_missing_directory_names_the_files(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    message = str(err.value)
    for name in formats.IDX_FILES:
        assert name in message
    assert str(tmp_path / "nowhere" / "fashion-mnist") in message and "--download" in message


class _Planted:
    """Unpickling this would run code (it writes a marker file): what a hostile archive does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_digits_archive_holding_a_pickle_is_refused_without_unpickling(tmp_path):
    """The bundled-data loader reads arrays only (``allow_pickle=False``): an archive whose
    ``images`` is an object array is refused and the object is never built."""
    marker = tmp_path / "unpickled"
    images = np.empty(1, dtype=object)
    images[0] = _Planted(str(marker))
    np.savez(tmp_path / "digits.npz", images=images, targets=np.arange(1))
    with pytest.raises((DataError, ValueError)):
        load_dataset("digits", data_dir=tmp_path)
    assert not marker.exists()


def test_digits_in_a_data_dir_directly_or_in_its_digits_folder(tmp_path):
    """``data_dir/digits.npz`` first, else ``data_dir/digits/digits.npz``; an archive that is
    not one (images of another shape, or more images than labels) is refused by name."""
    images = np.tile(np.arange(10, dtype=np.uint8).reshape(10, 1, 1), (2, 8, 8))
    (tmp_path / "digits").mkdir()
    np.savez(tmp_path / "digits" / "digits.npz", images=images, targets=np.tile(np.arange(10), 2))
    nested = load_dataset("digits", data_dir=tmp_path)
    assert len(nested.x_train) + len(nested.x_test) == 20
    assert nested.meta["path"] == str(tmp_path / "digits" / "digits.npz")
    np.savez(tmp_path / "digits.npz", images=images[:10], targets=np.arange(10))
    assert load_dataset("digits", data_dir=tmp_path).meta["path"] == str(tmp_path / "digits.npz")
    for bad in (dict(images=images[:, :7], targets=np.tile(np.arange(10), 2)),
                dict(images=images, targets=np.arange(10))):  # fmt: skip
        np.savez(tmp_path / "digits.npz", **bad)
        with pytest.raises(DataError, match="is not a digits archive"):
            load_dataset("digits", data_dir=tmp_path)


def test_a_loaded_dataset_records_what_it_is_and_scales_both_splits():
    """Provenance of a dataset (name, seed, options, scale, subsets, sizes, standardisation)
    and pixel values in [0, 1] before standardisation in both splits."""
    ds = load_dataset("digits", standardize=False, subset=30, test_subset=20)
    meta = ds.meta
    assert (meta["name"], meta["seed"], meta["scale"]) == ("digits", 0, 1 / 16)
    assert (meta["subset"], meta["test_subset"], meta["n_train"], meta["n_test"]) == (
        30,
        20,
        30,
        20,
    )
    assert load_dataset("digits", test_fraction=0.0).meta["n_test"] == 0  # all for training
    assert meta["options"] == {} and meta["standardized"] is False
    assert meta["mean"] is None and meta["std"] is None
    assert meta["source"].startswith("UCI optical recognition")
    full = load_dataset("digits", standardize=False)
    for x in (full.x_train, full.x_test):
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert load_dataset("digits").meta["standardized"] is True


def test_subsets_of_one_and_of_all_examples_are_allowed_and_booleans_refused():
    n = len(load_dataset("digits").x_train)
    assert len(load_dataset("digits", subset=1).x_train) == 1
    assert len(load_dataset("digits", subset=n).x_train) == n
    for bad in (0, True, 2.0):
        with pytest.raises(DataError, match="subset must be an integer"):
            load_dataset("digits", subset=bad)


def test_standardisation_is_per_channel_and_leaves_a_constant_channel_finite(tmp_path):
    """Each channel of the training split to mean 0 and standard deviation 1 with its own
    statistics; a constant channel (std 0) is centred, not divided by 0; one example
    (no standard deviation) is left as it is, two are standardised."""
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py", n=6)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    torch.testing.assert_close(
        ds.x_train.double().std(dim=(0, 2, 3)),
        torch.ones(3, dtype=torch.float64),
        atol=1e-5,
        rtol=0,
    )
    flat = tmp_path / "flat"
    flat.mkdir()
    np.savez(flat / "digits.npz", images=np.full((20, 8, 8), 7, dtype=np.uint8),
             targets=np.tile(np.arange(10), 2))  # fmt: skip
    constant = load_dataset("digits", data_dir=flat)
    assert constant.meta["std"] == [1.0] and bool((constant.x_train == 0).all())
    assert load_dataset("digits", subset=1).meta["standardized"] is False
    assert load_dataset("digits", subset=2).meta["standardized"] is True


def test_synthetic_points_follow_their_law_and_the_smallest_options_are_allowed():
    """Gaussian mixture: x = means[y] + noise * z with z standard normal, drawn per point
    (the means as recorded); noise 0 gives the means themselves; one point, one dimension
    and one class are allowed, as is any noise in [0, inf)."""
    ds = load_dataset(
        "synthetic", n=4000, dim=3, num_classes=2, standardize=False, test_fraction=0.0
    )
    means = torch.tensor(ds.meta["means"], dtype=torch.float64)
    z = ds.x_train.double() - means[ds.y_train]
    torch.testing.assert_close(
        z.mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=0.06, rtol=0
    )
    torch.testing.assert_close(z.std(dim=0), torch.ones(3, dtype=torch.float64), atol=0.06, rtol=0)
    exact = load_dataset("synthetic", n=50, noise=0, standardize=False)
    torch.testing.assert_close(
        exact.x_train.double(),
        torch.tensor(exact.meta["means"], dtype=torch.float64)[exact.y_train],
        atol=1e-6,
        rtol=0,
    )
    tiny = load_dataset("synthetic", n=1, dim=1, num_classes=1, noise=0.5, standardize=False)
    assert tiny.x_train.shape == (1, 1) and tiny.meta["dim"] == 1
    assert tiny.meta["source"] == "synthetic" and tiny.meta["kind"] == "gaussian-mixture"


def test_the_bundled_data_do_not_change_between_versions():
    """The digits split and the synthetic labels of seed 0, as digests: every figure and
    README number rests on them. A change here (a salt, the split's rule, or torch's
    generators after an upgrade) changes every run: say so in the CHANGELOG."""
    digits = load_dataset("digits", standardize=False)
    synthetic = load_dataset("synthetic", standardize=False)

    def digest(*ts: torch.Tensor) -> str:
        return hashlib.sha256(b"".join(t.contiguous().numpy().tobytes() for t in ts)).hexdigest()[
            :16
        ]

    got = {
        "digits": digest(digits.y_train, digits.y_test, digits.x_train[:50]),
        "synthetic": digest(synthetic.y_train, synthetic.y_test),  # (its x: randn, whose
        # vectorised paths may round differently between CPUs)
    }
    assert got == DATA_DIGESTS, got


def a_small_dataset(n: int = 4):
    """A factory of a Dataset (import path ``tests.data.test_datasets:a_small_dataset``)."""
    from landscape.data import Dataset

    x, y = torch.zeros(n, 2), torch.arange(n) % 2
    return Dataset("mine", "classification", x, y, x[:1], y[:1], (2,), 2, {"made": "here"})


def not_a_dataset():
    return [1, 2, 3]


def test_a_dataset_of_your_own_by_import_path():
    """``load_dataset("package.module:factory", **options)`` is the factory's Dataset, its
    options passed on; a factory that fails or returns something else is one DataError."""
    mine = load_dataset("tests.data.test_datasets:a_small_dataset", n=6)
    assert mine.name == "mine" and len(mine.x_train) == 6 and mine.meta == {"made": "here"}
    with pytest.raises(
        DataError, match=r"data factory 'tests.data.test_datasets:not_a_dataset' returns a list"
    ):
        load_dataset("tests.data.test_datasets:not_a_dataset")
    with pytest.raises(
        DataError, match=r"data factory 'tests.data.test_datasets:a_small_dataset' fails"
    ):
        load_dataset("tests.data.test_datasets:a_small_dataset", colour=True)
    with pytest.raises(DataError, match=r"data factory 'tests\.data\.nowhere:f' fails"):
        load_dataset("tests.data.nowhere:f")


def test_synthetic_data_do_not_depend_on_the_global_generator_and_record_small_laws():
    """The points come from their own seeded generators; ``A`` or the means go into the
    metadata up to 1024 numbers (``dim`` 32: 1024), not beyond."""
    torch.manual_seed(1)
    a = load_dataset("synthetic", kind="linear-regression", dim=32, n=20)
    torch.manual_seed(2)
    b = load_dataset("synthetic", kind="linear-regression", dim=32, n=20)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert len(a.meta["A"]) == 32
    assert load_dataset("synthetic", kind="linear-regression", dim=33, n=5).meta["A"] is None
    assert len(load_dataset("synthetic", dim=256, num_classes=4, n=5).meta["means"]) == 4
    assert load_dataset("synthetic", dim=257, num_classes=4, n=5).meta["means"] is None
    assert load_dataset("digits").meta["split"] == "stratified"


def test_the_messages_name_the_option_and_the_factory():
    with pytest.raises(DataError, match="test_subset must be an integer"):
        load_dataset("digits", test_subset=0)
    with pytest.raises(DataError, match=r"cannot import data factory 'tests\.data\.nowhere:f'"):
        load_dataset("tests.data.nowhere:f")
