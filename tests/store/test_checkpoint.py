"""Checkpoint files: exact round trips, atomic writes, hostile and foreign inputs."""

from __future__ import annotations

import builtins
import dataclasses
import pickle
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from landscape import store as ck
from landscape.store import (
    CheckpointError,
    capture_rng,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    load_state_dict_file,
    restore_rng,
    safe_torch_load,
    save_checkpoint,
)

F64 = torch.float64
SPEC = {"name": "mlp", "bn": True, "input_shape": [1, 8, 8], "options": {"depth": 2}}
CONFIG = {"lr": 0.1, "steps": 10, "seed": 0, "note": None, "nan_ok": float("nan")}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))


def _draws() -> tuple[torch.Tensor, np.ndarray, list[float], float]:
    return (
        torch.randn(5),
        np.random.rand(5),
        [random.random() for _ in range(5)],
        random.gauss(0.0, 1.0),
    )


def _assert_same_draws(a, b) -> None:
    assert torch.equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2] and a[3] == b[3]


class _Evil:
    """Unpickling this calls ``open(marker, "w")``, i.e. creates the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_round_trip_model_optimizer_spec_config_rng(tmp_path):
    model = _model()
    model(torch.randn(8, 4)).sum().backward()  # moves BN running stats
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.step()
    path = checkpoint_path(tmp_path / "checkpoints" / "bn", 42)

    random.gauss(0.0, 1.0)  # leaves a cached gaussian in Python's state
    save_checkpoint(
        path, model=model, step=42, spec=SPEC, config=CONFIG, optimizer=opt, extra={"k": [1, 2]}
    )
    expected = _draws()

    loaded = load_checkpoint(path)
    assert loaded.path == path and loaded.step == 42
    assert loaded.spec == SPEC and loaded.extra == {"k": [1, 2]}
    assert loaded.config.keys() == CONFIG.keys() and np.isnan(loaded.config["nan_ok"])
    state = model.state_dict()
    assert loaded.model_state.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(loaded.model_state[k], v)
    assert loaded.optimizer_state is not None
    opt2 = torch.optim.SGD(_model().parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(loaded.optimizer_state)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]

    restore_rng(loaded.rng)
    _assert_same_draws(_draws(), expected)


def test_capture_restore_rng_in_memory_is_exact():
    state = capture_rng()
    first = _draws()
    restore_rng(state)
    _assert_same_draws(_draws(), first)


def test_spec_object_with_to_dict_and_tuples_become_lists(tmp_path):
    class Spec:
        def to_dict(self):
            return {"name": "vgg_small", "input_shape": (1, 8, 8)}

    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=0, spec=Spec(), config={})
    assert load_checkpoint(path).spec == {"name": "vgg_small", "input_shape": [1, 8, 8]}


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"lr": np.int64(3)}, r"config\['lr'\] is a numpy.int64"),
        ({"f": lambda x: x}, r"config\['f'\] is a builtins.function"),
        ({1: "a"}, "JSON keys must be str"),
        ({"nested": [{"p": object()}]}, r"config\['nested'\]\[0\]\['p'\]"),
    ],
)
def test_non_json_config_is_rejected_and_nothing_written(tmp_path, config, match):
    path = tmp_path / "c.pt"
    with pytest.raises(CheckpointError, match=match):
        save_checkpoint(path, model=_model(), step=0, spec=SPEC, config=config)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("step", [-1, 1.5, True])
def test_bad_step_is_rejected(tmp_path, step):
    with pytest.raises(ValueError, match="non-negative int"):
        save_checkpoint(tmp_path / "c.pt", model=_model(), step=step, spec={}, config={})


def test_atomic_write_leaves_no_temp_files(tmp_path):
    d = tmp_path / "deep" / "dir"
    for step in (0, 5):
        save_checkpoint(checkpoint_path(d, step), model=_model(), step=step, spec={}, config={})
    assert sorted(p.name for p in d.iterdir()) == ["step_0000000.pt", "step_0000005.pt"]


def test_failed_save_keeps_existing_checkpoint(tmp_path, monkeypatch):
    path = checkpoint_path(tmp_path, 7)
    save_checkpoint(path, model=_model(), step=7, spec=SPEC, config={})
    before = path.read_bytes()

    def boom(obj, f, *args, **kwargs):
        # Fail half-way through: whatever the save writes to is left truncated, so a
        # non-atomic save (straight to ``path``) would corrupt the existing checkpoint.
        if hasattr(f, "write"):
            f.write(b"partial")
        else:
            Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model=_model(), step=8, spec=SPEC, config={})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    monkeypatch.undo()
    assert load_checkpoint(path).step == 7


def test_evil_payload_works_under_plain_pickle(tmp_path):
    """Control: the payload really runs code when unpickled unsafely."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_Evil(str(marker)))).close()
    assert marker.exists()


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
@pytest.mark.parametrize("loader", [load_checkpoint, load_state_dict_file])
def test_malicious_pickle_is_refused_not_executed(tmp_path, writer, loader):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    payload = {"format": "landscape-checkpoint", "model_state": _Evil(str(marker))}
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"not allowed.*nothing in it was executed"):
        loader(path)
    assert not marker.exists()


