"""Shared fixtures. Tests run on the CPU; GPU and slow tests carry markers."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def digits():
    """The bundled digits dataset, loaded once per session."""
    from landscape.data import load_dataset

    return load_dataset("digits", seed=0)
