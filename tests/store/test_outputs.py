"""The output guard: files are recognised by content, and only an output's own kind is ever
replaced."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from landscape.render import save_figure
from landscape.store import (
    KIND_ATTR,
    check_output,
    kind_of,
    remove_run_outputs,
    remove_run_temporaries,
)
from landscape.store.outputs import FOREIGN_IMAGE
from tests.cases import locked_elsewhere


def _hdf5(path, **attrs):
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
        f["x"] = np.zeros(2)
    return path


def test_kinds_are_read_from_content_not_names(tmp_path):
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    png, pdf = save_figure(fig, tmp_path / "fig.h5")  # the name says HDF5; the bytes do not
    fig.savefig(tmp_path / "mpl.pdf")  # drawn with matplotlib, not by landscape
    torch.save({"w": torch.zeros(2)}, tmp_path / "fig.png")
    (tmp_path / "notes.pt").write_text("my notes")
    (tmp_path / "empty.h5").touch()
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    found = {
        png: "figure", pdf: "figure", tmp_path / "mpl.pdf": FOREIGN_IMAGE,
        tmp_path / "fig.png": "checkpoint",
        tmp_path / "notes.pt": "file", tmp_path / "empty.h5": "nothing",
        tmp_path / "missing": "nothing", tmp_path: "directory",
        _hdf5(tmp_path / "a.h5", **{KIND_ATTR: "run log"}): "run log",
        _hdf5(tmp_path / "b.h5", slice_format="landscape.slice/1"): "slice file",
        _hdf5(tmp_path / "c.h5", offline_probe_settings="{}"): "offline probe file",
        _hdf5(tmp_path / "d.h5"): "HDF5 file",
        tmp_path / "broken.h5": "damaged HDF5 file",
    }  # fmt: skip
    assert {p: kind_of(p) for p in found} == found


def _layout(path, attrs, groups):
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
        for g in groups:
            f.create_group(g)
    return path


@pytest.mark.parametrize(
    "attrs, groups, kind",
    [
        ({"variants": "bn,plain"}, ["train"], "run log"),
        ({"variants": "bn,plain"}, ["probe"], "HDF5 file"),
        ({"schema_version": "1"}, ["probe"], "probe log"),
        ({"schema_version": "1"}, ["ics", "probe"], "probe log"),
        ({"schema_version": "1"}, ["probe", "train"], "HDF5 file"),
        ({"schema_version": "1"}, [], "HDF5 file"),
        ({}, ["probe"], "HDF5 file"),
        ({KIND_ATTR: np.bytes_(b"sweep file")}, [], "sweep file"),
        ({KIND_ATTR: "hessian file", "slice_format": "x", "variants": "bn"}, ["train"],
         "hessian file"),
        ({"slice_format": "x", "offline_probe_settings": "{}"}, [], "slice file"),
    ],
)  # fmt: skip
def test_files_written_before_the_kind_attribute_are_known_by_their_layout(
    tmp_path, attrs, groups, kind
):
    assert kind_of(_layout(tmp_path / "f.h5", attrs, groups)) == kind


def test_legacy_checkpoints_and_vtk_files_are_known_by_their_first_bytes(tmp_path):
    legacy = tmp_path / "old.pt"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    vtk = tmp_path / "s.vts"
    vtk.write_text('<?xml version="1.0"?>\n<VTKFile type="StructuredGrid">\n</VTKFile>\n')
    xml = tmp_path / "other.xml"
    xml.write_text('<?xml version="1.0"?>\n<notes/>\n')
    assert legacy.read_bytes()[:1] == b"\x80"
    assert [kind_of(p) for p in (legacy, vtk, xml)] == ["checkpoint", "VTK file", "file"]


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


def _run(tmp_path, name="run"):
    """A run of landscape train (2 steps), as the trainer writes it."""
    from landscape.train import TrainConfig, train_pair

    config = TrainConfig(model="mlp", model_options={"depth": 1, "width": 8}, steps=2,
                         batch_size=16, eval_every=2, device="cpu")  # fmt: skip
    train_pair(config, tmp_path / name)
    return tmp_path / name


def test_remove_run_outputs_removes_what_the_run_wrote_and_nothing_else(tmp_path):
    """Before, any ZIP counted as a checkpoint, any empty file as nothing and any PDF as a
    figure: a run's neighbours (an .npz, a marker, a paper) went with it."""
    run = _run(tmp_path)
    mine = {
        "checkpoints/my_analysis.npz": None, "checkpoints/bn/notes.zip": b"PK\x03\x04 notes",
        "checkpoints/KEEP_empty_marker": b"", "figures/my_paper.pdf": b"%PDF-1.5\nthesis\n",
        "checkpoints/bn/step_0000002.pt.bak": b"PK\x03\x04 a copy",
    }  # fmt: skip
    (run / "figures").mkdir()
    for name, data in mine.items():
        if data is None:
            np.savez(run / name, a=np.zeros(2))
        else:
            (run / name).write_bytes(data)
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    drawn = save_figure(fig, run / "figures" / "fig1_training")
    fig.savefig(run / "figures" / "by_hand.png")  # matplotlib, not landscape
    stale = run / "checkpoints" / "bn" / ".step_0000002.pt.x1y2z3.tmp"
    stale.write_bytes(b"PK\x03\x04 a killed save")
    kept = remove_run_outputs(run)
    assert sorted(p.relative_to(run).as_posix() for p in kept) == sorted(
        [*mine, "figures/by_hand.png"]
    )
    assert not (run / "run.h5").exists() and not (run / "checkpoints" / "plain").exists()
    assert not any(p.exists() for p in (*drawn, stale))
    assert (run / "checkpoints" / "KEEP_empty_marker").read_bytes() == b""
    assert (run / "figures" / "my_paper.pdf").read_bytes() == b"%PDF-1.5\nthesis\n"