def test_truncated_file_is_refused(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, model=_model(), step=1, spec={}, config={})
    data = good.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"not a landscape checkpoint.*truncated"):
        load_checkpoint(bad)


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", b""])
def test_non_torch_file_is_refused(tmp_path, content):
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a landscape checkpoint"):
        load_checkpoint(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_bare_state_dict_is_foreign_but_loads_as_weights(tmp_path):
    model = _model()
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"foreign checkpoint .*expected keys"):
        load_checkpoint(path)
    sd = load_state_dict_file(path)
    assert all(torch.equal(sd[k], v) for k, v in model.state_dict().items())


def test_load_state_dict_file_accepts_wrappers_and_our_format(tmp_path):
    model = _model()
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "w.pt")
    assert load_state_dict_file(tmp_path / "w.pt").keys() == model.state_dict().keys()
    save_checkpoint(tmp_path / "c.pt", model=model, step=0, spec={}, config={})
    assert load_state_dict_file(tmp_path / "c.pt").keys() == model.state_dict().keys()
    torch.save({"epoch": 3}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        load_state_dict_file(tmp_path / "x.pt")


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=0, spec={}, config={})
    obj = torch.load(path, weights_only=True)
    obj["format_version"] = ck.CHECKPOINT_FORMAT_VERSION + 1
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="upgrade landscape"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("step", 7, "it is named for step 300 but holds step 7"),
        ("step", "x", "its step is 'x', not a non-negative integer"),
        ("optimizer_state", {"state": 5}, "optimizer_state is not an optimizer's state_dict"),
        ("model_state", {"w": 5}, "model_state is not a dict of named tensors"),
        ("rng", 5, "rng is not a dict of generator states"),
    ],
)
def test_a_damaged_field_is_named_with_the_file(tmp_path, field, value, match):
    """Before: a checkpoint named for step 300 that held step 7 was resumed as step 300, and
    a damaged optimizer state ended in KeyError 'param_groups' (a traceback)."""
    path = checkpoint_path(tmp_path, 300)
    model = _model()
    save_checkpoint(path, model=model, step=300, spec={}, config={},
                    optimizer=torch.optim.SGD(model.parameters(), lr=0.1))  # fmt: skip
    obj = torch.load(path, weights_only=True)
    obj[field] = value
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=f"damaged checkpoint at {path}: {match}"):
        load_checkpoint(path)
    renamed = tmp_path / "weights.pt"  # a name without a step: any stored step is its own
    if field == "step" and value == 7:
        path.rename(renamed)
        assert load_checkpoint(renamed).step == 7


def test_list_checkpoints_sorted_and_ignores_other_files(tmp_path):
    for step in (100, 3, 20, 10_000_000):
        checkpoint_path(tmp_path, step).write_bytes(b"x")
    (tmp_path / ".step_0000050.pt.abc123.tmp").write_bytes(b"x")
    (tmp_path / "step_12.pt").write_bytes(b"x")
    (tmp_path / "notes.txt").write_bytes(b"x")
    found = list_checkpoints(tmp_path)
    assert [s for s, _ in found] == [3, 20, 100, 10_000_000]
    assert found[0][1] == tmp_path / "step_0000003.pt"
    assert list_checkpoints(tmp_path / "missing") == []


def test_checkpoint_sha256_is_stable(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert ck.checkpoint_sha256(path) == expected


def test_training_record_reads_what_the_trainer_stores(tmp_path: Path) -> None:
    """Every field of the record is a TrainConfig field, read back with its value."""
    from dataclasses import asdict, fields

    from landscape.train import TrainConfig

    config = TrainConfig(model="mlp", dataset="synthetic", data_options={"n": 64}, lr=0.3,
                         batch_size=16, seed=7, data_dir="somewhere")  # fmt: skip
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=0, spec=SPEC, config=config.to_dict())
    record = ck.TrainingRecord.of(load_checkpoint(path))
    assert {f.name for f in fields(record)} <= set(asdict(config))
    assert asdict(record) == {k: getattr(config, k) for k in asdict(record)}


