"""Fixtures of the store tests: an empty HDF5 file, open for writing."""

from __future__ import annotations

import h5py
import pytest


@pytest.fixture
def h5(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        yield f
