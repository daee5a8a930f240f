"""HDF5 files and attributes: fixed arrays, the attribute encoding, opening modes and errors."""

from __future__ import annotations

import dataclasses
import errno
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape.store import (
    SCHEMA_VERSION,
    append_series,
    edit,
    open_run,
    read_attr,
    read_attrs,
    read_json_attr,
    read_series,
    write_array,
    write_attrs,
)


def test_write_array_and_attrs_are_not_series(h5):
    g = h5.create_group("probe/bn")
    write_attrs(g, {"eta_grid": {"spacing": "log", "n": 8}, "status": "running", "n": 3})
    write_array(g, "step_sizes", np.linspace(0.05, 0.4, 8), attrs={"layers": ["a", "b"]})
    write_array(g, "step_sizes", np.linspace(0.05, 0.4, 4))  # overwrite
    append_series(g, step=0, loss=np.zeros(4))
    assert set(read_series(g)) == {"step", "loss"}
    assert g["step_sizes"].shape == (4,)
    assert read_json_attr(g, "eta_grid") == {"spacing": "log", "n": 8}
    assert read_json_attr(g, "absent", default=[]) == []
    assert g.attrs["status"] == "running" and g.attrs["n"] == 3


VALUES = {
    "text": "train",
    "empty": "",
    "unicode": "‖G − G′‖₂",
    "int": 3,
    "numpy int": np.int32(-2),
    "float": 0.5,
    "nan": float("nan"),
    "bool": True,
    "numpy bool": np.bool_(False),
    "dict": {"lr": 0.1, "spacing": "log"},
    "list": ["features.0", "classifier"],
    "tuple": (1, 2),
    "none": None,
    "path": Path("runs/demo"),
}


def test_attributes_are_native_and_json_only_for_structures(h5):
    """The one encoding (docs/hdf5-schema.md, "Attributes"): what h5py hands any reader."""
    g = h5.create_group("probe/bn")
    write_attrs(g, VALUES)
    stored = dict(g.attrs)
    assert stored["text"] == "train" and stored["unicode"] == "‖G − G′‖₂"
    assert h5py.check_string_dtype(g.attrs.get_id("text").dtype).encoding == "utf-8"
    assert type(stored["int"]) is np.int64 and type(stored["numpy int"]) is np.int64
    assert type(stored["float"]) is np.float64 and np.isnan(stored["nan"])
    assert type(stored["bool"]) is np.bool_ and type(stored["numpy bool"]) is np.bool_
    assert json.loads(stored["dict"]) == {"lr": 0.1, "spacing": "log"}
    assert stored["dict"] == '{"lr": 0.1, "spacing": "log"}'  # sorted keys
    assert json.loads(stored["list"]) == VALUES["list"] and stored["tuple"] == "[1, 2]"
    assert stored["none"] == "null" and stored["path"] == "runs/demo"
    back = read_attrs(g)
    expected = {**VALUES, "numpy int": -2, "tuple": [1, 2], "path": "runs/demo"}
    assert {k: v for k, v in back.items() if k != "nan"} == {
        k: v for k, v in expected.items() if k != "nan"
    }
    assert [type(back[k]) for k in ("int", "float", "bool")] == [int, float, bool]
    write_array(g, "ratios", np.arange(2.0), {"explained_variance": np.array([0.9, 0.1])})
    assert read_attrs(g["ratios"])["explained_variance"].tolist() == [0.9, 0.1]
    assert read_attr(g, "absent", default=[]) == [] and read_json_attr(g, "list") == VALUES["list"]


def test_text_that_only_looks_like_json_stays_text(h5):
    write_attrs(h5, {"a": "[warning] not JSON", "b": "{", "c": "0", "d": '"quoted"'})
    assert read_attrs(h5) == {"a": "[warning] not JSON", "b": "{", "c": "0", "d": '"quoted"'}


