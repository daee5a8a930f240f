"""The output guard: files are recognised by content, and only an output's own kind is ever
replaced."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from landscape.render import save_figure
from landscape.store import KIND_ATTR, check_output, kind_of, remove_outputs


def _hdf5(path, **attrs):
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
        f["x"] = np.zeros(2)
    return path


def test_kinds_are_read_from_content_not_names(tmp_path):
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    png, pdf = save_figure(fig, tmp_path / "fig.h5")  # the name says HDF5; the bytes do not
    torch.save({"w": torch.zeros(2)}, tmp_path / "fig.png")
    (tmp_path / "notes.pt").write_text("my notes")
    (tmp_path / "empty.h5").touch()
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    found = {
        png: "figure", pdf: "figure", tmp_path / "fig.png": "checkpoint",
        tmp_path / "notes.pt": "file", tmp_path / "empty.h5": "nothing",
        tmp_path / "missing": "nothing", tmp_path: "directory",
        _hdf5(tmp_path / "a.h5", **{KIND_ATTR: "run log"}): "run log",
        _hdf5(tmp_path / "b.h5", slice_format="landscape.slice/1"): "slice file",
        _hdf5(tmp_path / "c.h5", offline_probe_settings="{}"): "offline probe file",
        _hdf5(tmp_path / "d.h5"): "HDF5 file",
        tmp_path / "broken.h5": "damaged HDF5 file",
    }  # fmt: skip
    assert {p: kind_of(p) for p in found} == found


def test_check_output_refuses_every_other_kind(tmp_path):
    log = _hdf5(tmp_path / "run.h5", **{KIND_ATTR: "run log"})
    assert check_output(log, "run log") is True
    assert check_output(tmp_path / "new.h5", "slice file") is False
    with pytest.raises(
        ValueError, match=r"holds a run log, not a slice file: it is never replaced"
    ):
        check_output(log, "slice file", option="--out")
    with pytest.raises(ValueError, match="holds a run log, not an offline probe file"):
        check_output(log, ("offline probe file", "probe log"))


def test_remove_outputs_removes_only_its_kind(tmp_path):
    folder = tmp_path / "checkpoints"
    (folder / "bn").mkdir(parents=True)
    torch.save({"w": torch.zeros(1)}, folder / "bn" / "step_0000000.pt")
    (folder / "bn" / "mine.txt").write_text("keep me")
    torch.save({"w": torch.zeros(1)}, folder / "plain.pt")
    assert remove_outputs(folder, "checkpoint") == [folder / "bn" / "mine.txt"]
    assert sorted(p.name for p in folder.rglob("*")) == ["bn", "mine.txt"]
    (folder / "bn" / "mine.txt").unlink()
    torch.save({"w": torch.zeros(1)}, folder / "bn" / "step_0000001.pt")
    assert remove_outputs(folder, "checkpoint") == [] and not folder.exists()


def test_save_figure_replaces_figures_only(tmp_path):
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    target = tmp_path / "fig.png"
    save_figure(fig, target)
    save_figure(fig, target)  # a figure is redrawn
    (tmp_path / "fig.pdf").write_text("my paper's draft")
    with pytest.raises(ValueError, match=r"fig\.pdf holds a file, not a figure"):
        save_figure(fig, target)
    assert (tmp_path / "fig.pdf").read_text() == "my paper's draft"


def test_a_folder_that_cannot_be_made_is_a_write_error_naming_the_output(tmp_path):
    """Whatever refuses the lock file beside an output (here: its folder would have to be
    made where a file is; a read-only file system alike) is reported for the output."""
    from landscape._files import WriteError, writer_lock

    (tmp_path / "notes.txt").write_text("x")
    target = tmp_path / "notes.txt" / "out.h5"
    with pytest.raises(WriteError, match=r"cannot write .*notes\.txt/out\.h5: "):
        with writer_lock(target):
            pass
