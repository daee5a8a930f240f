"""A tiny init-scale sweep (a few steps of a small MLP on the digits), shared by the tests of
the sweep, its file, its figures and its command."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from landscape.studies import SweepConfig, default_train

#: Two scales x two activations x two seeds of a 2-layer MLP, 8 steps: a second or two.
TINY = SweepConfig(
    scales=[0.5, 4.0],
    activations=["tanh", "relu"],
    seeds=[0, 1],
    grad_steps=3,
    train=replace(default_train(), model="mlp", model_options={"depth": 2, "width": 16},
                  steps=8, batch_size=32, probe_every=2, probe_count=3, device="cpu"),
)  # fmt: skip
#: The same on the command line.
TINY_ARGS = ["--scales", "0.5,4", "--activation", "tanh,relu", "--seeds", "0,1",
             "--grad-steps", "3", "--model", "mlp", "--model-option", "depth=2",
             "--model-option", "width=16", "--steps", "8", "--batch-size", "32",
             "--probe-every", "2", "--device", "cpu", "-q"]  # fmt: skip


def tiny_sweep(path: Path, config: SweepConfig = TINY, **kwargs) -> Path:
    from landscape.studies import init_scale_sweep

    return init_scale_sweep(config, path, **kwargs)
