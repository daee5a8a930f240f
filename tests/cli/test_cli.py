"""The command line through click's CliRunner: help, a real run, bad input -> exit 2."""

from __future__ import annotations

import pickle

import pytest
from click.testing import CliRunner

from landscape import __version__
from landscape.cli import main
from landscape.store import SCHEMA_VERSION, load_checkpoint
from tests.cli.helpers import error_line

TINY = ["--model", "mlp", "--model-option", "depth=1", "--model-option", "width=16", "--steps",
        "6", "--batch-size", "32", "--eval-every", "3", "--device", "cpu", "-q"]  # fmt: skip


@pytest.fixture
def runner():
    return CliRunner()


def test_help_and_version(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "train" in result.output and "demo" in result.output
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_train_info_plot(runner, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(main, ["train", *TINY, "--out", str(run)])
    assert result.exit_code == 0, result.output
    assert "run written to" in result.output
    info = runner.invoke(main, ["info", str(run)])
    assert info.exit_code == 0 and "train/" in info.output and "plain/" in info.output
    ckpt = runner.invoke(main, ["info", str(run / "checkpoints" / "bn" / "step_0000006.pt")])
    assert ckpt.exit_code == 0 and "step: 6" in ckpt.output
    plot = runner.invoke(main, ["plot", "training", str(run)])
    assert plot.exit_code == 0, plot.output
    assert (run / "figures" / "fig1_training.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "nosuchnet"], "unknown model"),
        (["--dataset", "nosuchdata"], "nosuchdata"),
        (["--lr", "-0.1"], "learning rate"),
        (["--dataset", "cifar10", "--data-dir", "/nonexistent/dir"], "cifar"),
        (["--model-option", "depth"], "KEY=VALUE"),
        (["--bn", "sometimes"], "'--bn': 'sometimes' is not one of"),  # click's own checks
        (["--steps", "many"], "'--steps': 'many' is not a valid integer"),
        (["--no-such-option"], "no such option"),
        (["--bn", "plain", "--bn-noise", "santurkar"], "--bn plain trains none"),
        (["--bn-noise", "loud"], "'--bn-noise': 'loud' is not one of"),
    ],
)
def test_bad_train_input_is_one_line_exit_2(runner, tmp_path, args, needle):
    result = runner.invoke(main, ["train", *TINY, *args, "--out", str(tmp_path / "run")])
    assert needle.lower() in error_line(result).lower()


def test_train_with_noisy_bn(runner, tmp_path):
    run = tmp_path / "run"
    args = ["train", *TINY, "--bn", "bn", "--bn-noise", "santurkar", "--out", str(run)]
    assert runner.invoke(main, args).exit_code == 0
    ckpt = load_checkpoint(run / "checkpoints" / "bn" / "step_0000006.pt")
    assert ckpt.spec["bn_noise"] == ckpt.config["bn_noise"] == "santurkar"
    assert int(ckpt.model_state["layers.0.bn.noise_draws"]) == 6


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--optimizer", "momentum", "--momentum", "nan"],
            "momentum (--momentum) must be a number",
        ),
        (["--weight-decay", "nan"], "weight_decay (--weight-decay) must be a number"),
        (["--weight-decay", "-1"], "weight_decay (--weight-decay) must be >= 0.0, got -1.0"),
        (["--lr-milestones", "3", "--lr-gamma", "nan"], "lr_gamma (--lr-gamma) must be a number"),
        (["--lr-milestones", "3", "--lr-gamma", "-1"], "lr_gamma (--lr-gamma) must be > 0"),
        (["--lr", "inf"], "lr (--lr) must be a number, got inf"),
        (["--probe-every", "2", "--probe-low", "nan"], "probe_low (--probe-low) must be a number"),
    ],
)
def test_bad_numbers_are_refused_before_anything_is_written(runner, tmp_path, args, needle):
    """Before: NaN momentum, weight decay or lr_gamma, and an lr_gamma of -1 (gradient
    ascent), trained to the end; --weight-decay -1 left a run.h5 that blocked the fix."""
    run = tmp_path / "run"
    assert needle in error_line(runner.invoke(main, ["train", *TINY, *args, "--out", str(run)]))
    assert not run.exists()
    assert runner.invoke(main, ["train", *TINY, "--out", str(run)]).exit_code == 0  # the fix


def test_a_failure_before_the_first_checkpoint_leaves_no_run_log(tmp_path, monkeypatch):
    """Refused late (here: the first checkpoint cannot be written), a new run leaves nothing
    that would make its rerun "already hold a run"."""
    from landscape import store
    from landscape.train import TrainConfig, train_pair

    def refuse(*args, **kwargs):
        raise ValueError("refused late")

    config = TrainConfig(model="mlp", model_options={"depth": 1, "width": 8}, steps=4,
                         batch_size=32, eval_every=2, device="cpu")  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setattr(store, "save_checkpoint", refuse)
        with pytest.raises(ValueError, match="refused late"):
            train_pair(config, tmp_path / "run")
    assert not (tmp_path / "run" / "run.h5").exists()
    assert train_pair(config, tmp_path / "run").variants["bn"].status == "finished"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["slice"], "missing argument 'checkpoint'. (see landscape slice --help)"),
        (["plot", "slice"], "missing argument 'file'. (see landscape plot slice --help)"),
        (["nope"], "no such command 'nope'"),
    ],
)
def test_usage_errors_are_one_line_naming_the_help(runner, args, needle):
    assert needle in error_line(runner.invoke(main, args, prog_name="landscape")).lower()


