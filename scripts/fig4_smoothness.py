"""Santurkar et al. (2018) Fig. 4: the loss landscape along the gradient over training (VGG).

At step t, with g the gradient of the step's own training batch, for step sizes eta in
lr x [1/2, 4] (8 values, linear; science.md s. 1.1) the probe records
    (a) loss variation           L(theta - eta g), drawn as the band min..max over eta
    (b) gradient predictiveness  ||grad L(theta - eta g) - g||_2, the band over eta
    (c) effective beta-smoothness  max over eta of ||grad L(theta - eta g) - g|| / ||eta g||
for the BN and the plain network of a fair pair (same initial weights where shared, same
batches), BN with batch statistics. Santurkar et al. found all three lower with BN.

The paper probed at every step; the presets probe every ``probe_every`` steps (cost: 9
forward+backward passes per probe and network).

Presets (SGD without momentum, lr 0.1, batch 128, Glorot init, no augmentation):
    tiny    vgg_small on the bundled 8x8 digits, 600 steps, probes every 10
    paper   vgg11 (VGG-A) on CIFAR-10, 15,000 steps, probes every 10 (a GPU; --data-dir)

Run:  .venv/bin/python scripts/fig4_smoothness.py [--preset tiny|paper] [--out DIR] [--seed N]
Writes OUT/vgg/ (run.h5 with /probe/<variant>, checkpoints),
OUT/figures/fig4_gradient_landscape.png and OUT/config.json.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import _presets

from landscape.figures import load_runs
from landscape.render import gradient_landscape

PRESETS = {
    "tiny": {"model": "vgg_small", "dataset": "digits", "lr": 0.1, "batch_size": 128,
             "steps": 600, "probe_every": 10},
    "paper": {"model": "vgg11", "dataset": "cifar10", "lr": 0.1, "batch_size": 128,
              "steps": 15_000, "probe_every": 10},
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    with _presets.session("fig4_smoothness", __doc__, PRESETS, argv) as s:
        p, a = s.settings, s.args
        _presets.check_data(p["dataset"], a.data_dir, a.download)
        config = s.train_config(probe_every=p["probe_every"], probe_direction="gradient",
                                probe_bn_mode="train")  # fmt: skip
        s.train("vgg", config)
        title = (
            f"Fig. 4: along the gradient, {config.model} on {config.dataset}, SGD lr "
            f"{config.lr:g}, batch {config.batch_size}, seed {config.seed}"
        )
        s.figure(gradient_landscape(load_runs(s.out / "vgg", "probe"), title=title),
                 "fig4_gradient_landscape")  # fmt: skip


if __name__ == "__main__":
    sys.exit(_presets.run(main))