def test_training_record_of_a_foreign_config(tmp_path: Path) -> None:
    """Missing settings are None (the reader asks for them); a wrong type is named."""
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=0, spec=SPEC, config={"note": "mine", "lr": 1})
    record = ck.TrainingRecord.of(load_checkpoint(path))
    assert (record.lr, record.dataset, record.batch_size, record.seed) == (1.0, None, None, 0)
    assert isinstance(record.lr, float) and record.data_options == {}
    save_checkpoint(path, model=_model(), step=0, spec=SPEC, config={"batch_size": "128"})
    with pytest.raises(CheckpointError, match="batch_size='128', which is not an integer"):
        ck.TrainingRecord.of(load_checkpoint(path))
    save_checkpoint(path, model=_model(), step=0, spec=SPEC, config={"lr": True})
    with pytest.raises(CheckpointError, match="lr=True, which is not a number"):
        ck.TrainingRecord.of(load_checkpoint(path))


def tiny(**spec) -> nn.Module:
    """A factory named by import path (``tests.store.test_checkpoint:tiny``)."""
    return nn.Linear(3, 2)


def no_weights(**spec) -> nn.Module:
    return nn.ReLU()


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("model", 5, "model=5, which is not a string"),
        ("dataset", 3, "dataset=3, which is not a string"),
        ("data_dir", ["d"], r"data_dir=\['d'\], which is not a string"),
        ("data_options", [1], r"data_options=\[1\], which is not a dict"),
        ("seed", "7", "seed='7', which is not an integer"),
        ("lr", "0.1", "lr='0.1', which is not a number"),
        ("batch_size", 1.5, "batch_size=1.5, which is not an integer"),
    ],
)
def test_training_record_names_each_field_of_the_wrong_type(tmp_path, key, value, what):
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=0, spec=SPEC, config={key: value})
    with pytest.raises(CheckpointError, match=f"its training config holds {what}: re-save"):
        ck.TrainingRecord.of(load_checkpoint(path))


def test_training_record_of_an_empty_config_is_all_defaults(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=0, spec=SPEC, config={})
    assert ck.TrainingRecord.of(load_checkpoint(path)) == ck.TrainingRecord()


def test_a_state_dict_saves_like_its_model_and_a_spec_must_be_a_dict(tmp_path):
    model = _model().double()
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=model.state_dict(), step=3, spec=SPEC, config={})
    loaded = load_checkpoint(path).model_state
    assert loaded.keys() == model.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match=r"spec must be a dict .*, got list"):
        save_checkpoint(path, model=model, step=3, spec=[1, 2], config={})


@pytest.mark.parametrize("field", ["spec", "extra"])
def test_a_value_that_is_not_json_is_named_by_its_field(tmp_path, field):
    fields = {"spec": SPEC, "config": {}, "extra": None, field: {"f": object()}}
    with pytest.raises(CheckpointError, match=rf"^{field}\['f'\] is a builtins\.object"):
        save_checkpoint(tmp_path / "c.pt", model=_model(), step=0, **fields)


def test_checkpoint_step_reads_the_name_and_else_the_file(tmp_path):
    named = checkpoint_path(tmp_path, 5)
    named.write_bytes(b"not read")  # the name says it all: the file is not opened
    assert ck.checkpoint_step(named) == 5
    other = tmp_path / "weights.pt"
    save_checkpoint(other, model=_model(), step=7, spec={}, config={})
    assert ck.checkpoint_step(other) == 7
    assert ck.checkpoint_step(str(other)) == 7


def test_map_location_places_the_tensors(tmp_path):
    """The meta device stands in for a GPU: a CPU machine has it too."""
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=0, spec={}, config={})
    assert {t.device.type for t in load_checkpoint(path, "meta").model_state.values()} == {"meta"}
    assert {t.device.type for t in load_checkpoint(path).model_state.values()} == {"cpu"}
    assert {t.device.type for t in load_state_dict_file(path, "meta").values()} == {"meta"}


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (
            {k: torch.zeros(1) for k in "gfedcba"},
            r"a dict with keys \['a', 'b', 'c', 'd', 'e'\] \(",
        ),
        ([1, 2], r"a list \("),
        (torch.zeros(2), r"a Tensor \("),
    ],
)
def test_a_foreign_file_says_what_it_holds(tmp_path, content, what):
    path = tmp_path / "w.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=f"foreign checkpoint at .*w.pt: {what}expected keys"):
        load_checkpoint(path)