def test_schema_1_0_files_are_read_as_they_were_written(tmp_path):
    """Schema 1.0 wrote the attributes of the probe groups all as JSON text ('"train"', '0');
    provenance and the trainer's status were text then too."""
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update({"schema_version": "1.0", "variants": '["bn"]', "config_hash": "12"})
        f.create_group("probe/bn").attrs.update(
            {"bn_mode": '"train"', "seed": "0", "step_size_grid": '{"lr": 0.1}', "x": "null"}
        )
        f.create_group("train/bn").attrs.update({"status": "finished", "message": ""})
    with open_run(path) as f:
        assert read_attrs(f["probe/bn"]) == {
            "bn_mode": "train", "seed": 0, "step_size_grid": {"lr": 0.1}, "x": None
        }  # fmt: skip
        assert read_attrs(f["train/bn"]) == {"status": "finished", "message": ""}
        assert read_attrs(f) == {"schema_version": "1.0", "variants": ["bn"], "config_hash": "12"}
        assert read_json_attr(f["probe/bn"], "bn_mode") == "train"  # the 1.0 name still reads
        assert SCHEMA_VERSION == "1.1"


def test_open_run_modes(tmp_path):
    path = tmp_path / "a" / "b.h5"
    with pytest.raises(ValueError, match="no such file"):
        open_run(path)
    with open_run(path, "a") as f:
        f.attrs["x"] = 1
    with open_run(path) as f:
        assert f.attrs["x"] == 1
    with pytest.raises(ValueError, match="unknown mode"):
        open_run(path, "rw")  # type: ignore[arg-type]


def test_a_truncated_file_is_called_damaged_not_locked(tmp_path):
    """Before: a truncated file was reported "open for writing by another process" (the text
    of HDF5's error held "superblock", which holds "lock")."""
    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(1000.0)
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ValueError, match=r"cannot be opened as HDF5 \(truncated or damaged\?\)"):
        open_run(path)


