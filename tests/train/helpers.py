"""Helpers shared by the training tests: a tiny run of the trainer."""

from __future__ import annotations

TINY = dict(
    model="mlp",
    model_options={"depth": 2, "width": 32},
    steps=30,
    batch_size=64,
    eval_every=10,
    checkpoint_every=10,
    device="cpu",
)
