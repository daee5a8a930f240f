"""Santurkar et al. (2018) Fig. 3: internal covariate shift of BN and plain networks.

For layer i at step t on the step's batch: G = the gradient of layer i's weights, G' = the
same gradient after layers 1..i-1 have taken their update of step t (Definition 2.1,
science.md s. 1.2); the figure draws ||G - G'||_2 and cos(G, G') over training for two
layers, BN beside plain, for (a) the VGG and (b) the 25-layer deep linear network (DLN).
Santurkar et al. found BN networks' ICS similar or larger: ICS does not explain BN's benefit.

The layers: the paper's 5 and 10 of its VGG's 11 weight layers are shown at the same relative
depth in a network of another depth, round(k * depth / 11): layers 3 and 5 of the 6 of
``vgg_small``; the DLN is the paper's own (25 layers: 9 and 17). The update is the optimizer's
actual one (plain SGD here, so -lr * g), measured inline by the trainer (``ics_every``).

Presets (SGD without momentum, Glorot init; the DLN fits y = A x, A a 10x10 Gaussian
matrix, 1000 Gaussian points, full-batch gradient descent, in float64: at lr 1e-7 the
cosines differ from 1 by less than float32 resolves):
    tiny    vgg_small on digits, lr 0.1, 600 steps; DLN at lr 1e-7, 1000 steps
    paper   vgg11 on CIFAR-10, lr 0.1, 15,000 steps; DLN at lr 1e-7, 10,000 steps (a GPU)

Run:  .venv/bin/python scripts/fig3_ics.py [--preset tiny|paper] [--out DIR] [--seed N]
Writes OUT/vgg/ and OUT/dln/ (run.h5 with /ics/<variant>, checkpoints),
OUT/figures/fig3_ics_{vgg,dln}.png and OUT/config.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import _presets
from _presets import DLN_DATA, DLN_DTYPE

from landscape.figures import load_runs
from landscape.render import ics_figure
from landscape.train import TrainConfig

PRESETS = {
    "tiny": {"model": "vgg_small", "dataset": "digits", "lr": 0.1, "batch_size": 128,
             "steps": 600, "ics_every": 20, "dln_lr": 1e-7, "dln_steps": 1000,
             "dln_ics_every": 40},
    "paper": {"model": "vgg11", "dataset": "cifar10", "lr": 0.1, "batch_size": 128,
              "steps": 15_000, "ics_every": 100, "dln_lr": 1e-7, "dln_steps": 10_000,
              "dln_ics_every": 100},
}  # fmt: skip
PAPER_LAYERS = {"vgg": ((5, 10), 11), "dln": ((9, 17), 25)}  # Fig. 3's layers of each network


def dln_config(settings: dict, args: argparse.Namespace) -> TrainConfig:
    """The DLN of science.md s. 1.3, full-batch gradient descent (batch = the 1000 points)."""
    steps = settings["dln_steps"]
    return TrainConfig(
        model="dln", dataset="synthetic", data_options=DLN_DATA, dtype=DLN_DTYPE,
        lr=settings["dln_lr"], batch_size=DLN_DATA["n"], steps=steps,
        eval_every=max(1, steps // 20), ics_every=settings["dln_ics_every"], seed=args.seed,
        device=args.device,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    with _presets.session("fig3_ics", __doc__, PRESETS, argv) as s:
        p, a = s.settings, s.args
        _presets.check_data(p["dataset"], a.data_dir, a.download)
        vgg = s.train_config(ics_every=p["ics_every"])
        for name, config in (("vgg", vgg), ("dln", dln_config(p, a))):
            s.train(name, config)
            series = load_runs(s.out / name, "ics")
            depth = len(next(iter(series.values()))["layers"])
            (k1, k2), paper_depth = PAPER_LAYERS[name]
            chosen = [_presets.paper_layer(k, paper_depth, depth) for k in (k1, k2)]
            s.note(**{f"{name}_ics_layers": chosen})
            title = (
                f"Fig. 3: internal covariate shift, {config.model} on {config.dataset}, SGD lr "
                f"{config.lr:g} (layers {chosen[0]} and {chosen[1]} of {depth}; the paper's "
                f"{k1} and {k2} of {paper_depth})"
            )
            fig = ics_figure(series, layers=[k - 1 for k in chosen], title=title)
            s.figure(fig, f"fig3_ics_{name}")


if __name__ == "__main__":
    sys.exit(_presets.run(main))
