"""``landscape info``: files and run directories described."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.store import (
    SCHEMA_VERSION,
    append_rows,
    checkpoint_path,
    describe,
    open_run,
    provenance,
    save_checkpoint,
    write_array,
    write_provenance,
)


def _make_run(run):
    with open_run(run / "run.h5", "w") as f:
        write_provenance(f, provenance({"lr": 0.1}))
        for variant in ("bn", "plain"):
            g = f.create_group(f"train/{variant}")
            g.attrs["status"] = "finished"
            append_rows(g, step=np.arange(5), loss=np.linspace(2, 1, 5))
        p = f.create_group("probe/bn")
        append_rows(p, step=np.arange(2), loss=np.array([[1.0, np.nan], [1.0, 2.0]]))
        grid = np.full((3, 3), np.nan)
        grid[0] = 1.0
        write_array(f, "slice/loss", grid)
    model = torch.nn.Linear(2, 2)
    for variant, steps in (("bn", (0, 10, 20)), ("plain", (0,))):
        for s in steps:
            path = checkpoint_path(run / "checkpoints" / variant, s)
            save_checkpoint(path, model=model, step=s, spec={}, config={})
    (run / "figures").mkdir()
    (run / "figures" / "probe_loss.png").write_bytes(b"png")
    with open_run(run / "slices" / "plane.h5", "w") as f:
        write_provenance(f, provenance())


def test_describe_file_and_run_directory(tmp_path):
    run = tmp_path / "run"
    _make_run(run)
    text = describe(run / "run.h5")
    for expected in (
        f"schema {SCHEMA_VERSION}",
        "command:",
        "train/",
        "bn/  series: 5 rows x 2 columns",
        "@status: finished",
        "loss  float64 (5)",
        "step  int64 (5)",
        "loss  float64 (2x2)  rows of (2,)  1 NaN",
        "3/9 computed",
    ):
        assert expected in text, (expected, text)
    assert "config_json" not in text  # provenance is summarised, not dumped

    text = describe(run)
    for expected in (
        "run directory",
        "bn: 3 checkpoints, steps 0..20",
        "plain: 1 checkpoint, steps 0..0",
        "figures: 1",
        "probe_loss.png",
        "slices/plane.h5",
        "bn/  series: 5 rows",
    ):
        assert expected in text, (expected, text)


def test_describe_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="no such file or directory"):
        describe(tmp_path / "missing.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        describe(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a run directory"):
        describe(tmp_path / "empty")


def test_descriptions_inline_and_long_groups_folded(tmp_path):
    """A slice-like file: descriptions end the dataset's line, attributes repeating the
    dataset's own name and dtype are left out, a direction's many tensors are folded."""
    path = tmp_path / "s.h5"
    with open_run(path, "w") as f:
        write_provenance(f, provenance())
        for i in range(10):
            ds = f.create_dataset(f"directions/d1/layer{i}.weight", data=np.zeros(i + 1))
            ds.attrs.update(description=f"part {i}", name=f"layer{i}.weight", dtype="float64")
        ds = f.create_dataset("values/loss", data=np.ones(3))
        ds.attrs.update(description="mean loss", name="other", dtype="float32")
    lines = describe(path).splitlines()
    assert "      layer0.weight  float64 (1)  1/1 computed  # part 0" in lines
    assert "      ... 7 more datasets like these (49 values)" in lines  # 4 + 5 + ... + 10
    assert not any("layer3" in line for line in lines)
    assert "    loss  float64 (3)  3/3 computed  # mean loss" in lines
    assert "      @name: other" in lines and "      @dtype: float32" in lines  # they differ
    assert sum("@name" in line or "@dtype" in line for line in lines) == 2
