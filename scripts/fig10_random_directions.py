"""Santurkar et al. (2018) Fig. 10 (Appendix A.2.2), as read here: Fig. 4's probes along a
random direction and at a larger learning rate (VGG).

How we read Fig. 10. The appendix that holds it was not at hand while this was written; what
the project records of it (docs/science.md s. 1.1) is that Figs. 9-10 extend Section 3.2's
probes and that "the paper notes the same behaviour along random directions". So this script
repeats Fig. 4's probes where Fig. 4 does not go:
  * along a random direction d instead of the gradient (lr 0.1 and 0.5): one Gaussian
    direction drawn once from the seed, rescaled at every probe to ||d|| = ||g|| so that a
    step size moves as far as along the gradient (``gradient_probe(direction="random")``);
    "gradient predictiveness" is then ||grad L(theta - eta d) - g||;
  * along the gradient at lr 0.5, the paper's other learning rate (Fig. 4 itself is lr 0.1:
    ``fig4_smoothness.py``).
Each run also gets the figure ``landscape plot santurkar`` calls Fig. 10: the gradient change
against the step size, one curve per probed training step. If the paper's Fig. 10 is another
view of these probes, the numbers for it are in the run files (``/probe/<variant>``).

The step sizes are the paper's VGG grid, lr x [1/2, 4] (8 values, linear).

Presets (SGD without momentum, batch 128, Glorot init):
    tiny    vgg_small on the bundled 8x8 digits, 600 steps, probes every 10
    paper   vgg11 (VGG-A) on CIFAR-10, 15,000 steps, probes every 10 (a GPU; --data-dir)

Run:  .venv/bin/python scripts/fig10_random_directions.py [--preset tiny|paper] [--out DIR]
Writes OUT/<direction>_lr<lr>/ (run.h5, checkpoints), OUT/figures/fig10_*.png and
OUT/config.json.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import _presets

from landscape.figures import load_runs
from landscape.render import gradient_distance_vs_step, gradient_landscape

PRESETS = {
    "tiny": {"model": "vgg_small", "dataset": "digits", "batch_size": 128, "steps": 600,
             "probe_every": 10},
    "paper": {"model": "vgg11", "dataset": "cifar10", "batch_size": 128, "steps": 15_000,
              "probe_every": 10},
}  # fmt: skip
#: (direction, lr) of each run: Fig. 4 (gradient, 0.1) is fig4_smoothness.py.
RUNS = (("random", 0.1), ("random", 0.5), ("gradient", 0.5))


def main(argv: Sequence[str] | None = None) -> None:
    with _presets.session("fig10_random_directions", __doc__, PRESETS, argv) as s:
        p, a = s.settings, s.args
        _presets.check_data(p["dataset"], a.data_dir, a.download)
        s.note(runs_direction_lr=RUNS)
        for direction, lr in RUNS:
            name = f"{direction}_lr{lr:g}"
            config = s.train_config(lr=lr, probe_every=p["probe_every"],
                                    probe_direction=direction)  # fmt: skip
            s.train(name, config)
            probes = load_runs(s.out / name, "probe")
            along = "a random direction d (||d|| = ||∇L||)" if direction == "random" else (
                "the gradient")  # fmt: skip
            title = (f"Along {along}: {config.model} on {config.dataset}, SGD lr {lr:g}, "
                     f"seed {a.seed}")  # fmt: skip
            s.figure(gradient_landscape(probes, title=title), f"fig10_{name}_landscape")
            s.figure(gradient_distance_vs_step(probes), f"fig10_{name}_gradient_distance")


if __name__ == "__main__":
    sys.exit(_presets.run(main))
