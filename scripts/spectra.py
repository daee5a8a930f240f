"""Hessian spectra over training, BN vs plain (Ghorbani et al. 2019; Yao et al. 2020).

Trains a BN / plain pair with checkpoints at ``checkpoints_at`` and takes, at each, the
Hessian of the mean training loss over the first ``examples`` training examples (BN with
batch statistics, batches of 256; science.md s. 4): the top eigenvalues (Lanczos,
algebraically largest), the trace (Hutch++), the curvature along the gradient
g^T H g / ||g||^2 and the spectral density (stochastic Lanczos quadrature). Figures: the
eigenvalues, trace and curvature against the training step, BN and plain on the same axes
(beside the inline probes' effective beta, Santurkar et al.'s Theorem 4.2 relates the two),
and the two densities side by side at every checkpoint. Ghorbani et al. found large
isolated top eigenvalues without BN that BN removes; at initialisation BN can be the rougher
one (Yang et al. 2019), so the whole run is shown, not one point.

Presets (SGD without momentum, lr 0.1, batch 128, Glorot init):
    tiny    vgg_small on the bundled 8x8 digits, 400 steps, Hessians at steps 0, 100, 200,
            400 on 256 examples: top 3, trace to 10 % (at most 100 products), density
            with 2 probe vectors x 30 Lanczos steps
    paper   vgg11 (VGG-A) on CIFAR-10, 15,000 steps, Hessians at 0, 500, 1000, 2000, 5000,
            10,000, 15,000 on 2048 examples: top 5, trace to 5 % (at most 200), density
            4 x 60 (a GPU; --data-dir)

Run:  .venv/bin/python scripts/spectra.py [--preset tiny|paper] [--out DIR] [--seed N]
Writes OUT/vgg/ (run.h5, checkpoints, hessian.h5), OUT/figures/hessian_*.png and
OUT/config.json.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict

import _presets

from landscape.curvature import HessianConfig, hessian_checkpoints
from landscape.figures import hessian_figures
from landscape.store import HESSIAN_FILE, checkpoint_dir, checkpoint_path

PRESETS = {
    "tiny": {"model": "vgg_small", "dataset": "digits", "lr": 0.1, "batch_size": 128,
             "steps": 400, "probe_every": 20, "checkpoints_at": [0, 100, 200, 400],
             "hessian": {"top_k": 3, "trace_rtol": 0.1, "trace_max_products": 100,
                         "density": True, "density_probes": 2, "density_steps": 30,
                         "examples": 256}},
    "paper": {"model": "vgg11", "dataset": "cifar10", "lr": 0.1, "batch_size": 128,
              "steps": 15_000, "probe_every": 100,
              "checkpoints_at": [0, 500, 1000, 2000, 5000, 10_000, 15_000],
              "hessian": {"top_k": 5, "trace_rtol": 0.05, "trace_max_products": 200,
                          "density": True, "density_probes": 4, "density_steps": 60,
                          "examples": 2048}},
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    with _presets.session("spectra", __doc__, PRESETS, argv) as s:
        p, a = s.settings, s.args
        _presets.check_data(p["dataset"], a.data_dir, a.download)
        config = s.train_config(checkpoint_steps=p["checkpoints_at"], probe_every=p["probe_every"])
        result = s.train("vgg", config)
        run = s.out / "vgg"
        files = {
            v: [checkpoint_path(checkpoint_dir(run, v), step) for step in p["checkpoints_at"]]
            for v, r in result.variants.items()
            if r.status == "finished"
        }
        hessian = HessianConfig(**p["hessian"], seed=a.seed)
        s.note(hessian=asdict(hessian))
        hessian_checkpoints(files, run / HESSIAN_FILE, hessian, device=a.device,
                            overwrite=a.overwrite)  # fmt: skip
        for step in p["checkpoints_at"]:
            figs = hessian_figures(run, step=step)
            if step == p["checkpoints_at"][0]:
                s.figure(figs["hessian_over_training"], "hessian_over_training")
            s.figure(figs["hessian_density"], f"hessian_density_step{step:05d}")


if __name__ == "__main__":
    sys.exit(_presets.run(main))