def test_a_held_lock_is_named_for_what_it_is(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    hold = "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); print(1, flush=True); "
    writer = subprocess.Popen(
        [sys.executable, "-c", hold + "time.sleep(60)", str(path)], stdout=subprocess.PIPE
    )
    try:
        assert writer.stdout.readline().strip() == b"1"
        with pytest.raises(ValueError, match="open for writing by another process"):
            open_run(path)
    finally:
        writer.kill()
        writer.wait()
    with open_run(path) as f:  # the holder is gone: readable again
        assert f["x"].shape == (3,)


@pytest.mark.parametrize(
    ("version", "match"),
    [
        ("2.0", r"written with schema 2\.0; this landscape reads schema 1\.1 and older: upgrade"),
        ("one", r"schema_version 'one', not MAJOR\.MINOR: it is damaged"),
        # before: Python's "Exceeds the limit (4300 digits) for integer string conversion"
        ("9" * 5000 + ".0", r"schema_version '9{20}\.\.\.\(5002 characters\)', not MAJOR\.MINOR"),
        ("².0", r"schema_version '²\.0', not MAJOR\.MINOR"),  # a digit int() cannot read
        # at the limits: the largest major read as a number, the longest version quoted whole
        ("999999.0", r"written with schema 999999\.0; .*: upgrade landscape"),
        ("1234567.0", r"schema_version '1234567\.0', not MAJOR\.MINOR"),
        ("x" * 40, rf"schema_version '{'x' * 40}', not MAJOR"),
        ("x" * 41, rf"schema_version '{'x' * 20}\.\.\.\(41 characters\)', not MAJOR"),
        # bytes (as other HDF5 writers store strings) are read as text
        (np.bytes_(b"2.0"), r"written with schema 2\.0; this landscape reads schema 1\.1"),
        (np.bytes_(b"\xff.0"), r"schema_version '\ufffd\.0', not MAJOR\.MINOR: it is damaged"),
    ],
)
def test_a_schema_this_package_cannot_read_is_refused(tmp_path, version, match):
    path = tmp_path / "new.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = version
    with pytest.raises(ValueError, match=match):
        open_run(path)
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = "1.7"  # a newer minor only adds things: read
    open_run(path).close()


def test_the_refusal_compares_majors_with_majors(tmp_path, monkeypatch):
    """Under a future schema 3.0 a file of 3.9 is read and one of 4.0 refused."""
    import landscape.store.hdf5 as hdf5

    monkeypatch.setattr(hdf5, "SCHEMA_VERSION", "3.0")
    path = tmp_path / "future.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = "3.9"
    open_run(path).close()
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = "4.0"
    with pytest.raises(ValueError, match=r"reads schema 3\.0 and older"):
        open_run(path)


def test_group_of_names_what_is_in_the_wrong_place(tmp_path):
    from landscape.store import group_of

    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["train/bn"] = np.zeros(3)
        f.create_group("train/plain")
        assert group_of(f, "train/plain", "r.h5").name == "/train/plain"
        assert group_of(f, "eval/bn", "r.h5") is None
        with pytest.raises(ValueError, match=r"r\.h5: /train/bn is a dataset, not a group"):
            group_of(f, "train/bn", "r.h5")


@pytest.mark.parametrize("bad", [np.nan, -1.0, 2.5])
def test_a_step_column_holds_steps(h5, bad):
    g = h5.create_group("probe/model")
    for step in (0.0, bad, 2.0):
        append_series(g, step=step, beta=1.0)
    with pytest.raises(ValueError, match=r"/probe/model/step holds .* at row 1, not a step number"):
        read_series(g)


def test_edit_refuses_a_file_that_vanished_instead_of_making_a_headerless_one(tmp_path):
    """A probe adding rows to a file another process removed: before, edit made a new file
    holding only those rows (no kind, settings or provenance), which every later command
    then refused as "an HDF5 file"."""
    path = tmp_path / "probes.h5"
    with edit(path, fresh=True) as f:
        write_attrs(f, {"landscape_kind": "offline probe file"})
    with edit(path) as f:
        f["rows"] = np.arange(3)
    path.unlink()
    with pytest.raises(ValueError, match=r"probes\.h5 is gone \(removed by another process"):
        with edit(path) as f:
            f["rows2"] = np.arange(3)
    assert not path.exists()
    with edit(path, fresh=True) as f:  # made anew: whole, from nothing
        write_attrs(f, {"landscape_kind": "offline probe file"})
    assert set(h5py.File(path, "r")) == set()


@pytest.mark.parametrize(("text", "shown"), [("{x", "'{x'"), ("[1]", r"\[1\]"), ("7", "'7'")])
def test_read_json_object_names_a_damaged_attribute(h5, text, shown):
    """Before: the resume of a run whose config_json was "{x" ended in a traceback."""
    from landscape.store import read_json_object

    h5.attrs["config_json"] = text
    match = rf"t\.h5: its attribute config_json holds {shown}, not a JSON object: the file is"
    with pytest.raises(ValueError, match=match):
        read_json_object(h5, "config_json", "t.h5")
    h5.attrs["config_json"] = '{"lr": 0.1}'
    assert read_json_object(h5, "config_json", "t.h5") == {"lr": 0.1}
    assert read_json_object(h5, "absent", "t.h5", default={}) == {}
    with pytest.raises(ValueError, match="its attribute absent is missing: the file is damaged"):
        read_json_object(h5, "absent", "t.h5")


def test_what_json_cannot_hold_is_named(h5):
    from landscape.store import dumps, encode_attr

    @dataclasses.dataclass
    class Grid:
        n: int = 3

    assert dumps({"grid": Grid(), "p": Path("a/b")}, "meta") == '{"grid": {"n": 3}, "p": "a/b"}'
    with pytest.raises(ValueError, match=r"meta cannot be recorded as JSON .*type set is not"):
        dumps({"a": {1, 2}}, "meta")
    with pytest.raises(ValueError, match="value of type type is not JSON-serialisable"):
        dumps([Grid], "meta")
    with pytest.raises(ValueError, match=r"^attribute 'meta' cannot be recorded as JSON"):
        write_attrs(h5, {"meta": {1, 2}})
    with pytest.raises(ValueError, match=r"^attribute 'attribute' cannot be recorded as JSON"):
        encode_attr({1, 2})  # a value with no name
    assert dict(h5.attrs) == {}


def test_bytes_are_text_both_ways(h5):
    """Bytes written are stored as UTF-8 text; fixed-length byte strings (what other tools
    write) read back as text, JSON decoded, bytes that are not UTF-8 replaced."""
    from landscape.store import attr_str

    write_attrs(h5, {"written": "café".encode()})
    assert h5.attrs["written"] == "café"
    h5.attrs.update(
        {
            "name": np.bytes_("café".encode()),
            "grid": np.bytes_(b'{"n": 3}'),
            "bad": np.bytes_(b"\xff1"),
        }
    )
    assert read_attrs(h5) == {"written": "café", "name": "café", "grid": {"n": 3}, "bad": "\ufffd1"}
    assert read_attr(h5, "bad") == "\ufffd1"
    assert attr_str(b"caf\xc3\xa9") == "café" and attr_str(b"\xff1") == "\ufffd1"
    assert attr_str(3) == "3"


def test_only_schema_1_0_groups_hold_json_scalars(tmp_path):
    path = tmp_path / "new.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.create_group("probe/bn").attrs.update({"seed": "0", "mode": '"train"', "n": "null"})
    with open_run(path) as f:
        assert read_attrs(f["probe/bn"]) == {"seed": "0", "mode": '"train"', "n": None}


def test_write_json_attr_writes_one_attribute(h5):
    from landscape.store import write_json_attr

    g = h5.create_group("g")
    write_json_attr(g, "grid", {"n": 3})
    write_json_attr(g, "seed", 7)
    assert read_attrs(g) == {"grid": {"n": 3}, "seed": 7}
    assert dict(h5.attrs) == {}


def test_read_json_object_of_a_group_names_it_and_shortens_long_values(h5):
    from landscape.store import read_json_object

    g = h5.create_group("probe/bn")
    g.attrs["a"] = "x" * 38  # repr: 40 characters, shown whole
    g.attrs["b"] = "x" * 39  # repr: 41 characters, shortened to 37 and "..."
    whole = rf"t\.h5: the attribute a of /probe/bn holds '{'x' * 38}', not a JSON object"
    with pytest.raises(ValueError, match=whole):
        read_json_object(g, "a", "t.h5")
    short = rf"t\.h5: the attribute b of /probe/bn holds '{'x' * 36}\.\.\., not a JSON object"
    with pytest.raises(ValueError, match=short):
        read_json_object(g, "b", "t.h5")


@pytest.mark.parametrize("mode", ["w", "w-", "x", "a"])
def test_open_run_writing_modes_make_the_directories(tmp_path, mode):
    path = tmp_path / "a" / "b" / "c" / "run.h5"
    with open_run(path, mode) as f:
        f.attrs["x"] = 1
    with open_run(path) as f:
        assert f.attrs["x"] == 1
    if mode in ("w-", "x"):
        with pytest.raises(ValueError, match="cannot be opened as HDF5"):
            open_run(path, mode)


def test_open_run_r_plus_checks_the_file_and_writes(tmp_path):
    path = tmp_path / "run.h5"
    with pytest.raises(ValueError, match="no such file"):
        open_run(path, "r+")
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = "1.1"
    with open_run(path, "r+") as f:
        f.attrs["x"] = 2
    with open_run(path) as f:
        assert f.attrs["x"] == 2
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = "2.0"
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} was written with schema 2\.0"):
        open_run(path, "r+")


