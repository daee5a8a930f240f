"""Provenance and canonical JSON on every HDF5 file."""

from __future__ import annotations

import dataclasses
import json
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
