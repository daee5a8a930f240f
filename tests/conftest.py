"""Shared fixtures. Tests run on the CPU; GPU and slow tests carry markers."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def digits():
    """The bundled digits dataset, loaded once per session."""
    from landscape.data import load_dataset

    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module, the previous count restored after it.

    Tiny tensors run faster on one thread, and two modules on a busy two-core machine do not
    oversubscribe it. A module that compares runs bit for bit with subprocesses pins them
    to one thread too (``OMP_NUM_THREADS=1``): the same float sums on both sides. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``, and name it in a module
    fixture that must run under it.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
