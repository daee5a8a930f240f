"""``landscape slice`` and ``landscape plot slice|compare`` on a tiny trained pair."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import warnings

import h5py
import matplotlib.image
import numpy as np
import pytest

from landscape.cli.slice import _this_run
from landscape.figures import slice_figure
from landscape.slices import SliceConfig, read_grid, slice_checkpoint
from landscape.store import SCHEMA_VERSION, checkpoint_sha256
from landscape.train import TrainConfig, train_pair
from tests.cli.helpers import error_line, invoke
from tests.slices import damage as spoil

# A non-square grid (5 x-points, 3 y-points) on a small evaluation subset.
CPU = ["--device", "cpu"]
GRID = ["--x", "-1:1:5", "--y", "-0.5:0.5:3", "--examples", "200", *CPU, "-q"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("slice") / "run"
    config = TrainConfig(
        model="mlp",
        model_options={"depth": 1, "width": 16},
        steps=6,
        checkpoint_every=3,
        batch_size=32,
        eval_every=3,
        device="cpu",
    )
    train_pair(config, out)
    return out


def ckpt(run, variant: str, step: int = 6):
    return run / "checkpoints" / variant / f"step_{step:07d}.pt"


def assert_plotted(result, out):
    """The plot command succeeded and wrote (and echoed) ``out`` as .png and .pdf."""
    assert result.exit_code == 0, result.output
    for suffix in (".png", ".pdf"):
        path = out.with_suffix(suffix)
        assert str(path) in result.output.splitlines(), result.output
        assert path.stat().st_size > 1000


def texts(fig) -> str:
    """Every title and axis label of ``fig``, one per line."""
    found = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        found += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return "\n".join(s for s in found if s)


@pytest.fixture(scope="module")
def planes(run):
    """Random-plane slice files of the bn and plain finals, written through the CLI."""
    files = {}
    for v in ("bn", "plain"):
        out = run / "slices" / f"{v}.h5"
        result = invoke("slice", ckpt(run, v), *GRID, "--out", out)
        assert result.exit_code == 0, result.output
        assert f"{out}: 5×3 grid, loss min" in result.output
        files[v] = out
    return files


def test_slice_file_holds_values_and_provenance(run, planes):
    for v, path in planes.items():
        res = read_grid(path)
        assert res.values["loss"].shape == res.values["accuracy"].shape == (3, 5)
        assert res.computed.all() and not np.isnan(res.values["loss"]).any()
        np.testing.assert_allclose(res.y, [-0.5, 0.0, 0.5])
        assert res.meta["variant"] == v and res.meta["bn_mode"] == "eval"
        assert res.meta["kind"] == "random" and res.meta["eval_examples"] == 200
        with h5py.File(path) as f:
            # command_line is this process's argv (pytest's here, the CLI's in real use)
            assert f.attrs["schema_version"] == SCHEMA_VERSION and f.attrs["command_line"]
            meta = json.loads(f.attrs["config_json"])["meta"]
        assert meta["sources"][0]["sha256"] == checkpoint_sha256(ckpt(run, v))


def test_rerun_reports_already_complete_and_keeps_the_file(run, planes):
    before = planes["bn"].read_bytes()
    result = invoke("slice", ckpt(run, "bn"), *GRID, "--out", planes["bn"])
    assert result.exit_code == 0, result.output
    assert f"already complete: {planes['bn']}" in result.output
    assert planes["bn"].read_bytes() == before


@pytest.mark.parametrize("kind", ["contour", "heatmap", "surface"])
def test_plot_slice_2d(planes, tmp_path, kind):
    result = invoke("plot", "slice", planes["bn"], "--kind", kind, "--out", tmp_path / kind)
    assert_plotted(result, tmp_path / kind)


def test_plot_compare(planes, tmp_path):
    result = invoke("plot", "compare", planes["bn"], planes["plain"], "--out", tmp_path / "cmp")
    assert_plotted(result, tmp_path / "cmp")


def test_plot_compare_paper_options(planes, tmp_path):
    """--format, --size and --dpi reach the slice figures too."""
    args = ["--format", "svg,png", "--size", "9,4", "--dpi", "40", "--out", tmp_path / "cmp"]
    result = invoke("plot", "compare", planes["bn"], planes["plain"], *args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp.png", "cmp.svg"]
    assert matplotlib.image.imread(tmp_path / "cmp.png").shape[:2] == (160, 360)


def test_interpolation_line_plot(run, tmp_path):
    out = tmp_path / "interp.h5"
    args = ["--x", "-0.5:1.5:5", "--examples", "200", "--device", "cpu", "-q", "--out", out]
    result = invoke("slice", ckpt(run, "bn", 0), "--to", ckpt(run, "bn"), *args)
    assert result.exit_code == 0, result.output
    res = read_grid(out)
    assert res.y is None and res.meta["kind"] == "interpolate" and res.meta["moves_buffers"]
    result = invoke("plot", "slice", out, "--out", tmp_path / "line")
    assert_plotted(result, tmp_path / "line")
    fig, kind = slice_figure(out, None, None, None)
    assert kind == "line"
    drawn = texts(fig)
    assert "interpolation step 0 → step 6" in drawn
    assert "α  (0: step 0, 1: step 6)" in drawn


def test_pca_stores_trajectory_and_explained_variance(run, tmp_path):
    out = tmp_path / "pca.h5"
    pca = ["--pca", run / "checkpoints" / "plain", "--x", "-1:1:3", "--y", "-1:1:3"]
    result = invoke("slice", ckpt(run, "plain"), *pca, "--examples", "100", "-q", "--out", out)
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        coords, steps = f["trajectory/coords"][()], f["trajectory/steps"][()]
        ratios = f["trajectory"].attrs["explained_variance"]
    assert coords.shape == (3, 2) and steps.tolist() == [0, 3, 6]
    np.testing.assert_allclose(coords[-1], 0.0, atol=1e-6)  # the origin is the final point
    assert ratios.shape == (2,) and np.all(ratios >= 0) and ratios.sum() <= 1 + 1e-9
    # three centred checkpoints span at most two directions: the two ratios hold it all
    assert ratios.sum() == pytest.approx(1) and ratios[0] >= ratios[1]
    result = invoke("plot", "slice", out, "--out", tmp_path / "pca")
    assert_plotted(result, tmp_path / "pca")
    fig, kind = slice_figure(out, None, None, None)
    assert kind == "contour"
    drawn = texts(fig)
    assert "PCA plane of 3 checkpoints around step 6" in drawn
    for k, r in enumerate(ratios, 1):
        assert f"PC {k} ({100 * r:.1f} % of variance)" in drawn
    (ax,) = [a for a in fig.axes if a.get_xlabel()]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "trajectory"]
    np.testing.assert_allclose(np.column_stack(line.get_data()), coords)


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "no checkpoint"),
        ("corrupt", "not a landscape checkpoint"),
        ("reversed range", "bad range '1:-1:5'"),
        ("text range", "bad range 'a:b:c'"),
        ("other settings", "--overwrite"),
        ("two kinds", "exclude each other"),
        ("2-D interpolation", "1-D"),
        ("out is the checkpoint", "is an input of this slice: choose another --out"),
        ("out is --to", "is an input of this slice: choose another --out"),
        ("out is a checkpoint", "holds a checkpoint, not a slice file"),
        ("out is the run log", "holds a run log, not a slice file"),
        ("bn train, batch of 1", "leave a batch of 1: change --examples or --batch-size"),
        ("no pca directory", "no such directory"),
    ],
)
def test_bad_input_is_one_line_exit_2(run, planes, tmp_path, case, needle):
    good, out = ckpt(run, "bn"), tmp_path / "s.h5"
    (tmp_path / "bad.pt").write_bytes(good.read_bytes()[:1000])  # a truncated checkpoint
    args = {
        "missing": [tmp_path / "nope.pt", *GRID, "--out", out],
        "corrupt": [tmp_path / "bad.pt", *GRID, "--out", out],
        "reversed range": [good, "--x", "1:-1:5", "--out", out],
        "text range": [good, "--x", "a:b:c", "--out", out],
        "other settings": [good, *GRID, "--seed", "1", "--out", planes["bn"]],
        "two kinds": [good, "--to", good, "--pca", good.parent, "--out", out],
        "2-D interpolation": [good, "--to", good, *GRID, "--out", out],
        "out is the checkpoint": [good, *GRID, "--out", good, "--overwrite"],
        "out is --to": [ckpt(run, "bn", 0), "--to", good, "--out", good, "--overwrite"],
        "out is a checkpoint": [good, *GRID, "--out", ckpt(run, "bn", 3), "--overwrite"],
        "out is the run log": [good, *GRID, "--out", run / "run.h5", "--overwrite"],
        "bn train, batch of 1": [good, "--bn", "train", "--examples", "33", "--out", out],
        "no pca directory": [good, "--pca", tmp_path / "nope", "--out", out],
    }[case]
    inputs = [good, ckpt(run, "bn", 0), ckpt(run, "bn", 3), run / "run.h5", planes["bn"]]
    before = [p.read_bytes() for p in inputs]
    assert needle in error_line(invoke("slice", *args))
    assert not out.exists()
    assert [p.read_bytes() for p in inputs] == before


def test_plot_kind_must_fit_the_slice(planes):
    line = error_line(invoke("plot", "slice", planes["bn"], "--kind", "line"))
    assert "contour" in line


def test_interrupted_slice_resumes_to_identical_values(run, tmp_path):
    config = SliceConfig(x="-1:1:5", y="-0.5:0.5:3", examples=200, device="cpu", chunk=2)
    full, part = tmp_path / "full.h5", tmp_path / "part.h5"
    assert slice_checkpoint(ckpt(run, "bn"), full, config) == full

    def stop_midway(done: int, total: int) -> None:
        if done == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        slice_checkpoint(ckpt(run, "bn"), part, config, progress=stop_midway)
    assert 0 < read_grid(part).computed.sum() < 15
    assert slice_checkpoint(ckpt(run, "bn"), part, config) == part
    assert slice_checkpoint(ckpt(run, "bn"), part, config) is None  # already complete
    a, b = read_grid(full), read_grid(part)
    for name in ("loss", "accuracy"):
        assert np.array_equal(a.values[name], b.values[name])


def test_degenerate_plane_and_interpolation_are_refused(run, tmp_path):
    a, b = ckpt(run, "bn", 0), ckpt(run, "bn", 6)
    for extra, match in (
        (["--plane-through", b, b], "span a plane"),
        (["--to", a], "nothing to slice"),
    ):
        result = invoke("slice", a, *extra, "--x", "-1:1:3", "--out", tmp_path / "s.h5", "-q")
        assert match in error_line(result)
        assert not (tmp_path / "s.h5").exists()


def test_a_failed_overwrite_keeps_the_old_file_and_a_failed_run_leaves_none(run, planes, tmp_path):
    before = planes["bn"].read_bytes()
    bad = ["--bn", "train", "--batch-size", "1", "--device", "cpu", "-q"]  # BatchNorm1d fails
    line = error_line(invoke("slice", ckpt(run, "bn"), *bad, "--out", planes["bn"], "--overwrite"))
    assert "batch of 1" in line and planes["bn"].read_bytes() == before
    out = tmp_path / "new.h5"
    assert "batch of 1" in error_line(invoke("slice", ckpt(run, "bn"), *bad, "--out", out))
    assert list(tmp_path.iterdir()) == []
    result = invoke("slice", ckpt(run, "bn"), *GRID, "--bn", "train", "--out", out)
    assert result.exit_code == 0, result.output  # the corrected command is not blocked


@pytest.mark.parametrize(
    ("option", "value"),
    [("--seed", "1180591620717411303424"), ("--examples", "-5"), ("--batch-size", "0")],
)
def test_out_of_range_numbers_name_their_option(run, tmp_path, option, value):
    result = invoke("slice", ckpt(run, "bn"), option, value, "--out", tmp_path / "s.h5")
    assert f"Invalid value for '{option}'" in error_line(result)
    assert not (tmp_path / "s.h5").exists()


def test_all_nan_summary_is_one_plain_line(run, tmp_path):
    out = tmp_path / "nan.h5"
    config = SliceConfig(x="-1:1:3", examples=50, device="cpu")
    slice_checkpoint(ckpt(run, "bn"), out, config)
    with h5py.File(out, "r+") as f:  # a diverged slice: every point computed, none finite
        f["values/loss"][...] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "All-NaN slice encountered" would fail it
        result = invoke(
            "slice", ckpt(run, "bn"), "--x", "-1:1:3", "--examples", 50, *CPU, "--out", out
        )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"already complete: {out}",
        f"{out}: 3 points, loss not finite",
    ]


def test_a_resumed_run_counts_only_its_own_points():
    seen = []
    report = _this_run(lambda done, total: seen.append((done, total)))
    for done in (6, 7, 15):  # resumed after 5 of 15 points
        report(done, 15)
    assert seen == [(1, 10), (2, 10), (10, 10)]


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to refuse a write")
@pytest.mark.parametrize(("code", "nth"), [("EIO", 2), ("ENOSPC", 6)])
def test_a_write_the_disk_refuses_is_one_error_and_a_rerun_completes_it(run, tmp_path, code, nth):
    """strace makes the kernel refuse the nth in-place write of the cells (the values of a
    block or its mask): one Error line, exit 2, no crash; no cell's mask says 1 without its
    value, and a rerun completes the slice to the values of an uninterrupted run. (Before,
    HDF5 reported the failed write only when h5py freed the dataset, the mask was written
    anyway, and the process crashed with a segfault, exit 139.)"""
    args = ["slice", ckpt(run, "bn"), "--x", "-1:1:9", "--y", "-1:1:9", "--examples", "100",
            *CPU, "-q"]  # fmt: skip
    landscape = [sys.executable, "-m", "landscape"]
    ref, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    assert invoke(*args, "--out", ref).exit_code == 0
    strace = ["strace", "-f", "--seccomp-bpf", "-o", "/dev/null", "-e", "trace=pwrite64",
              "-e", f"inject=pwrite64:error={code}:when={nth}"]  # fmt: skip
    refused = subprocess.run([*strace, *landscape, *map(str, args), "--out", str(out)],
                             capture_output=True, text=True)  # fmt: skip
    lines = refused.stderr.splitlines()
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr
    assert lines[0].startswith(f"Error: cannot write {out}: {os.strerror(getattr(errno, code))}")
    a, b = read_grid(ref), read_grid(out)
    assert 0 < b.computed.sum() < b.computed.size
    assert np.array_equal(a.values["loss"][b.computed], b.values["loss"][b.computed])
    assert invoke(*args, "--out", out).exit_code == 0
    b = read_grid(out)
    assert b.computed.all()
    assert all(np.array_equal(a.values[n], b.values[n]) for n in a.values)


def test_a_one_point_slice_made_now_is_not_called_complete(run, tmp_path):
    out = tmp_path / "one.h5"
    args = ["slice", ckpt(run, "bn"), "--x", "0:0:1", "--examples", "50", *CPU, "-q"]
    result = invoke(*args, "--out", out)
    assert result.exit_code == 0 and result.output.splitlines()[0].startswith(f"{out}: 1 point")
    assert invoke(*args, "--out", out).output.startswith(f"already complete: {out}")


def test_another_configuration_names_the_option(run, tmp_path):
    """Settings that the stored meta shares but the hashed configuration does not (here:
    the file's hash changed): the CLI's option is named, not the keyword."""
    out = tmp_path / "s.h5"
    assert invoke("slice", ckpt(run, "bn"), *GRID, "--out", out).exit_code == 0
    with h5py.File(out, "r+") as f:
        f.attrs["config_hash"] = "0" * 64
    assert "pass overwrite=True (--overwrite)" in error_line(
        invoke("slice", ckpt(run, "bn"), *GRID, "--out", out)
    )


def test_unwritable_outputs_name_their_cause_and_a_complete_one_needs_no_writer(
    run, planes, tmp_path, monkeypatch
):
    """Each refused write gets the advice for its cause; where nothing can be written (a
    read-only file system: the lock file refused with EROFS), a complete slice is reported
    complete, and only a slice that needs writing is refused."""
    from landscape import _files

    (tmp_path / "notes.txt").write_text("mine")
    line = error_line(invoke("slice", ckpt(run, "bn"), *GRID, "--out", tmp_path / "notes.txt/x.h5"))
    assert line.endswith("File exists; what was written before is intact: the path is not a "
                         "usable directory (a part of it is missing, is a file or cannot be "
                         "made): choose another path")  # fmt: skip
    assert "free space" not in line

    def read_only(lock, target):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(lock))

    monkeypatch.setattr(_files, "_take", read_only)
    before = planes["bn"].read_bytes()
    result = invoke("slice", ckpt(run, "bn"), *GRID, "--out", planes["bn"])
    assert result.exit_code == 0 and result.output.startswith(f"already complete: {planes['bn']}")
    assert planes["bn"].read_bytes() == before
    line = error_line(invoke("slice", ckpt(run, "bn"), *GRID, "--out", tmp_path / "new.h5"))
    assert "new.h5: Read-only file system; what was written before is intact: the file " \
        "system is read-only: remount it read-write or write to another place" in line  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (spoil.bad_dtype, "(directions/d1/layers.0.linear.weight names no torch dtype)"),
        (spoil.no_name, "(directions/d1/layers.0.linear.weight is not a tensor with a"),
        (spoil.extra_group, "(directions is not a group of groups"),
        (spoil.strings, "(values/loss is not a grid of numbers)"),
    ],
)
def test_damaged_slice_files_are_one_line_naming_the_fix(run, planes, tmp_path, damage, needle):
    """plot slice, plot compare and a rerun of the slice (before: AttributeError, KeyError or
    TypeError tracebacks); --overwrite makes the file anew."""
    out = tmp_path / "s.h5"
    out.write_bytes(planes["bn"].read_bytes())
    with h5py.File(out, "r+") as f:
        damage(f)
    fix = ": make it again (--overwrite, overwrite=True) or remove it"
    for args in (["plot", "slice", out], ["plot", "compare", planes["plain"], out],
                 ["slice", ckpt(run, "bn"), *GRID, "--out", out]):  # fmt: skip
        line = error_line(invoke(*args))
        assert f"{out} is a damaged slice file {needle}" in line and line.endswith(fix), line
    assert invoke("slice", ckpt(run, "bn"), *GRID, "--out", out, "--overwrite").exit_code == 0
    assert np.array_equal(read_grid(out).values["loss"], read_grid(planes["bn"]).values["loss"])