def test_a_missing_key_is_named(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=0, spec={}, config={})
    obj = torch.load(path, weights_only=True)
    del obj["extra"], obj["rng"]
    torch.save(obj, path)
    with pytest.raises(
        CheckpointError, match=r"corrupt checkpoint at .*: missing keys \['rng', 'extra'\]"
    ):
        load_checkpoint(path)


@pytest.mark.parametrize("field", ["spec", "config", "extra"])
@pytest.mark.parametrize(
    ("value", "why"), [(5, "is not a JSON string"), ("[1]", "is not a JSON object")]
)
def test_a_json_field_that_is_not_a_json_object_is_named(tmp_path, field, value, why):
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=_model(), step=0, spec={}, config={})
    obj = torch.load(path, weights_only=True)
    obj[field] = value
    torch.save(obj, path)
    match = f"corrupt checkpoint at {re.escape(str(path))}: field '{field}' {why}"
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "opt",
    [
        {"state": {}},
        {"param_groups": [{"params": [0]}]},
        {"state": {}, "param_groups": [{"lr": 0.1}]},
    ],
)
def test_an_optimizer_state_without_its_parts_is_damaged(tmp_path, opt):
    path = checkpoint_path(tmp_path, 1)
    save_checkpoint(path, model=_model(), step=1, spec={}, config={})
    obj = torch.load(path, weights_only=True)
    obj["optimizer_state"] = opt
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="optimizer_state is not an optimizer's state_dict"):
        load_checkpoint(path)


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_build_model_rebuilds_a_registry_model_in_its_dtype_leaving_the_rng_alone(tmp_path):
    from landscape.models import ModelSpec

    spec = ModelSpec.from_dict(SPEC)
    model = spec.build(seed=3).double()
    path = tmp_path / "c.pt"
    save_checkpoint(path, model=model, step=0, spec=spec, config={})
    before = torch.get_rng_state()
    rebuilt = ck.build_model(load_checkpoint(path))
    assert torch.equal(torch.get_rng_state(), before)
    assert _same(rebuilt, model)
    assert {p.dtype for p in rebuilt.state_dict().values() if p.is_floating_point()} == {F64}
    x = torch.randn(4, 1, 8, 8, dtype=F64)
    assert torch.equal(rebuilt.eval()(x), model.eval()(x))


def test_build_model_runs_a_factory_of_the_file_only_when_trusted(tmp_path):
    path = tmp_path / "c.pt"
    model = tiny()
    save_checkpoint(path, model=model, step=0, spec={"name": "tests.store.test_checkpoint:tiny"},
                    config={})  # fmt: skip
    ckpt = load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"names its model by the import path .tests\.store"):
        ck.build_model(ckpt)
    assert _same(ck.build_model(ckpt, trust_factory=True), model)


def test_build_model_of_a_model_without_weights(tmp_path):
    path = tmp_path / "c.pt"
    spec = {"name": "tests.store.test_checkpoint:no_weights"}
    save_checkpoint(path, model=no_weights(), step=0, spec=spec, config={})
    assert isinstance(ck.build_model(load_checkpoint(path), trust_factory=True), nn.ReLU)


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_build_model_places_the_model_on_the_device(tmp_path):
    """The meta device stands in for a GPU; the weights keep their dtype."""
    path = tmp_path / "c.pt"
    spec = {"name": "tests.store.test_checkpoint:tiny"}
    save_checkpoint(path, model=tiny().double(), step=0, spec=spec, config={})
    ckpt = load_checkpoint(path)
    for built in (
        ck.build_model(ckpt, device="meta", trust_factory=True),
        ck.build_model(dataclasses.replace(ckpt, builder=tiny), device="meta"),
    ):
        assert {(p.device.type, p.dtype) for p in built.parameters()} == {("meta", F64)}


def test_a_plain_pickle_is_refused_with_our_message_alone(tmp_path):
    """torch warns about the pickle protocol of a file it then refuses; the refusal names the
    problem, so the warning is not passed on."""
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="is not a landscape checkpoint"):
            safe_torch_load(path, "cpu")
    assert [str(w.message) for w in escaped] == []