def test_remove_run_outputs_never_deletes_through_a_link(tmp_path):
    """A run's checkpoints folder linked to another run's: before, train --overwrite emptied
    the other run's folder, then failed on every later try."""
    run, other = _run(tmp_path), _run(tmp_path, "other")
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").symlink_to(other / "checkpoints")
    before = sorted(p.name for p in (other / "checkpoints" / "bn").iterdir())
    with pytest.raises(ValueError, match=r"run/checkpoints is a symbolic link: train --overwrite"):
        remove_run_outputs(run)
    assert sorted(p.name for p in (other / "checkpoints" / "bn").iterdir()) == before
    assert (run / "run.h5").exists()
    (run / "checkpoints").unlink()  # a link where a checkpoint's name is: refused as well
    (run / "checkpoints" / "bn").mkdir(parents=True)
    (run / "checkpoints" / "bn" / "step_0000002.pt").symlink_to(
        other / "checkpoints" / "bn" / "step_0000002.pt"
    )
    with pytest.raises(ValueError, match=r"step_0000002\.pt is a symbolic link"):
        remove_run_outputs(run)
    assert (other / "checkpoints" / "bn" / "step_0000002.pt").exists()


def test_remove_run_outputs_refuses_a_file_at_a_checkpoints_name_it_did_not_write(tmp_path):
    """The new run would replace it: refused, and nothing is deleted."""
    run = _run(tmp_path)
    alien = run / "checkpoints" / "bn" / "step_0000009.pt"
    torch.save({"w": torch.zeros(2)}, alien)  # your weights, at a name the trainer writes
    with pytest.raises(ValueError, match=r"step_0000009\.pt is not a checkpoint of this run"):
        remove_run_outputs(run)
    assert alien.exists() and (run / "run.h5").exists()
    assert (run / "checkpoints" / "plain" / "step_0000002.pt").exists()


def test_remove_run_outputs_leaves_an_output_another_process_is_writing(tmp_path):
    """A probe writing the run's probes.h5 holds its writer lock: refused, nothing deleted
    (before, its file went and came back headerless)."""
    run = _run(tmp_path)
    with h5py.File(run / "probes.h5", "w") as f:
        f.attrs[KIND_ATTR] = "offline probe file"
    with locked_elsewhere(run / "probes.h5"):
        with pytest.raises(ValueError, match=r"probes\.h5 is being written by another process"):
            remove_run_outputs(run)
        assert all((run / n).exists() for n in ("probes.h5", "run.h5", "checkpoints/bn"))
    assert remove_run_outputs(run) == [] and sorted(p.name for p in run.iterdir()) == []


