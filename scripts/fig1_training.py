"""Santurkar et al. (2018) Fig. 1: training of Standard vs Standard + BatchNorm networks.

(a, b) Training and held-out accuracy (and the loss) of the BN / plain pair at a few fixed
learning rates (the paper: 0.1 and 0.5); (c) for each learning rate, the distribution of
activations of two layers over training, BN beside plain, next to the training accuracy: the
paper's point is that BN trains much faster although its activations' distributions do not
look more stable.

The activations (``landscape.train.ActivationRecorder``, a step hook): every
``activations_every`` steps, percentiles (5, 15, 30, 50, 70, 85, 95) of one unit's values
over the step's training batch (and a conv's positions), the model in training mode and as
it is before the step's update. The unit is the output of the BN layer after the chosen
Conv/Linear layer (the plain network's Identity in its place passes the layer's own output);
the paper shows layers 3 and 11 of its VGG, and a layer k beyond those that feed BN is
replaced by the closest one that does: 3 and 5 in ``vgg_small``. The layers and the units
(drawn with the seed) are those of ``fig2_noisy_bn.py`` for the same seed.

Presets (SGD without momentum, batch 128, Glorot init, no augmentation, as in the paper):
    tiny    vgg_small on the bundled 8x8 digits, 600 steps, lr 0.1 and 0.5
    paper   vgg11 (VGG-A) on CIFAR-10, 15,000 steps, lr 0.1 and 0.5 (a GPU; --data-dir)

Run:  .venv/bin/python scripts/fig1_training.py [--preset tiny|paper] [--out DIR] [--seed N]
Writes OUT/lr<lr>/ (run.h5, checkpoints), OUT/fig1.h5 (a study file: curves and activation
percentiles of every network lr<lr>_<variant>), OUT/figures/fig1_*.png and OUT/config.json.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import _presets
import h5py

from landscape import load_dataset, store
from landscape.figures import training_figure
from landscape.render import activation_distributions
from landscape.train import DEFAULT_PERCENTILES, ActivationRecorder

PRESETS = {
    "tiny": {"model": "vgg_small", "dataset": "digits", "lrs": [0.1, 0.5], "batch_size": 128,
             "steps": 600, "eval_every": 25, "activations_every": 20},
    "paper": {"model": "vgg11", "dataset": "cifar10", "lrs": [0.1, 0.5], "batch_size": 128,
              "steps": 15_000, "eval_every": 500, "activations_every": 250},
}  # fmt: skip
PAPER_LAYERS = (3, 11)  # Fig. 1c's layers of the paper's VGG
STUDY, STUDY_FILE = "santurkar_fig1_training", "fig1.h5"


def read_activations(path, lr_name: str) -> tuple[dict, dict]:
    """Training accuracy and activation series of one learning rate's BN and plain networks,
    as ``render.activation_distributions`` takes them, from the study file."""
    with h5py.File(path, "r") as f:
        curves, acts = {}, {}
        for v in ("bn", "plain"):
            net = f"{lr_name}_{v}"
            curves[v] = {k: f[f"train/{net}/{k}"][()] for k in ("step", "accuracy")}
            for group in f[f"activations/{net}"].values():
                a = store.read_attrs(group)
                title = f"layer {a['index']} ({a['module']}, unit {a['unit']})"
                acts.setdefault((a["index"], title), {})[v] = {
                    "step": group["step"][()],
                    "percentiles": group["percentiles"][()],
                }
    return curves, {title: by_v for (_, title), by_v in sorted(acts.items())}


def main(argv: Sequence[str] | None = None) -> None:
    with _presets.session("fig1_training", __doc__, PRESETS, argv) as s:
        p, a = s.settings, s.args
        _presets.check_data(p["dataset"], a.data_dir, a.download)
        data = load_dataset(p["dataset"], data_dir=a.data_dir, download=a.download, seed=a.seed)
        networks, activations, runs = {}, {}, []
        layers: list[dict] = []
        for lr in p["lrs"]:
            name = f"lr{lr:g}"
            config = s.train_config(lr=lr, eval_every=p["eval_every"])
            if not layers:  # the same layers and units at every lr (the same initial weights)
                model = config.spec(data, bn=True).build(seed=a.seed)
                layers = _presets.bn_fed_layers(model, data.x_train[:8], PAPER_LAYERS, a.seed)
                s.note(layers_chosen=layers, percentiles=list(DEFAULT_PERCENTILES))
            recorder = ActivationRecorder({lay["module"]: lay["unit"] for lay in layers},
                                          every=p["activations_every"])  # fmt: skip
            s.train(name, config, hooks=[recorder], dataset=data)
            runs.append(s.out / name)
            for v in config.variants:
                networks[f"{name}_{v}"] = (s.out / name, v)
                recorded = recorder.series(v)
                activations[f"{name}_{v}"] = [(lay, recorded[lay["module"]]) for lay in layers]
        study = s.out / STUDY_FILE
        config = {"study": STUDY, "preset": a.preset, "settings": p, "seed": a.seed,
                  "layers_chosen": layers, "percentiles": list(DEFAULT_PERCENTILES),
                  "train_configs": s.record["runs"]}  # fmt: skip
        _presets.write_study(study, STUDY, config, DEFAULT_PERCENTILES, networks, activations)
        s.figure(training_figure(runs), "fig1_training")
        for lr in p["lrs"]:
            curves, acts = read_activations(study, f"lr{lr:g}")
            title = (
                f"Fig. 1c: {p['model']} on {p['dataset']}, SGD lr {lr:g}, batch "
                f"{p['batch_size']}, seed {a.seed}: activations of one unit per layer"
            )
            smooth = max(1, p["steps"] // 40)
            fig = activation_distributions(
                curves, acts, percentiles=DEFAULT_PERCENTILES, smooth=smooth, title=title
            )
            s.figure(fig, f"fig1_activations_lr{lr:g}")


if __name__ == "__main__":
    sys.exit(_presets.run(main))
