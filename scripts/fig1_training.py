"""Santurkar et al. (2018) Fig. 1: training of Standard vs Standard + BatchNorm networks.

(a, b) Training and held-out accuracy (and the loss) of the BN / plain pair at a few fixed
learning rates (the paper: 0.1 and 0.5); (c) the distribution of two layers' inputs over
training, BN beside plain, for each learning rate: the paper's point is that BN trains much
faster although its layers' input distributions do not look more stable.

The layers: the paper shows layers 3 and 11 of its VGG (11 weight layers). A network of
another depth shows the layers at the same relative depth, round(k * depth / 11): layers 2
and 6 of the 6 of ``vgg_small``; ``vgg11`` is the paper's. "Layer k's input" is what enters
its conv or linear layer: the previous block's output, after its BatchNorm and ReLU,
sampled on the step's own training batch (BN with batch statistics) every
``activations_every`` steps (``landscape.probes.activation_quantiles``; the bands are
TensorBoard's: min-max and the normal law's quantiles at +-0.5, 1, 1.5 std).

Presets (SGD without momentum, batch 128, Glorot init, no augmentation, as in the paper):
    tiny    vgg_small on the bundled 8x8 digits, 600 steps, lr 0.1 and 0.5
    paper   vgg11 (VGG-A) on CIFAR-10, 15,000 steps, lr 0.1 and 0.5 (a GPU; --data-dir)

Run:  .venv/bin/python scripts/fig1_training.py [--preset tiny|paper] [--out DIR] [--seed N]
Writes OUT/lr<lr>/ (run.h5, checkpoints), OUT/activations.h5, OUT/figures/fig1_*.png, and
OUT/config.json.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import _presets
import h5py
import numpy as np

from landscape import store
from landscape.figures import training_figure
from landscape.probes import ActivationResult, activation_quantiles
from landscape.render import activation_distributions
from landscape.train import TrainConfig

PRESETS = {
    "tiny": {"model": "vgg_small", "dataset": "digits", "lrs": [0.1, 0.5], "batch_size": 128,
             "steps": 600, "eval_every": 25, "activations_every": 20},
    "paper": {"model": "vgg11", "dataset": "cifar10", "lrs": [0.1, 0.5], "batch_size": 128,
              "steps": 15_000, "eval_every": 500, "activations_every": 250},
}  # fmt: skip
PAPER_LAYERS, PAPER_DEPTH = (3, 11), 11  # Fig. 1c's layers of the paper's VGG
ACTIVATIONS_FILE = "activations.h5"
COLUMNS = {
    "step": "training step (the weights before its update), on its own training batch",
    "values": "(T, L, Q): quantiles of every input value of each layer (attrs: layers, quantiles)",
    "mean": "(T, L): mean of the layer's input values",
    "std": "(T, L): standard deviation of the layer's input values",
}


class ActivationLog:
    """A training hook: the layers' input quantiles every ``every`` steps, per variant."""

    def __init__(self, every: int):
        self.every = every
        self.rows: dict[str, list[tuple[int, ActivationResult]]] = {}

    def __call__(self, variant, step, model, loss_fn, batch, base) -> None:
        if step % self.every == 0:
            result = activation_quantiles(model, loss_fn, batch)
            self.rows.setdefault(variant, []).append((step, result))

    def write(self, f: h5py.File, group: str) -> None:
        for variant, rows in self.rows.items():
            g = f.require_group(f"{group}/{variant}")
            first = rows[0][1]
            store.append_rows(
                g,
                step=np.array([s for s, _ in rows]),
                values=np.stack([r.values for _, r in rows]),
                mean=np.stack([r.mean for _, r in rows]),
                std=np.stack([r.std for _, r in rows]),
            )
            store.describe_datasets(g, COLUMNS)
            store.write_attrs(g, {"layers": first.layers, "quantiles": first.quantiles.tolist(),
                                  "bn_mode": first.bn_mode})  # fmt: skip


def read_activations(path: Path, group: str) -> dict[str, dict]:
    with h5py.File(path, "r") as f:
        return {v: {**store.read_series(g), **store.read_attrs(g)} for v, g in f[group].items()}


def main(argv: Sequence[str] | None = None) -> None:
    with _presets.session("fig1_training", __doc__, PRESETS, argv) as s:
        p, a = s.settings, s.args
        _presets.check_data(p["dataset"], a.data_dir, a.download)
        logs: dict[str, ActivationLog] = {}
        runs = []
        for lr in p["lrs"]:
            name = f"lr{lr:g}"
            config = TrainConfig(
                model=p["model"], dataset=p["dataset"], data_dir=a.data_dir,
                download=a.download, lr=lr, batch_size=p["batch_size"], steps=p["steps"],
                eval_every=p["eval_every"], seed=a.seed, device=a.device,
            )  # fmt: skip
            logs[name] = ActivationLog(p["activations_every"])
            s.train(name, config, hooks=[logs[name]])
            runs.append(s.out / name)
        target = s.out / ACTIVATIONS_FILE
        with store.edit(target, fresh=True) as f:
            store.write_provenance(f, store.provenance(s.settings, device=str(s.device)))
            for name, log in logs.items():
                log.write(f, name)
        s.figure(training_figure(runs), "fig1_training")
        for name in logs:
            series = read_activations(target, name)
            depth = len(next(iter(series.values()))["layers"])
            chosen = [_presets.paper_layer(k, PAPER_DEPTH, depth) for k in PAPER_LAYERS]
            names = [str(series["bn"]["layers"][k - 1]) for k in chosen]
            titles = {n: f"input of layer {k} of {depth} ({n})" for n, k in zip(names, chosen)}
            s.note(activation_layers={"chosen": chosen, "names": names})
            title = (
                f"Fig. 1c: layer inputs over training, {p['model']} on {p['dataset']}, lr "
                f"{name.removeprefix('lr')} (layers {chosen[0]} and {chosen[1]} of {depth} stand "
                f"for the paper's {PAPER_LAYERS[0]} and {PAPER_LAYERS[1]} of {PAPER_DEPTH})"
            )
            fig = activation_distributions(series, layers=names, layer_titles=titles, title=title)
            s.figure(fig, f"fig1_activations_{name}")


if __name__ == "__main__":
    sys.exit(_presets.run(main))