def test_remove_run_temporaries_removes_killed_checkpoint_saves_only(tmp_path):
    run = _run(tmp_path)
    stale = run / "checkpoints" / "plain" / ".step_0000002.pt.k9j8h7.tmp"
    other = run / "checkpoints" / "plain" / ".notes.txt.k9j8h7.tmp"
    for p in (stale, other):
        p.write_bytes(b"partial")
    remove_run_temporaries(run)
    assert not stale.exists() and other.exists()


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


def test_a_path_below_a_file_holds_nothing_and_its_write_names_the_fix(tmp_path):
    """Before, the guard called such a path "a file" and a figure or VTK file below one was
    refused as "holds a file, not a figure": the wrong problem, and a fix that fixes nothing."""
    from landscape._files import WriteError

    (tmp_path / "notes.txt").write_text("x")
    target = tmp_path / "notes.txt" / "fig.png"
    assert kind_of(target) == "nothing" and not check_output(target, "figure")
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    with pytest.raises(WriteError, match=r"notes\.txt/fig\.png: .*the path is not a usable "
                       "directory .*choose another path"):  # fmt: skip
        save_figure(fig, target)
    assert (tmp_path / "notes.txt").read_text() == "x"


def _within(seconds, fn, fifo):
    """``fn()`` in a thread; fails (and frees a reader stuck on ``fifo``) if it hangs."""
    out = {}
    thread = threading.Thread(target=lambda: out.update(r=_catch(fn)), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # lets the blocked open return
        pytest.fail(f"hung on {fifo}")
    return out["r"]


def _catch(fn):
    try:
        return fn()
    except ValueError as exc:
        return exc


def test_special_files_are_refused_never_opened(tmp_path):
    """Before, kind_of opened a FIFO for reading and `landscape slice --out fifo.h5` hung."""
    fifo = tmp_path / "f.h5"
    os.mkfifo(fifo)
    assert _within(10, lambda: kind_of(fifo), fifo) == "FIFO"
    err = _within(10, lambda: check_output(fifo, "slice file"), fifo)
    assert isinstance(err, ValueError)
    assert str(err) == (f"{fifo} is a FIFO, not a regular file: landscape writes only regular "
                        "files; choose another --out")  # fmt: skip
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s.png"))
        with pytest.raises(ValueError, match=r"s\.png is a socket, not a regular file"):
            check_output(tmp_path / "s.png", "figure")
    finally:
        sock.close()
    with pytest.raises(ValueError, match=r"/dev/null is a device, not a regular file"):
        check_output("/dev/null", "figure")


def _slice_of(path, sources, variant="bn"):
    """A slice file whose recorded sources are ``(variant, file, sha256)`` triples."""
    import json

    meta = {"variant": variant,
            "sources": [{"variant": v, "file": f, "sha256": s} for v, f, s in sources]}  # fmt: skip
    return _hdf5(path, slice_format="landscape.slice/1", meta=json.dumps(meta))


def test_remove_run_outputs_takes_only_slices_and_hessians_of_this_run(tmp_path):
    """A slice file goes only when every checkpoint it was made from is this run's, by name
    and SHA-256; another run's slice of a same-named checkpoint, a slice without sources,
    other HDF5 files below slices/, and a hessian.h5 that is not a Hessian file stay."""
    from landscape._files import sha256_of

    run = _run(tmp_path)
    ckpt = run / "checkpoints" / "bn" / "step_0000002.pt"
    digest = sha256_of(ckpt)
    (run / "slices" / "sub").mkdir(parents=True)
    ours = _slice_of(run / "slices" / "sub" / "ours.h5", [("bn", ckpt.name, digest)])
    theirs = _slice_of(run / "slices" / "theirs.h5", [("bn", ckpt.name, "0" * 64)])
    bare = _slice_of(run / "slices" / "bare.h5", [])
    plain = _slice_of(run / "slices" / "plain.h5", [("plain", ckpt.name, digest)])
    other = _hdf5(run / "slices" / "table.h5")
    hessian = _hdf5(run / "hessian.h5", **{KIND_ATTR: "hessian file"})
    kept = remove_run_outputs(run)
    assert not ours.exists() and not hessian.exists() and not ckpt.exists()
    assert {theirs, bare, plain, other} <= set(kept) and all(
        p.exists() for p in (theirs, bare, plain, other))  # fmt: skip
    run2 = _run(tmp_path, "run2")
    mine = _hdf5(run2 / "hessian.h5", **{KIND_ATTR: "run log"})
    remove_run_outputs(run2)
    assert mine.exists()


def test_a_hostile_file_at_a_checkpoints_name_is_refused_unread(tmp_path):
    """A pickle at ``checkpoints/bn/step_XXXXXXX.pt`` is read weights-only: refused as not
    the run's checkpoint, nothing deleted, and the object it holds never built."""
    run = _run(tmp_path)
    marker = tmp_path / "unpickled"

    class Planted:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"format": "x", "obj": Planted()}, run / "checkpoints" / "bn" / "step_0000001.pt")
    with pytest.raises(ValueError, match=r"step_0000001.pt is not a checkpoint of this run"):
        remove_run_outputs(run)
    assert not marker.exists() and (run / "run.h5").exists()
    assert (run / "checkpoints" / "bn" / "step_0000002.pt").exists()


