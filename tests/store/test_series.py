"""Append-only series: round trips, dtypes, column rules, truncation on resume."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from landscape.store import (
    SeriesLog,
    append_rows,
    append_series,
    read_series,
    truncate_series,
)


def test_append_series_round_trip_values_and_dtypes(h5):
    g = h5.create_group("train/bn")
    rows = [(0, 2.5, np.float32(0.25), [1.0, 2.0]), (1, 2.25, np.float32(0.5), [3.0, np.nan])]
    for step, loss, acc, vec in rows:
        append_series(g, step=step, loss=loss, accuracy=acc, vec=np.array(vec))
    out = read_series(g)
    assert set(out) == {"step", "loss", "accuracy", "vec"}
    assert out["step"].dtype == np.int64 and out["loss"].dtype == np.float64
    assert out["accuracy"].dtype == np.float64 and out["vec"].shape == (2, 2)
    np.testing.assert_array_equal(out["step"], [0, 1])
    np.testing.assert_array_equal(out["loss"], [2.5, 2.25])
    np.testing.assert_array_equal(out["accuracy"], [0.25, 0.5])
    np.testing.assert_array_equal(out["vec"], [[1.0, 2.0], [3.0, np.nan]])
    assert g["vec"].maxshape == (None, 2)


def test_append_rows_matches_append_series(h5):
    rng = np.random.default_rng(0)
    step = np.arange(7)
    loss = rng.standard_normal((7, 3, 2))
    a, b = h5.create_group("a"), h5.create_group("b")
    append_rows(a, step=step[:4], loss=loss[:4])
    append_rows(a, step=step[4:], loss=loss[4:])
    append_rows(a, step=step[:0], loss=loss[:0])  # zero rows: no-op
    for s, row in zip(step, loss):
        append_series(b, step=s, loss=row)
    for g in (a, b):
        out = read_series(g)
        np.testing.assert_array_equal(out["step"], step)
        np.testing.assert_array_equal(out["loss"], loss)


def test_append_accepts_tensors(h5):
    g = h5.create_group("g")
    append_series(g, step=torch.tensor(3), loss=torch.tensor(0.5, requires_grad=True))
    append_rows(g, step=torch.tensor([4]), loss=torch.tensor([0.25]))
    np.testing.assert_array_equal(read_series(g)["loss"], [0.5, 0.25])


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        ({"step": 1}, r"missing \['loss'\]"),
        ({"step": 1, "loss": 1.0, "lr": 0.1}, r"adds \['lr'\]"),
        ({"step": 1, "loss": np.zeros(2)}, "row shape"),
        ({"step": 1.5, "loss": 1.0}, "got floats"),
        ({"step": 1, "loss": "high"}, "numbers only"),
    ],
)
def test_mismatched_columns_raise_and_write_nothing(h5, columns, match):
    g = h5.create_group("g")
    append_series(g, step=0, loss=1.0)
    with pytest.raises(ValueError, match=match):
        append_series(g, **columns)
    assert {k: len(v) for k, v in read_series(g).items()} == {"step": 1, "loss": 1}


def test_append_rows_unequal_counts_and_scalars(h5):
    g = h5.create_group("g")
    with pytest.raises(ValueError, match="unequal row counts"):
        append_rows(g, step=np.arange(3), loss=np.zeros(2))
    with pytest.raises(ValueError, match="no row axis"):
        append_rows(g, step=1)
    assert len(g) == 0


def test_truncate_series_prefix_and_general(h5):
    g = h5.create_group("g")
    append_rows(g, step=np.arange(10), loss=np.arange(10.0), vec=np.ones((10, 3)))
    truncate_series(g, "step", 6)
    out = read_series(g)
    np.testing.assert_array_equal(out["step"], np.arange(7))
    assert out["vec"].shape == (7, 3)
    truncate_series(g, "step", 100)  # nothing to drop
    assert len(read_series(g)["step"]) == 7
    append_rows(g, step=np.array([2, 9, 1]), loss=np.zeros(3), vec=np.zeros((3, 3)))
    truncate_series(g, "step", 2)
    np.testing.assert_array_equal(read_series(g)["step"], [0, 1, 2, 2, 1])
    truncate_series(g, "step", -1)
    assert all(len(v) == 0 for v in read_series(g).values())
    append_series(g, step=0, loss=1.0, vec=np.zeros(3))  # still appendable
    out = read_series(g)
    assert len(out["step"]) == 1 and out["vec"].shape == (1, 3)


def test_truncate_series_errors_and_empty_group(h5):
    empty = h5.create_group("empty")
    truncate_series(empty, "step", 3)
    assert len(empty) == 0
    g = h5.create_group("g")
    append_series(g, step=0, vec=np.zeros(2))
    with pytest.raises(ValueError, match="no column 'epoch'"):
        truncate_series(g, "epoch", 3)
    with pytest.raises(ValueError, match="not 1-D"):
        truncate_series(g, "vec", 3)


def test_read_series_detects_inconsistent_lengths(h5):
    g = h5.create_group("g")
    append_rows(g, step=np.arange(3), loss=np.zeros(3))
    g["loss"].resize(2, axis=0)
    with pytest.raises(ValueError, match="unequal lengths"):
        read_series(g)


def test_a_series_log_never_makes_its_file_again_without_its_header(tmp_path):
    """The first commit makes the file with its header; once the file is removed under the
    log, a commit is refused (before: a new file of bare rows, no kind or provenance)."""
    path = tmp_path / "log.h5"
    log = SeriesLog(path, header=lambda f: f.attrs.update(landscape_kind="probe log"))
    log.add("probe/model", step=0, loss=1.0)
    log.commit()
    assert h5py.File(path, "r").attrs["landscape_kind"] == "probe log"
    path.unlink()
    log.add("probe/model", step=1, loss=0.5)
    with pytest.raises(ValueError, match=r"log\.h5 is gone"):
        log.commit()
    assert not path.exists()
    headless = SeriesLog(tmp_path / "run.h5")  # the trainer's: its file is made before it
    headless.add("train/bn", step=0, loss=1.0)
    with pytest.raises(ValueError, match=r"run\.h5 is gone"):
        headless.commit()


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("text column", r"/train/bn/loss holds text, not numbers: the file is damaged"),
        ("missing column", r"/train/bn has no column lr: the file is damaged"),
        ("2-D step", r"/train/bn/step has shape \(3, 2\), not one step per row"),
        ("steps back", r"/train/bn/step goes from 2 to 1 at row 2, where steps only increase"),
    ],
)
def test_read_series_checks_what_a_series_holds(h5, damage, match):
    """The checked reader of every series. Before: a text column was read as it was (a resume
    exited 0, then the figure failed) and a resume cut a log whose steps ran back."""
    g = h5.create_group("train/bn")
    steps = [0, 2, 1] if damage == "steps back" else [0, 1, 2]
    append_rows(g, step=np.array(steps), loss=np.zeros(3))
    if damage == "text column":
        del g["loss"]
        g.create_dataset("loss", data=np.array([b"x"] * 3), maxshape=(None,))
    elif damage == "2-D step":
        del g["step"]
        g.create_dataset("step", data=np.zeros((3, 2)), maxshape=(None, 2))
    needs = ("step", "loss", "lr") if damage == "missing column" else ("step", "loss")
    with pytest.raises(ValueError, match=match):
        read_series(g, steps="increasing", columns=needs)
    if damage == "steps back":
        read_series(g)  # any order: as written by a caller's own loop


def test_read_series_unique_steps_and_text_columns(h5):
    g = h5.create_group("offline_checkpoints/bn")
    g.create_dataset("step", data=[0, 50, 0], maxshape=(None,))
    g.create_dataset("sha", data=["a", "b", "c"], dtype=h5py.string_dtype(), maxshape=(None,))
    with pytest.raises(ValueError, match="holds step 0 twice: the file is damaged"):
        read_series(g, steps="unique", text=("sha",))
    g["step"][2] = 100
    assert read_series(g, steps="unique", text=("sha",))["sha"].tolist() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="sha holds text, not numbers"):
        read_series(g)
    with pytest.raises(ValueError, match="step holds int64, not text"):
        read_series(g, text=("step", "sha"))


def test_a_series_with_unequal_columns_is_refused_by_append_and_truncate(h5):
    """A damaged series (one column cut short) is named, not extended or cut further."""
    g = h5.create_group("train/bn")
    append_rows(g, step=np.arange(3), loss=np.zeros(3))
    g["loss"].resize(2, axis=0)
    with pytest.raises(ValueError, match=r"columns of /train/bn have unequal lengths"):
        append_series(g, step=3, loss=0.0)
    with pytest.raises(ValueError, match=r"columns of /train/bn have unequal lengths"):
        truncate_series(g, "step", 1)
    assert (g["step"].shape, g["loss"].shape) == ((3,), (2,))


def test_a_column_that_is_not_numbers_is_named(h5):
    g = h5.create_group("g")
    with pytest.raises(ValueError, match=r"column 'note' has dtype <U5; series hold numbers"):
        append_series(g, step=0, note="hello")
    assert len(g) == 0


def test_integer_columns_keep_every_integer_exactly(h5):
    """Rows added to an int64 column stay integers: 2**53 + 1 has no float64 twin."""
    g = h5.create_group("g")
    append_series(g, step=0, flag=True)
    append_rows(g, step=np.array([2**53 + 1, 2**62 + 3]), flag=np.array([False, True]))
    out = read_series(g)
    assert out["step"].dtype == np.int64 and out["flag"].dtype == np.int64
    assert out["step"].tolist() == [0, 2**53 + 1, 2**62 + 3]
    assert out["flag"].tolist() == [1, 0, 1]


@pytest.mark.parametrize("row_shape", [(), (3,), (1000,), (10_000,)])
def test_columns_are_chunked_in_blocks_of_at_most_64_kib(h5, row_shape):
    """Chunks of 10-64 KiB (HDF5 favours 10 KiB - 1 MiB), at most 4096 rows; a row wider
    than 64 KiB is a chunk of its own. A series of scalars grows 4096 rows at a time."""
    g = h5.create_group("g")
    append_rows(g, step=np.arange(2), x=np.ones((2, *row_shape)))
    np.testing.assert_array_equal(read_series(g)["x"], np.ones((2, *row_shape)))
    assert g["step"].chunks == (4096,)
    rows, *rest = g["x"].chunks
    assert tuple(rest) == row_shape
    row_bytes = 8 * int(np.prod(row_shape))
    if row_bytes > 1 << 16:
        assert rows == 1
    else:
        assert rows <= 4096 and rows * row_bytes <= 1 << 16
        assert rows == 4096 or rows * row_bytes >= 10 << 10


def test_a_first_append_of_zero_rows_makes_empty_columns(h5):
    g = h5.create_group("g")
    append_rows(g, step=np.zeros(0, dtype=np.int64), vec=np.zeros((0, 2)))
    out = read_series(g)
    assert out["step"].shape == (0,) and out["vec"].shape == (0, 2)
    append_series(g, step=4, vec=np.ones(2))
    np.testing.assert_array_equal(read_series(g)["step"], [4])


def test_a_missing_column_says_what_is_there_instead(h5):
    g = h5.create_group("train/bn")
    append_rows(g, step=np.arange(3), loss=np.zeros(3))
    g["lr"] = np.zeros(3)  # fixed-size: not a series column
    g.create_group("grad")
    with pytest.raises(ValueError, match=r"has no column lr \(there: \{'lr': 'dataset'\}\)"):
        read_series(g, columns=("lr",))
    with pytest.raises(ValueError, match=r"has no column grad, x \(there: \{'grad': 'group'\}\)"):
        read_series(g, columns=("grad", "x"))
    with pytest.raises(ValueError, match=r"has no column x: the file is damaged"):
        read_series(g, columns=("x",))


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([5, 3], "goes from 5 to 3 at row 1"),
        ([0, 1, 1], "goes from 1 to 1 at row 2"),
        ([0, 4, 9, 2], "goes from 9 to 2 at row 3"),
    ],
)
def test_increasing_steps_only_increase(h5, steps, match):
    g = h5.create_group("g")
    append_rows(g, step=np.array(steps), loss=np.zeros(len(steps)))
    with pytest.raises(ValueError, match=match):
        read_series(g, steps="increasing")
    np.testing.assert_array_equal(read_series(g)["step"], steps)


@pytest.mark.parametrize("steps", [[], [7], [0, 1], [0, 1, 2, 10, 11]])
def test_increasing_steps_read_whatever_their_spacing(h5, steps):
    g = h5.create_group("g")
    append_rows(g, step=np.array(steps, dtype=np.int64), loss=np.zeros(len(steps)))
    np.testing.assert_array_equal(read_series(g, steps="increasing")["step"], steps)
    np.testing.assert_array_equal(read_series(g, steps="unique")["step"], steps)


def test_unique_steps_name_the_step_written_twice(h5):
    g = h5.create_group("g")
    append_rows(g, step=np.array([0, 50, 100, 50]), loss=np.zeros(4))
    with pytest.raises(ValueError, match="holds step 50 twice: the file is damaged"):
        read_series(g, steps="unique")


def test_a_series_log_writes_its_header_once_and_a_headless_log_adds_rows(tmp_path):
    path = tmp_path / "log.h5"
    calls = []

    def header(f):
        calls.append(1)
        f.attrs["landscape_kind"] = "probe log"

    log = SeriesLog(path, header=header)
    for step in range(3):
        log.add("probe/model", step=step, loss=1.0 / (step + 1))
        log.commit()
    assert calls == [1]
    bare = tmp_path / "bare.h5"
    h5py.File(bare, "w").close()  # made before the log, with no attributes
    headless = SeriesLog(bare)
    headless.add("train/bn", step=0, loss=1.0)
    headless.commit()
    with h5py.File(bare, "r") as f:
        assert dict(f.attrs) == {} and read_series(f["train/bn"])["loss"].tolist() == [1.0]
    with h5py.File(path, "r") as f:
        assert read_series(f["probe/model"])["step"].tolist() == [0, 1, 2]