def test_existing_run_refused_and_kept(runner, tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(main, ["train", *TINY, "--out", str(run)]).exit_code == 0
    before = (run / "run.h5").read_bytes()
    line = error_line(runner.invoke(main, ["train", *TINY, "--out", str(run)]))
    assert "--overwrite" in line and "--resume" in line
    assert (run / "run.h5").read_bytes() == before
    assert runner.invoke(main, ["train", *TINY, "--out", str(run), "--resume"]).exit_code == 0


class _Boom:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_corrupt_and_malicious_checkpoints(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps(_Boom()))
    line = error_line(runner.invoke(main, ["info", str(bad)]))
    assert "evil.pt" in line
    assert not (tmp_path / "PWNED").exists()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    error_line(runner.invoke(main, ["info", str(junk)]))
    error_line(runner.invoke(main, ["info", str(tmp_path / "missing.pt")]))


def test_demo_end_to_end_short(runner, tmp_path):
    """The README's main job, shortened: run, probes, slices and every figure."""
    out = tmp_path / "demo"
    result = runner.invoke(main, ["demo", "--out", str(out), "--steps", "20", "--grid", "5", "-q"])
    assert result.exit_code == 0, result.output
    names = {p.name for p in (out / "figures").iterdir()}
    for stem in ("fig1_training", "fig4_gradient_landscape", "fig10_gradient_distance",
                 "fig3_ics", "li_slices_compare"):  # fmt: skip
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    assert (out / "slices" / "bn_final_random_plane.h5").exists()
    again = error_line(runner.invoke(main, ["demo", "--out", str(out), "--steps", "5", "-q"]))
    assert "--overwrite" in again and "--resume" in again
    # the --resume the message names exists (before: "no such option: --resume")
    args = ["demo", "--out", str(out), "--steps", "20", "--grid", "5", "--resume", "-q"]
    resumed = runner.invoke(main, args)
    assert resumed.exit_code == 0 and "already finished at step 20" in resumed.output


def test_offline_probe_figures(runner, tmp_path):
    """train -> probe (every checkpoint) -> plot santurkar --offline."""
    run = tmp_path / "run"
    args = ["train", *TINY, "--checkpoint-every", "3", "--out", str(run)]
    assert runner.invoke(main, args).exit_code == 0
    probe = runner.invoke(main, ["probe", str(run), "--batches", "2", "--device", "cpu", "-q"])
    assert probe.exit_code == 0, probe.output
    plot = runner.invoke(main, ["plot", "santurkar", str(run), "--offline", str(run / "probes.h5")])
    assert plot.exit_code == 0, plot.output
    assert (run / "figures" / "fig4_gradient_landscape_offline.png").stat().st_size > 1000
    # Without inline probes in the run, the error says how to get them.
    line = error_line(runner.invoke(main, ["plot", "santurkar", str(run)]))
    assert "--probe-every" in line


def test_checkpoint_cannot_pick_code_to_run(runner, tmp_path, monkeypatch):
    """A spec naming an import path is refused by slice and probe unless --trust-factory."""
    import torch

    from landscape.store import checkpoint_path, save_checkpoint

    (tmp_path / "evilmod.py").write_text(
        "import pathlib\npathlib.Path('PWNED').write_text('x')\ndef factory(**kw): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    ckpt = checkpoint_path(tmp_path / "run" / "checkpoints" / "bn", 0)
    spec = {"name": "evilmod:factory", "bn": True, "input_shape": [1, 8, 8], "options": {}}
    config = {"model": "evilmod:factory", "dataset": "digits", "lr": 0.1, "batch_size": 32}
    save_checkpoint(ckpt, model=torch.nn.Linear(2, 2), step=0, spec=spec, config=config)
    line = error_line(runner.invoke(main, ["slice", str(ckpt), "--x", "-1:1:3", "-q"]))
    assert "--trust-factory" in line
    line = error_line(runner.invoke(main, ["probe", "--checkpoint", str(ckpt), "--out", "p.h5"]))
    assert "--trust-factory" in line
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("command", [["plot", "training"], ["plot", "santurkar"]])
def test_corrupt_run_file_is_one_line(runner, tmp_path, command):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.h5").write_text("not hdf5")
    error_line(runner.invoke(main, [*command, str(tmp_path / "run")]))
    args = ["train", *TINY, "--out", str(tmp_path / "run"), "--resume"]
    error_line(runner.invoke(main, args))
    assert (tmp_path / "run" / "run.h5").read_text() == "not hdf5"


@pytest.mark.parametrize("option", ["width=0", "width=1.5", "depth=-1"])
def test_bad_model_option_values_are_one_line(runner, tmp_path, option):
    args = ["train", *TINY, "--model-option", option, "--out", str(tmp_path / "r")]
    assert "positive integer" in error_line(runner.invoke(main, args))


def test_probe_on_an_unbuildable_checkpoint_writes_nothing(runner, tmp_path):
    import torch

    from landscape.store import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    assert runner.invoke(main, ["train", *TINY, "--out", str(run)]).exit_code == 0
    good = load_checkpoint(run / "checkpoints" / "bn" / "step_0000006.pt")
    bad = tmp_path / "step_0000006.pt"
    save_checkpoint(bad, model=torch.nn.Linear(2, 2), step=6, spec=good.spec, config=good.config)
    out = tmp_path / "p.h5"
    line = error_line(runner.invoke(main, ["probe", "--checkpoint", str(bad), "--out", str(out)]))
    assert "cannot rebuild" in line and not out.exists()


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("group is a dataset", "/train/bn is a dataset, not a group"),
        ("newer schema", f"written with schema 9.0; this landscape reads schema {SCHEMA_VERSION}"),
        ("truncated", "cannot be opened as HDF5 (truncated or damaged?)"),
    ],
)
@pytest.mark.parametrize("command", ["plot training", "train --resume"])
def test_damaged_run_logs_are_one_line(runner, tmp_path, damage, needle, command):
    """Before: a group that is a dataset gave a traceback, a newer schema was read silently,
    and a truncated file was "open for writing by another process"."""
    import h5py
    import numpy as np

    run = tmp_path / "run"
    assert runner.invoke(main, ["train", *TINY, "--out", str(run)]).exit_code == 0
    log = run / "run.h5"
    if damage == "truncated":
        log.write_bytes(log.read_bytes()[:4000])
    else:
        with h5py.File(log, "a") as f:
            if damage == "newer schema":
                f.attrs["schema_version"] = "9.0"
            else:
                del f["train/bn"]
                f["train/bn"] = np.zeros(3)
    args = ["plot", "training", str(run)] if command == "plot training" else [
        "train", *TINY, "--out", str(run), "--resume"]  # fmt: skip
    if damage == "truncated" and command != "plot training":  # the output guard speaks first
        needle = "run.h5 holds a damaged HDF5 file, not a run log"
    assert needle in error_line(runner.invoke(main, args))