def test_remove_run_outputs_checks_each_checkpoint_and_slice_source_in_full(tmp_path):
    """A run checkpoint at another step's or variant's name is refused (nothing deleted); a
    slice whose meta is missing, or whose trajectory
    or sources name a checkpoint the run does not have, stays; no lock file is reported."""
    import json

    from landscape._files import sha256_of

    run = _run(tmp_path)
    bn, plain = run / "checkpoints" / "bn", run / "checkpoints" / "plain"
    for source, name in [(bn / "step_0000002.pt", "step_0000001.pt"),
                         (plain / "step_0000002.pt", "step_0000003.pt")]:  # fmt: skip
        shutil.copy(source, bn / name)
        with pytest.raises(ValueError, match=rf"{name} is not a checkpoint of this run"):
            remove_run_outputs(run)
        (bn / name).unlink()
    assert (run / "run.h5").exists() and (bn / "step_0000002.pt").exists()

    digest = sha256_of(bn / "step_0000002.pt")
    (run / "slices").mkdir()
    no_meta = _hdf5(run / "slices" / "no_meta.h5", slice_format="landscape.slice/1")
    missing = _slice_of(run / "slices" / "missing.h5", [("bn", "step_0000099.pt", digest)])
    meta = {"variant": "bn", "sources": [{"variant": "bn", "file": "step_0000002.pt",
                                          "sha256": digest}],
            "trajectory": [{"file": "step_0000002.pt", "sha256": "1" * 64}]}  # fmt: skip
    path = _hdf5(run / "slices" / "pca.h5", slice_format="landscape.slice/1",
                 meta=json.dumps(meta))  # fmt: skip
    meta["trajectory"][0]["sha256"] = digest
    pca = _hdf5(run / "slices" / "pca_ours.h5", slice_format="landscape.slice/1",
                meta=json.dumps(meta))  # fmt: skip
    kept = remove_run_outputs(run)
    assert no_meta.exists() and missing.exists() and path.exists() and not pca.exists()
    assert {no_meta, missing, path} <= set(kept)
    assert not any(p.name.endswith(".lock") or ".lock" in p.name for p in kept)


def test_only_empty_layout_folders_go_never_a_link_or_its_target(tmp_path):
    from landscape.store import remove_empty_run_folders

    run = tmp_path / "run"
    (run / "checkpoints" / "bn").mkdir(parents=True)
    (run / "checkpoints" / "plain").mkdir()
    remove_empty_run_folders(run)
    assert not (run / "checkpoints").exists() and run.is_dir()  # children first, then the parent

    (run / "checkpoints" / "bn").mkdir(parents=True)
    (run / "checkpoints" / "bn" / "mine.txt").write_text("keep")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "checkpoints" / "plain").symlink_to(elsewhere, target_is_directory=True)
    (run / "figures").mkdir()
    remove_empty_run_folders(run)
    assert (run / "checkpoints" / "bn" / "mine.txt").read_text() == "keep"
    assert (run / "checkpoints" / "plain").is_symlink() and elsewhere.is_dir()
    assert (run / "figures").is_dir()  # not among the default folders
    remove_empty_run_folders(run, (run / "figures",))
    assert not (run / "figures").exists()


