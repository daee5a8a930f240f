"""Li et al. (2018)-style 2-D loss contours: BN vs plain, and skip vs no skip connections.

Around each trained network theta, f(a, b) = L(theta + a d1 + b d2) on [-1, 1]^2 with two
Gaussian directions, filter-normalised (each filter of d scaled to the norm of theta's
filter), biases and BN parameters left out ("ignore biasbn"), BN with its running
statistics (Li et al.'s choice), the training loss over a fixed seeded subset of the
training set (science.md s. 3). Two figures, each pair on one colour scale and the same
contour levels:
  (a) a VGG with and without BatchNorm, trained as a fair pair (Santurkar et al.'s setup);
  (b) ResNet-20 (with BN) with and without its skip connections (Li et al.'s
      "ResNet-20-noshort": ``resnet20 --model-option skip=false``), each trained alone with
      Li et al.'s recipe: SGD with momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 divided
      by 10 at 50 %, 75 % and 92 % of training (their epochs 150, 225, 275 of 300).
The trainer has no data augmentation (Li et al. used random crops and flips).

Presets:
    tiny    8x8 digits; vgg_small pair 600 steps, 21x21 grid; ResNet-20s 300 steps, 15x15
            grid; the loss over 1000 (VGG) / 500 (ResNet) training examples
    paper   CIFAR-10; vgg11 pair 15,000 steps; ResNet-20s 117,300 steps (300 epochs);
            51x51 grids (Li et al.'s) over 10,000 training examples (Li et al.: all 50,000)

Run:  .venv/bin/python scripts/li_contours.py [--preset tiny|paper] [--out DIR] [--seed N]
Writes OUT/vgg/, OUT/resnet20/, OUT/resnet20_noskip/ (run.h5, checkpoints),
OUT/slices/*.h5, OUT/figures/li_{bn_vs_plain,skip_vs_noskip}.png and OUT/config.json.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import _presets

from landscape.figures import compare_figure
from landscape.slices import SliceConfig, slice_checkpoint
from landscape.store import checkpoint_dir, checkpoint_path
from landscape.train import TrainConfig

PRESETS = {
    "tiny": {"model": "vgg_small", "dataset": "digits", "lr": 0.1, "batch_size": 128,
             "steps": 600, "grid": 21, "examples": 1000, "resnet_steps": 300,
             "resnet_milestones_at": [150, 225, 275], "resnet_grid": 15,
             "resnet_examples": 500},
    "paper": {"model": "vgg11", "dataset": "cifar10", "lr": 0.1, "batch_size": 128,
              "steps": 15_000, "grid": 51, "examples": 10_000, "resnet_steps": 117_300,
              "resnet_milestones_at": [58_650, 87_975, 107_525], "resnet_grid": 51,
              "resnet_examples": 10_000},
}  # fmt: skip


def final_slice(s: _presets.Session, run: str, variant: str, grid: int, examples: int) -> Path:
    """A random filter-normalised plane around the run's final checkpoint of ``variant``."""
    steps = s.record["runs"][run]["steps"]
    ckpt = checkpoint_path(checkpoint_dir(s.out / run, variant), steps)
    axis = f"-1:1:{grid}"
    config = SliceConfig(kind="random", x=axis, y=axis, seed=s.args.seed, bn_mode="eval",
                         examples=examples, device=s.args.device)  # fmt: skip
    s.record.setdefault("slices", {})[f"{run}/{variant}"] = asdict(config)
    target = s.out / "slices" / f"{run}_{variant}_random_plane.h5"
    slice_checkpoint(ckpt, target, config, overwrite=s.args.overwrite)
    return target


def main(argv: Sequence[str] | None = None) -> None:
    with _presets.session("li_contours", __doc__, PRESETS, argv) as s:
        p, a = s.settings, s.args
        _presets.check_data(p["dataset"], a.data_dir, a.download)
        common = {"dataset": p["dataset"], "data_dir": a.data_dir, "download": a.download,
                  "batch_size": p["batch_size"], "seed": a.seed, "device": a.device}  # fmt: skip
        vgg = TrainConfig(model=p["model"], lr=p["lr"], steps=p["steps"],
                          eval_every=max(1, p["steps"] // 20), **common)  # fmt: skip
        s.train("vgg", vgg)
        pair = (final_slice(s, "vgg", "bn", p["grid"], p["examples"]),
                final_slice(s, "vgg", "plain", p["grid"], p["examples"]))  # fmt: skip
        fig, _ = compare_figure(pair, ("Standard + BatchNorm", "Standard"), "contour", None, None)
        s.figure(fig, "li_bn_vs_plain")

        steps = p["resnet_steps"]
        resnets = []
        for name, skip in (("resnet20", True), ("resnet20_noskip", False)):
            config = TrainConfig(
                model="resnet20", model_options={"skip": skip}, bn="bn", optimizer="momentum",
                momentum=0.9, weight_decay=5e-4, lr=p["lr"], steps=steps,
                lr_milestones=p["resnet_milestones_at"], lr_gamma=0.1,
                eval_every=max(1, steps // 20), **common,
            )  # fmt: skip
            s.train(name, config)
            resnets.append(final_slice(s, name, "bn", p["resnet_grid"], p["resnet_examples"]))
        labels = ("ResNet-20", "ResNet-20, no skip connections")
        fig, _ = compare_figure((resnets[0], resnets[1]), labels, "contour", None, None)
        s.figure(fig, "li_skip_vs_noskip")


if __name__ == "__main__":
    sys.exit(_presets.run(main))