def _damage_log(log, damage):
    import h5py
    import numpy as np

    with h5py.File(log, "a") as f:
        if damage == "NaN step":
            steps = f["train/bn/step"][()].astype(float)
            steps[2] = np.nan
            del f["train/bn/step"]
            f["train/bn"].create_dataset("step", data=steps, maxshape=(None,))
        elif damage == "text column":
            del f["train/bn/loss"]
            f["train/bn"].create_dataset("loss", data=np.array([b"x"] * 6), maxshape=(None,))
        elif damage == "no /train":
            del f["train"]
        elif damage == "/train a dataset":
            del f["train"]
            f["train"] = np.zeros(3)
        elif damage == "config_json":
            f.attrs["config_json"] = "{x"
        elif damage == "huge schema":
            f.attrs["schema_version"] = "9" * 5000 + ".0"


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("NaN step", "/train/bn/step holds nan at row 2, not a step number: the file is damaged"),
        ("text column", "/train/bn/loss holds text, not numbers: the file is damaged"),
        ("no /train", "/train/bn holds 0 rows before step 6, where the checkpoint step_0000006"),
        ("/train a dataset", "/train is a dataset, not a group"),
        ("config_json", "its attribute config_json holds '{x', not a JSON object"),
        ("huge schema", "has schema_version '99999999999999999999...(5002 characters)', not"),
    ],
)
def test_train_resume_refuses_a_damaged_log_and_leaves_the_run(runner, tmp_path, damage, needle):
    """Before: a NaN step was dropped silently (exit 0), a run without /train "finished" with
    no training series, a text column passed (then the figure failed), a /train dataset gave
    "Unable to synchronously create group", "{x" a JSON parser's message and a 5000-digit
    schema version Python's "integer string conversion" limit."""
    run = tmp_path / "run"
    assert runner.invoke(main, ["train", *TINY, "--out", str(run)]).exit_code == 0
    _damage_log(run / "run.h5", damage)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    line = error_line(runner.invoke(main, ["train", *TINY, "--out", str(run), "--resume"]))
    assert needle in line and str(run / "run.h5") in line
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_train_resume_of_a_finished_run_prints_its_stored_numbers(runner, tmp_path):
    """Before: "bn: 6 steps, train loss nan", which reads like a divergence."""
    run = tmp_path / "run"
    first = runner.invoke(main, ["train", *TINY, "--out", str(run)])
    again = runner.invoke(main, ["train", *TINY, "--out", str(run), "--resume"])
    assert again.exit_code == 0 and "nan" not in again.output, again.output
    for v in ("bn", "plain"):
        numbers = next(ln for ln in first.output.splitlines() if ln.strip().startswith(f"{v}:"))
        stored = numbers.split("steps, ", 1)[1]
        assert f"{v}: already finished at step 6, nothing trained; {stored}" in again.output
