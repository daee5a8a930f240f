"""Santurkar et al. (2018) Fig. 2: does BN help because it stabilises the distribution of
activations? Standard, Standard + BatchNorm and Standard + "noisy" BatchNorm.

The noisy network puts distributional instability back in after every BN layer (Algorithm 1,
``landscape.models.noisy_bn``: per step and unit mu ~ U(-0.5, 0.5), sigma ~ U(1, 1.25); per
example, unit and position m ~ U(mu - 0.1, mu + 0.1), s ~ N(sigma, 0.1); a <- s a + m). The
paper found it trains about as well as BN and better than the plain network, although its
activations' distribution moves from step to step.

The three networks share the seed, hence the initial weights (the noisy network is the BN
one with noise layers that draw from their own generators) and the batch of every step:
``landscape train`` trains the BN/plain pair into ``OUT/pair``, and the BN network with
``--bn-noise santurkar`` into ``OUT/noisy_bn``. During training an ActivationRecorder keeps,
every ``record_every`` steps, percentiles of one unit's activations (the output of the BN
layer after the chosen weight layer: for the plain network the layer's own output) on the
step's batch in training mode. Layer k is the k-th Conv/Linear layer; a k beyond the layers
that feed BN is replaced by the closest one that does (the paper shows layers 3 and 11 of
its VGG; vgg_small has five such layers, so 3 and 5).

Presets:
  tiny   vgg_small on the bundled digits, 400 steps at lr 0.1, batch 128, one thread
         (14-18 s of training, about 20 s in all, on a 2-core AMD EPYC at load 5; with two
         threads there, 180 s)
  paper  vgg11 (VGG-A) on CIFAR-10, 15,000 steps at lr 0.1, batch 128: needs a GPU and the
         CIFAR-10 files (--data-dir or $LANDSCAPE_DATA_DIR)

Run:  .venv/bin/python scripts/fig2_noisy_bn.py [--preset tiny] [--out DIR] [--steps N]
Writes OUT/pair/, OUT/noisy_bn/ (run directories), OUT/fig2.h5 (curves, activation
percentiles, the exact configuration and provenance) and OUT/fig2_noisy_bn.png/.pdf.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import _presets
import torch

from landscape import cpu_description, store
from landscape.data import DataError, load_dataset
from landscape.render import activation_distributions, save_figure
from landscape.train import DEFAULT_PERCENTILES, ActivationRecorder, TrainConfig, train_pair

STUDY = "santurkar_fig2_noisy_bn"
#: The study's networks, by the figure's names: (run directory, variant in that run).
NETWORKS = {"plain": ("pair", "plain"), "bn": ("pair", "bn"), "noisy_bn": ("noisy_bn", "bn")}
FIGURE = "fig2_noisy_bn"
STUDY_FILE = "fig2.h5"


@dataclass(frozen=True)
class Preset:
    """One configuration of the study (the paper's, or one a CPU runs in minutes)."""

    model: str
    dataset: str
    steps: int
    record_every: int  # activation percentiles every N steps
    eval_every: int
    lr: float = 0.1
    batch_size: int = 128
    layers: tuple[int, ...] = (3, 11)  # k-th Conv/Linear layer (1-based), as in the paper
    needs_gpu: bool = False
    threads: int | None = None  # CPU threads; None: torch's default
    model_options: dict[str, Any] = field(default_factory=dict)


PRESETS = {
    # one thread: small tensors run faster on it, and a busy 2-core machine is not oversubscribed
    "tiny": Preset("vgg_small", "digits", steps=400, record_every=10, eval_every=50, threads=1),
    "paper": Preset(
        "vgg11", "cifar10", steps=15_000, record_every=100, eval_every=500, needs_gpu=True
    ),
}


def fail(message: str) -> NoReturn:
    print(f"Error: {message}", file=sys.stderr)
    raise SystemExit(2)


def read_study(path: Path) -> tuple[dict, dict, list[float]]:
    """Curves and activations as the figure builder takes them, from the study file."""
    with store.open_run(path) as f:
        levels = [float(p) for p in store.read_attrs(f)["percentiles"]]
        order = [v for v in NETWORKS if v in f["train"]]  # the paper's order, not the file's
        curves = {v: {k: f[f"train/{v}/{k}"][()] for k in ("step", "accuracy")} for v in order}
        acts: dict[str, dict] = {}
        for v in f["activations"]:
            for group in f[f"activations/{v}"].values():
                a = store.read_attrs(group)
                title = f"layer {a['index']} ({a['module']}, unit {a['unit']})"
                acts.setdefault((a["index"], title), {})[v] = {
                    "step": group["step"][()], "percentiles": group["percentiles"][()],
                }  # fmt: skip
    return curves, {t: by_v for (_, t), by_v in sorted(acts.items())}, levels


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--out", type=Path, help="output folder [runs/fig2_<preset>]")
    ap.add_argument("--steps", type=int, help="override the preset's training steps")
    ap.add_argument("--record-every", type=int, help="override: activation percentiles every N")
    ap.add_argument("--layers", type=int, nargs="+", help="override: Conv/Linear layers k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--data-dir", help="where the dataset files are (or $LANDSCAPE_DATA_DIR)")
    ap.add_argument("--threads", type=int, help="override: CPU threads (tiny: 1)")
    ap.add_argument("--overwrite", action="store_true", help="replace the runs of an earlier run")
    args = ap.parse_args(argv)
    preset = PRESETS[args.preset]
    preset = replace(preset, steps=args.steps or preset.steps,
                     record_every=args.record_every or preset.record_every,
                     layers=tuple(args.layers or preset.layers),
                     threads=args.threads or preset.threads)  # fmt: skip
    threads_before = torch.get_num_threads()
    if preset.threads:
        torch.set_num_threads(preset.threads)
    try:
        run_study(args, preset)
    finally:
        torch.set_num_threads(threads_before)


def run_study(args: argparse.Namespace, preset: Preset) -> None:
    """Train the three networks, write the study file, draw the figure."""
    out = args.out or Path("runs") / f"fig2_{args.preset}"
    try:
        data = load_dataset(preset.dataset, data_dir=args.data_dir, seed=args.seed)
    except DataError as exc:
        fail(f"{exc}\n(the {args.preset} preset trains {preset.model} on {preset.dataset})")
    if preset.needs_gpu and args.device != "cpu" and not torch.cuda.is_available():
        fail(f"the {args.preset} preset ({preset.steps} steps of {preset.model}) needs a GPU, "
             "and torch sees none: run it on one, or pass --device cpu to wait")  # fmt: skip
    base = TrainConfig(
        model=preset.model, model_options=dict(preset.model_options), dataset=preset.dataset,
        data_dir=args.data_dir, lr=preset.lr, batch_size=preset.batch_size, steps=preset.steps,
        seed=args.seed, device=args.device, eval_every=preset.eval_every,
    )  # fmt: skip
    noisy = replace(base, bn="bn", bn_noise="santurkar")
    study = out / STUDY_FILE
    try:  # before hours of training: a foreign file there is never replaced
        if store.check_output(study, "study file") and not args.overwrite:
            fail(f"{study} holds an earlier study: pass --overwrite to replace it")
    except ValueError as exc:
        fail(str(exc))
    bn_model = base.spec(data, bn=True).build(seed=args.seed)
    try:
        layers = _presets.bn_fed_layers(bn_model, data.x_train[:8], preset.layers, args.seed)
    except ValueError as exc:  # a model without BatchNorm after any layer
        fail(str(exc))
    recorders = {run: ActivationRecorder({lay["module"]: lay["unit"] for lay in layers},
                                         every=preset.record_every, percentiles=DEFAULT_PERCENTILES)
                 for run in ("pair", "noisy_bn")}  # fmt: skip
    started = time.perf_counter()
    for run, config in (("pair", base), ("noisy_bn", noisy)):
        print(f"training {run}: {config.variants} ...", flush=True)
        try:
            result = train_pair(config, out / run, overwrite=args.overwrite, dataset=data,
                                hooks=[recorders[run]])  # fmt: skip
        except ValueError as exc:  # a run already there (no --overwrite), bad options
            fail(str(exc))
        for v, r in result.variants.items():
            print(f"  {v}: {r.status}, held-out accuracy {r.eval_accuracy:.1%}")
    trained = time.perf_counter() - started
    acts = {}
    for n, (run, v) in NETWORKS.items():
        recorded = recorders[run].series(v)
        acts[n] = [(layer, recorded[layer["module"]]) for layer in layers]
    config = {"study": STUDY, "preset": args.preset, **asdict(preset), "seed": args.seed,
              "layers_chosen": layers, "percentiles": list(DEFAULT_PERCENTILES),
              "threads": torch.get_num_threads(), "cpu": cpu_description(),
              "networks": {n: f"{run}/{v}" for n, (run, v) in NETWORKS.items()},
              "train_configs": {"pair": base.to_dict(), "noisy_bn": noisy.to_dict()}}  # fmt: skip
    runs = {n: (out / run, v) for n, (run, v) in NETWORKS.items()}
    _presets.write_study(study, STUDY, config, DEFAULT_PERCENTILES, runs, acts)
    curves_in, acts_in, levels = read_study(study)
    fig = activation_distributions(
        curves_in, acts_in, percentiles=levels, smooth=max(1, preset.steps // 40),
        title=f"{preset.model} on {preset.dataset}, lr {preset.lr}, batch {preset.batch_size}, "
        f"seed {args.seed}: Standard vs BatchNorm vs noisy BatchNorm (Santurkar et al. Fig. 2)",
    )  # fmt: skip
    written = save_figure(fig, out / FIGURE)
    print(f"trained in {trained:.1f} s; {time.perf_counter() - started:.1f} s in all "
          f"({torch.get_num_threads()} thread(s); {cpu_description()})")  # fmt: skip
    print(f"study written to {study}; figure {', '.join(map(str, written))}")


if __name__ == "__main__":
    main()