def test_a_figure_landscape_did_not_draw_is_refused_with_the_way_out(tmp_path):
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    fig.savefig(tmp_path / "mine.png")
    with pytest.raises(ValueError) as err:
        check_output(tmp_path / "mine.png", "figure", option="--figure")
    assert str(err.value) == (
        f"{tmp_path / 'mine.png'} holds an image landscape did not draw, not a figure: it is "
        "never replaced, whatever --overwrite says; choose another --figure (a figure drawn "
        "before landscape stamped its figures counts as one: delete it yourself to redraw it)"
    )
    with pytest.raises(
        ValueError, match=r"holds an HDF5 file, not a figure: .*choose another --out$"
    ):
        check_output(_hdf5(tmp_path / "a.h5"), "figure")  # no hint for other kinds


def test_a_symbolic_link_loop_or_an_unopenable_file_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")  # stat: too many levels of links
    assert kind_of(tmp_path / "a") == "file"
    locked = _hdf5(tmp_path / "locked.h5", **{KIND_ATTR: "run log"})
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    assert kind_of(locked) == "file"


def test_a_fifo_put_in_place_after_the_stat_is_never_waited_on(tmp_path, monkeypatch):
    """The race the O_NONBLOCK open is for: stat saw a regular file, the open finds a FIFO
    (no writer: a blocking open would wait forever)."""
    fifo = tmp_path / "swapped.h5"
    os.mkfifo(fifo)
    regular = os.stat(_hdf5(tmp_path / "regular.h5"))
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: regular if os.fspath(p) == os.fspath(fifo)
                        else real_stat(p, *a, **k))  # fmt: skip
    assert _within(10, lambda: kind_of(fifo), fifo) == "file"


def test_an_hdf5_file_another_process_is_writing_is_known_by_its_kind(tmp_path):
    """Read without HDF5's file locking: a run log open for writing elsewhere is a run log (with
    locking, the open would fail and it would look damaged)."""
    log = _hdf5(tmp_path / "run.h5", **{KIND_ATTR: "run log"})
    hold = ("import sys, time, h5py\nf = h5py.File(sys.argv[1], 'a')\n"
            "print(1, flush=True); time.sleep(60)")  # fmt: skip
    writer = subprocess.Popen([sys.executable, "-c", hold, str(log)], stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"1"
        assert kind_of(log) == "run log"
    finally:
        writer.kill()
        writer.wait()


def test_a_fifo_at_a_checkpoints_name_is_refused_and_stays(tmp_path):
    run = _run(tmp_path)
    fifo = run / "checkpoints" / "bn" / "step_0000005.pt"
    os.mkfifo(fifo)
    err = _within(10, lambda: remove_run_outputs(run), fifo)
    assert isinstance(err, ValueError) and "is not a checkpoint of this run" in str(err)
    assert fifo.exists() and (run / "run.h5").exists()


def test_the_runs_emptied_folders_go_and_links_inside_them_are_not_followed(tmp_path):
    run = _run(tmp_path)
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    save_figure(fig, run / "figures" / "fig1_training")
    (run / "slices").mkdir()
    assert remove_run_outputs(run) == []
    assert sorted(p.name for p in run.iterdir()) == []  # figures/, slices/, checkpoints/ too

    run = _run(tmp_path, "second")
    elsewhere = tmp_path / "paper"
    elsewhere.mkdir()
    theirs = save_figure(fig, elsewhere / "fig1_training")
    (run / "figures").mkdir()
    (run / "figures" / "paper").symlink_to(elsewhere, target_is_directory=True)
    stale_lock = run / "figures" / ".other.png.lock"  # a killed writer's, of another file
    stale_lock.touch()
    kept = remove_run_outputs(run)
    assert kept == [run / "figures" / "paper"]  # the link itself; no lock file
    assert all(p.exists() for p in theirs) and (run / "figures" / "paper").is_symlink()
