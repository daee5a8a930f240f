"""``capture_rng`` / ``restore_rng``: every generator's exact state, and the failure paths
(a malformed state restores nothing; CUDA states without their devices only warn)."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch

from landscape.store import CheckpointError, capture_rng, restore_rng
from landscape.store import rng as rng_module


def draws() -> tuple:
    """One draw from each generator, the cached Gaussians included."""
    return (
        torch.randn(3).tolist(),
        np.random.standard_normal(3).tolist(),  # odd count: NumPy caches the pair's second
        random.gauss(0.0, 1.0),  # Python's gauss caches one too
        random.random(),
    )


def test_the_cached_gaussians_come_back(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("no CUDA to ask"))
    while random.getstate()[2] is None:  # a call caches or uses up the pair's second
        random.gauss(0.0, 1.0)
    while not np.random.get_state(legacy=True)[3]:
        np.random.standard_normal(1)
    state = capture_rng()
    assert state["numpy"]["has_gauss"] == 1 and state["python"][2] is not None
    assert state["cuda"] == []
    keys = state["numpy"]["keys"]  # int64: torch before 2.3 has no uint32 tensors to store
    assert keys.dtype == torch.int64 and keys.shape == (624,)
    first = draws()
    restore_rng(state)
    assert draws() == first


@pytest.mark.parametrize(
    "break_it",
    [
        lambda s: s.pop("python"),
        lambda s: s.pop("torch"),
        lambda s: s["numpy"].pop("cached_gaussian"),
        lambda s: s.update(python=None),
        lambda s: s["numpy"].update(pos="x"),
    ],
    ids=["no python", "no torch", "no cached gaussian", "python None", "pos not a number"],
)
def test_a_malformed_state_is_refused_and_restores_nothing(break_it):
    state = capture_rng()
    break_it(state)
    before = capture_rng()
    refused = r"^malformed RNG state .*pass the dict returned by capture_rng\(\)$"
    with pytest.raises(CheckpointError, match=refused):
        restore_rng(state)
    expected = draws()
    restore_rng(before)
    assert draws() == expected  # no generator was touched by the refused restore


def test_cuda_states_without_cuda_warn_and_the_cpu_is_still_restored(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *a: pytest.fail("no CUDA to set"))
    state = capture_rng() | {"cuda": [torch.zeros(16, dtype=torch.uint8)] * 2}
    first = draws()
    with caplog.at_level(logging.WARNING, logger=rng_module.__name__):
        restore_rng(state)
    assert draws() == first
    assert caplog.messages == ["checkpoint holds 2 CUDA RNG states but CUDA is unavailable"]


@pytest.mark.parametrize("devices, warned", [(1, True), (2, False), (3, True)])
def test_cuda_states_go_to_the_devices_present_in_order(monkeypatch, caplog, devices, warned):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: devices)
    set_states: list[tuple[list[int], int]] = []
    set_one = lambda s, i: set_states.append((s.tolist(), i))  # noqa: E731
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_one)
    saved = [torch.full((4,), 7, dtype=torch.uint8), torch.full((4,), 9, dtype=torch.uint8)]
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved)
    state = capture_rng()
    assert state["cuda"] == saved
    with caplog.at_level(logging.WARNING, logger=rng_module.__name__):
        restore_rng(state)
    assert set_states == [([7] * 4, 0), ([9] * 4, 1)][:devices]
    message = f"checkpoint holds 2 CUDA RNG states, {devices} devices visible"
    assert caplog.messages == ([message] if warned else [])


def test_a_state_without_cuda_states_sets_no_device(monkeypatch):
    state = capture_rng()
    del state["cuda"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *a: pytest.fail("nothing to set"))
    restore_rng(state)
