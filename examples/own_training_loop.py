"""Santurkar et al.'s gradient probes inside your own plain PyTorch training loop.

Trains a small MLP with and without BatchNorm on the bundled 8x8 digits with an ordinary
SGD loop. ``landscape.ProbeCallback`` probes the loss along the gradient every few steps
(before ``optimizer.step()``) and ``landscape.H5Sink`` writes one row per probe to
``OUT/probes.h5`` (groups ``/probe/bn`` and ``/probe/plain``). The script then draws
Santurkar et al.'s Fig. 4 from that file with the pure renderer
``landscape.render.gradient_landscape``.

Run (about 10 s on 2 CPU cores), then redraw Figs. 4 and 10 from the file with the CLI:

    python examples/own_training_loop.py --out DIR
    landscape plot santurkar DIR/probes.h5 --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from landscape import H5Sink, ProbeCallback, StepSizes, batch_indices, load_dataset
from landscape.render import gradient_landscape, save_figure
from landscape.store import open_run, read_series

LR, BATCH, STEPS, PROBE_EVERY = 0.1, 128, 150, 10


def mlp(bn: bool, hidden: int = 64) -> nn.Module:
    """Your own network: 64 pixels -> two hidden layers -> 10 classes."""
    norm = nn.BatchNorm1d if bn else nn.Identity
    return nn.Sequential(
        nn.Flatten(),
        *(nn.Linear(64, hidden), norm(hidden), nn.ReLU()),
        *(nn.Linear(hidden, hidden), norm(hidden), nn.ReLU()),
        nn.Linear(hidden, 10),
    )


def train(variant: str, probes: Path) -> None:
    data = load_dataset("digits")
    torch.manual_seed(0)  # the same initial weights for both variants
    model = mlp(bn=variant == "bn")
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    probe = ProbeCallback(PROBE_EVERY, StepSizes.vgg(LR), sink=H5Sink(probes, variant))
    for step in range(STEPS + 1):
        idx = batch_indices(len(data.x_train), BATCH, step, seed=0)
        x, y = data.x_train[idx], data.y_train[idx]
        probe(step, model, F.cross_entropy, (x, y))  # before the update; model left as found
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_out/own_loop"))
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    probes = out / "probes.h5"
    probes.unlink(missing_ok=True)  # H5Sink refuses to append a second run's rows
    for variant in ("bn", "plain"):
        train(variant, probes)

    with open_run(probes) as f:  # one row per probed step: step, loss (T, K), beta (T,) ...
        runs = {v: read_series(f[f"probe/{v}"]) for v in ("bn", "plain")}
    fig = gradient_landscape(runs, title="Your own loop: MLP on digits, SGD lr 0.1")
    for path in save_figure(fig, out / "fig4_gradient_landscape", ["png"]):
        print(f"wrote {path}")
    print(f"probes in {probes}; redraw with: landscape plot santurkar {probes} --out {out}")


if __name__ == "__main__":
    main()
