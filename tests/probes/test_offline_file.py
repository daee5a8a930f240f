"""The checked reader of offline probe files: a damaged file is refused, never added to.

Before: a NaN step in ``/offline_checkpoints/bn`` made a rerun probe step 3 again and append
it (``offline_probe/bn/step`` became ``[0 3 6 3]``, exit 0); a missing
``offline_probe_batches`` ended in KeyError, ``/offline_probe/bn`` as a dataset in
AttributeError, settings ``"[1]"`` in AttributeError, integer sha256 in TypeError from
``asstr``, ``/offline_checkpoints/bn`` as a dataset in TypeError; with ``/offline_probe``
deleted the probe said "nothing to do" while the figure said "no finished offline probes".
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from landscape.probes import OfflineProbeConfig, probe_checkpoints, read_offline_probes
from landscape.probes.offline_file import read_offline_file
from landscape.store import VARIANTS, list_checkpoints
from landscape.train import TrainConfig, train_pair
from tests.cli.helpers import invoke

TINY = TrainConfig(model="mlp", model_options={"depth": 1, "width": 16}, steps=6, batch_size=32,
                   eval_every=3, checkpoint_every=3, device="cpu")  # fmt: skip
CONFIG = OfflineProbeConfig(count=3, num_batches=2)


#: One intra-op thread for the module (tests/conftest.py), the previous count restored.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """A run and its finished offline probe file (with ICS)."""
    run = tmp_path_factory.mktemp("offline_file") / "run"
    train_pair(TINY, run)
    files = {v: [p for _, p in list_checkpoints(run / "checkpoints" / v)] for v in VARIANTS}
    out = probe_checkpoints(files, run / "probes.h5", OfflineProbeConfig(count=3, num_batches=2,
                                                                          ics=True))  # fmt: skip
    return run, files, out


def replace_dataset(f: h5py.File, name: str, data, **kw) -> None:
    del f[name]
    f.create_dataset(name, data=data, **kw)


def nan_step(f: h5py.File, name: str) -> None:
    steps = f[name][()].astype(float)
    steps[1] = np.nan
    replace_dataset(f, name, steps, maxshape=(None,))


SHA = "offline_checkpoints/bn/sha256"
DAMAGE = {
    "NaN commit step": (
        lambda f: nan_step(f, "offline_checkpoints/bn/step"),
        r"/offline_checkpoints/bn/step holds nan at row 1, not a step number",
    ),
    "NaN probe step": (
        lambda f: nan_step(f, "offline_probe/bn/step"),
        r"/offline_probe/bn/step holds nan at row 1",
    ),
    "commit step twice": (
        lambda f: f["offline_checkpoints/plain/step"].__setitem__(2, 0),
        r"/offline_checkpoints/plain/step holds step 0 twice",
    ),
    "no batches": (
        lambda f: f.__delitem__("offline_probe_batches"),
        r"/offline_probe_batches is missing, not the probe batches' indices",
    ),
    "batches of another shape": (
        lambda f: replace_dataset(f, "offline_probe_batches", np.zeros((1, 1), np.int64)),
        r"/offline_probe_batches has shape \(1, 1\), but the settings ask for 2 batches of 32",
    ),
    "probe group a dataset": (
        lambda f: replace_dataset(f, "offline_probe/bn", np.arange(3)),
        r"/offline_probe/bn is a dataset, not a group",
    ),
    "commit group a dataset": (
        lambda f: replace_dataset(f, "offline_checkpoints/bn", np.arange(3)),
        r"/offline_checkpoints/bn is a dataset, not a group",
    ),
    "settings not JSON": (
        lambda f: f.attrs.__setitem__("offline_probe_settings", "{x"),
        r"its attribute offline_probe_settings holds '\{x', not a JSON object",
    ),
    "settings a list": (
        lambda f: f.attrs.__setitem__("offline_probe_settings", "[1]"),
        r"its attribute offline_probe_settings holds \[1\], not a JSON object",
    ),
    "sha256 integers": (
        lambda f: replace_dataset(f, SHA, np.arange(3), maxshape=(None,)),
        r"/offline_checkpoints/bn/sha256 holds int64, not text",
    ),
    "sha256 not a digest": (
        lambda f: f["offline_checkpoints/bn/sha256"].__setitem__(0, "abc"),
        r"/offline_checkpoints/bn/sha256 holds 1 values that are not SHA-256 digests",
    ),
    "no probe rows": (
        lambda f: f.__delitem__("offline_probe"),
        r"/offline_checkpoints/bn commits 3 checkpoints but /offline_probe/bn is missing",
    ),
    "no ICS rows": (
        lambda f: f["offline_ics"].__delitem__("plain"),
        r"/offline_checkpoints/plain commits 3 checkpoints but /offline_ics/plain is missing",
    ),
    "probe rows of other steps": (
        lambda f: f["offline_probe/bn/step"].__setitem__(2, 5),
        r"/offline_probe/bn holds the steps \[0, 3, 5\], not the committed checkpoints' "
        r"\[0, 3, 6\]",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_file_is_refused_by_every_reader_and_left_as_it_was(probed, tmp_path, damage):
    _, files, good = probed
    path = tmp_path / "probes.h5"
    shutil.copy(good, path)
    change, match = DAMAGE[damage]
    with h5py.File(path, "a") as f:
        change(f)
    before = path.read_bytes()
    fix = r"the file is damaged.*; probe again into a new file \(landscape probe \.\.\. --out NEW"
    for read in (read_offline_file, read_offline_probes):
        with pytest.raises(ValueError, match=f"{match}.*{fix}"):
            read(path)
    config = OfflineProbeConfig(count=3, num_batches=2, ics=True)
    with pytest.raises(ValueError, match=match):
        probe_checkpoints(files, path, config)  # before: re-probed and appended, or crashed
    assert path.read_bytes() == before
    probe_checkpoints(files, path, config, overwrite=True)  # the fix the message names
    assert read_offline_probes(path)["bn"]["step"].tolist() == [0, 3, 6]


@pytest.mark.parametrize("command", ["probe", "plot --offline", "plot FILE"])
def test_the_cli_says_one_line(probed, tmp_path, command):
    run, _, good = probed
    path = tmp_path / "probes.h5"
    shutil.copy(good, path)
    with h5py.File(path, "a") as f:
        nan_step(f, "offline_checkpoints/bn/step")
    args = {
        "probe": ["probe", run, "--out", path, "--count", 3, "--batches", 2, "--ics", "-q"],
        "plot --offline": ["plot", "santurkar", run, "--offline", path, "--out", tmp_path],
        "plot FILE": ["plot", "santurkar", path, "--out", tmp_path],
    }[command]
    result = invoke(*args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: /offline_checkpoints/bn/step")


def test_a_good_file_reads_back(probed):
    _, _, good = probed
    stored = read_offline_file(good)
    assert stored.settings["num_batches"] == 2 and stored.batches.shape == (2, 32)
    assert {v: sorted(d) for v, d in stored.done.items()} == {"bn": [0, 3, 6], "plain": [0, 3, 6]}
    assert stored.probes["bn"]["sha256"][0] == stored.done["bn"][0]
