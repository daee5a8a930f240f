"""Provenance and canonical JSON on every HDF5 file."""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from landscape.store import (
    PROVENANCE_KEYS,
    SCHEMA_VERSION,
    dumps,
    provenance,
    read_provenance,
    write_provenance,
)

# the module (the package's name `provenance` is its function)
provenance_module = importlib.import_module("landscape.store.provenance")


def test_provenance_keys_and_config_json():
    config = {"lr": 0.1, "shape": (1, 8, 8), "seed": np.int64(3), "z": {"b": 1, "a": 2}}
    prov = provenance(config, device="cuda:0")
    assert tuple(prov) == PROVENANCE_KEYS
    assert all(isinstance(v, str) for v in prov.values())
    assert prov["schema_version"] == SCHEMA_VERSION and prov["package"] == "landscape"
    assert prov["device"] == "cuda:0" and prov["git_commit"]
    assert json.loads(prov["config_json"]) == {
        "lr": 0.1,
        "shape": [1, 8, 8],
        "seed": 3,
        "z": {"a": 2, "b": 1},
    }
    assert prov["created"].endswith("+00:00")
    assert provenance()["config_json"] == "{}" and provenance()["device"] == "cpu"


def test_provenance_rejects_unserialisable_config():
    with pytest.raises(ValueError, match="config cannot be recorded as JSON"):
        provenance({"f": object()})


def test_dumps_is_canonical_and_names_what_failed(tmp_path):
    @dataclasses.dataclass
    class Cfg:
        z: int = 1
        path: Path = tmp_path

    assert dumps(Cfg(), "config") == json.dumps({"path": str(tmp_path), "z": 1})
    assert dumps({"b": np.float32(0.5), "a": np.arange(2)}, "meta") == '{"a": [0, 1], "b": 0.5}'
    with pytest.raises(ValueError, match=r"^meta cannot be recorded as JSON"):
        dumps({"f": object()}, "meta")


def test_write_read_provenance(h5):
    prov = provenance({"a": 1})
    write_provenance(h5, prov)
    h5.attrs["status"] = "running"  # not provenance: not returned
    assert read_provenance(h5) == prov


class _FakeGit:
    """Stands in for ``subprocess.run``: records the call, then answers or raises."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def __call__(self, args, **kwargs):
        self.calls.append((args, kwargs))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    "answer, commit",
    [
        (subprocess.CompletedProcess([], 0, stdout="0123abc\n", stderr=""), "0123abc"),
        (subprocess.CompletedProcess([], 128, stdout="0123abc\n", stderr="fatal"), "unknown"),
        (subprocess.CompletedProcess([], 0, stdout=" \n", stderr=""), "unknown"),
        (FileNotFoundError("git"), "unknown"),
        (subprocess.TimeoutExpired("git", 2.0), "unknown"),
    ],
    ids=["a commit", "not a repository", "no output", "no git", "git hangs"],
)
def test_the_commit_is_heads_or_unknown_never_an_error(monkeypatch, answer, commit):
    fake = _FakeGit(answer)
    monkeypatch.setattr(provenance_module.subprocess, "run", fake)
    git_commit = provenance_module._git_commit
    git_commit.cache_clear()  # asked once per process: the answer is cached
    try:
        assert git_commit() == commit
        assert git_commit() == commit
    finally:
        git_commit.cache_clear()  # the real answer for the tests after this one
    ((args, kwargs),) = fake.calls
    assert args == ["git", "rev-parse", "HEAD"]
    assert kwargs == {
        "cwd": Path(provenance_module.__file__).resolve().parent,  # the package's repository
        "capture_output": True,
        "text": True,
        "timeout": provenance_module._GIT_TIMEOUT_S,
        "check": False,
    }
    assert 0 < provenance_module._GIT_TIMEOUT_S <= 10


def test_versions_are_the_running_ones_and_a_source_tree_says_unknown(monkeypatch):
    import torch

    prov = provenance()
    assert prov["torch_version"] == str(torch.__version__)
    assert prov["package_version"] == importlib.metadata.version("landscape")

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert provenance_module.package_version() == "0+unknown"