def test_a_file_hdf5_cannot_make_is_named_with_hdf5s_reason(tmp_path):
    """A name too long for the file system: not "locked by a writer" (the name cannot be
    opened to ask); HDF5's reason on one line, cut to 200 characters."""
    path = tmp_path / ("x" * 300 + ".h5")
    with pytest.raises(ValueError) as err:
        open_run(path, "w")
    head, why = str(err.value).split(" cannot be opened as HDF5 (truncated or damaged?): ")
    assert head == str(path) and len(why) == 200 and "\n" not in why
    assert why.startswith(f"[Errno {errno.ENAMETOOLONG}] Unable to ")


def test_a_file_system_without_locks_is_not_a_writer(tmp_path, monkeypatch):
    import fcntl

    path = tmp_path / "run.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(1000.0)
    path.write_bytes(path.read_bytes()[:3000])

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(ValueError, match=r"cannot be opened as HDF5 \(truncated or damaged\?\)"):
        open_run(path)


def test_an_edit_keeps_the_file_its_rows_and_its_permissions(tmp_path):
    """An edit adds to the file (its attributes and datasets stay), a fresh one replaces it
    whole; both keep the permissions the file had (a user's 0o600 stays private), and a new
    file is 0o644, whatever the temporary file was made with."""
    path = tmp_path / "run.h5"
    with edit(path, fresh=True) as f:
        write_attrs(f, {"landscape_kind": "run"})
        f["a"] = np.arange(3)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o600)
    with edit(path) as f:
        f["b"] = np.arange(2)
    with h5py.File(path, "r") as f:
        assert set(f) == {"a", "b"} and f.attrs["landscape_kind"] == "run"
        assert f["a"][()].tolist() == [0, 1, 2]
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o640)
    with edit(path, fresh=True) as f:
        f["c"] = np.arange(1)
    with h5py.File(path, "r") as f:
        assert set(f) == {"c"} and "landscape_kind" not in f.attrs
    assert path.stat().st_mode & 0o777 == 0o640
