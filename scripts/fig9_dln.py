"""Santurkar et al. (2018) Fig. 9 (Appendix A.2.2): Fig. 4's probes for the deep linear network.

The deep linear network (science.md s. 1.3): 25 square 10x10 linear layers without biases
(BN after each but the last in the BN variant) fit y = A x, A a 10x10 Gaussian matrix, on
1000 Gaussian points, by full-batch gradient descent at lr 1e-6. Along the full-batch
gradient g, for step sizes eta in lr x [1/100, 30] (8 values, log spaced; the paper's DLN
grid), the probe records the loss band, the gradient change ||grad L(theta - eta g) - g||
and the effective beta-smoothness (max over eta of that change / ||eta g||), BN beside plain.

In float64: at eta = 1e-8 the gradient change is below what float32 resolves. The gradient
panels are drawn on log axes (the two networks differ by orders of magnitude).

Presets:
    tiny    1000 steps (the first tenth of the paper's run), probes every 20
    paper   10,000 steps, probes every 20

Run:  .venv/bin/python scripts/fig9_dln.py [--preset tiny|paper] [--out DIR] [--seed N]
Writes OUT/dln/ (run.h5 with /probe/<variant>, checkpoints),
OUT/figures/fig9_dln_gradient_landscape.png and OUT/config.json.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import _presets
from _presets import DLN_DATA, DLN_DTYPE

from landscape.figures import load_runs
from landscape.render import gradient_landscape

PRESETS = {
    "tiny": {"lr": 1e-6, "steps": 1000, "probe_every": 20},
    "paper": {"lr": 1e-6, "steps": 10_000, "probe_every": 20},
}


def main(argv: Sequence[str] | None = None) -> None:
    with _presets.session("fig9_dln", __doc__, PRESETS, argv) as s:
        p = s.settings
        config = s.train_config(
            model="dln", dataset="synthetic", data_options=DLN_DATA, dtype=DLN_DTYPE,
            batch_size=DLN_DATA["n"], probe_every=p["probe_every"], probe_direction="gradient",
        )  # fmt: skip
        s.train("dln", config)
        grid = config.step_sizes()
        title = (
            f"Fig. 9: deep linear network (25 layers, y = A x, full-batch GD, lr {config.lr:g}), "
            f"along the gradient, η = lr × [{grid.low:g}, {grid.high:g}], {grid.spacing}-spaced"
        )
        fig = gradient_landscape(load_runs(s.out / "dln", "probe"), title=title, log_gradient=True)
        s.figure(fig, "fig9_dln_gradient_landscape")


if __name__ == "__main__":
    sys.exit(_presets.run(main))
