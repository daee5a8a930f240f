"""What the figure scripts share: presets, the saved configuration, one-line errors.

Every ``scripts/fig*.py``, ``li_contours.py`` and ``spectra.py`` takes

    --preset tiny    digits or synthetic data, minutes on two CPU cores (the default)
    --preset paper   the paper's setup (VGG on CIFAR-10 for 15,000 steps ...), for a GPU
    --out DIR        default runs/<script>/<preset>
    --seed N         initial weights, batch order, data split, random directions
    --steps N        overrides the preset's training steps; every cadence scales with it

and writes ``DIR/config.json`` (the preset, the command line, the settings of every run,
versions, CPU model and flags, threads, device, load, wall time) next to its HDF5 files and
``DIR/figures/*.png`` (and ``.pdf``). Bad input, a missing data set among them, ends the
script with one line on stderr naming the problem and the fix, and exit status 2.

The numerics are all the library's: a script only chooses settings, calls
``landscape.train_pair``, the probes, slices and Hessians, and ``landscape.figures`` /
``landscape.render`` to draw.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import matplotlib
import numpy as np
import scipy
import torch
from matplotlib.figure import Figure

from landscape import DataError, keep_freed_memory, load_dataset, store
from landscape._device import cpu_info, resolve_device
from landscape.probes import bn_inputs
from landscape.render import save_figure
from landscape.train import PairResult, TrainConfig, train_pair

PRESETS = ("tiny", "paper")
#: Threads of the tiny presets: vgg_small's 600 steps took 100 s with 2 threads and 12 s with
#: 1 on a shared 2-core AMD EPYC (load 5): small ops do not split well, and spin-waiting
#: threads fight the machine's other work.
TINY_THREADS = 1
CONFIG_FILE = "config.json"
FIGURES = "figures"
#: The deep linear network's data (science.md s. 1.3): y = A x, 1000 training points in 10-D,
#: fitted by full-batch gradient descent (batch = n).
DLN_DATA = {"kind": "linear-regression", "n": 1000, "dim": 10}
#: At the paper's DLN learning rates (1e-6, 1e-7) a step changes a gradient by ~1e-5 of its
#: norm and cos(G, G') differs from 1 by less than float32 resolves (its curves are rounding
#: noise): the DLN runs in float64.
DLN_DTYPE = "float64"
#: Mixed into the seed that draws the units whose activations Figs. 1c and 2 show.
UNIT_SALT = 0xF12
#: What the datasets of a study file hold (their ``description``).
STUDY_COLUMNS = {
    "train": {"step": "updates applied before this row's batch (0-based)",
              "loss": "mini-batch training loss at that step",
              "accuracy": "mini-batch training accuracy at that step"},
    "eval": {"step": "training step at which the model was evaluated (eval mode: plain BN)",
             "loss": "mean loss over the test set", "accuracy": "accuracy over the test set"},
    "activations": {"step": "training step (weights before that step's update)",
                    "percentiles": "(S, P): percentiles (root attribute percentiles) of the "
                    "unit's activations on that step's batch, training mode"},
}  # fmt: skip
#: CPU flags that decide the speed of float32 / bf16 matrix products (the rest are stored too).
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every figure script takes (its docstring is the help)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", choices=PRESETS, default="tiny",
                    help="tiny: digits or synthetic data on a CPU (the default); paper: the "
                    "paper's setup")  # fmt: skip
    ap.add_argument("--out", type=Path, default=None, help="default runs/<script>/<preset>")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps instead of the preset's; cadences scale with them",
    )
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: 1 for tiny, torch's own for paper)",
    )
    ap.add_argument("--data-dir", default=None,
                    help="the data sets' root (default $LANDSCAPE_DATA_DIR, else "
                    "~/.cache/landscape)")  # fmt: skip
    ap.add_argument("--download", action="store_true", help="fetch a missing data set")
    ap.add_argument("--overwrite", action="store_true", help="replace this script's outputs")
    return ap


def machine(device: torch.device) -> dict[str, Any]:
    """CPU model, flags, cores, threads, load and device: what a run's numbers depend on."""
    model, flags = cpu_info()
    info: dict[str, Any] = {
        "cpu": model,
        "simd_flags": [x for x in SIMD_FLAGS if x in flags],
        "cpu_flags": sorted(flags),
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def versions() -> dict[str, str]:
    import landscape

    return {
        "landscape": landscape.__version__, "torch": torch.__version__, "numpy": np.__version__,
        "scipy": scipy.__version__, "h5py": h5py.__version__,
        "matplotlib": matplotlib.__version__, "python": platform.python_version(),
    }  # fmt: skip


@dataclass
class Session:
    """One script's run: its preset's settings, output folder and the configuration saved."""

    script: str
    args: argparse.Namespace
    settings: dict[str, Any]  # the preset's settings, steps and cadences as run
    out: Path
    device: torch.device
    record: dict[str, Any] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)

    @property
    def preset(self) -> str:
        return self.args.preset

    def train_config(self, **fields: Any) -> TrainConfig:
        """The preset's run: its ``model``, ``dataset``, ``lr``, ``batch_size`` and ``steps``,
        the command line's data options, seed and device, held-out evaluation 20 times a
        run; ``fields`` set or replace any of them."""
        p, a = self.settings, self.args
        preset = {k: p[k] for k in ("model", "dataset", "lr", "batch_size", "steps") if k in p}
        config = {**preset, "data_dir": a.data_dir, "download": a.download, "seed": a.seed,
                  "device": a.device, **fields}  # fmt: skip
        config.setdefault("eval_every", max(1, config["steps"] // 20))
        return TrainConfig(**config)

    def train(self, name: str, config: TrainConfig, **kwargs: Any) -> PairResult:
        """``train_pair`` into ``OUT/name``, its configuration recorded under ``runs``."""
        self.record.setdefault("runs", {})[name] = config.to_dict()
        self.save_config("running")
        result = train_pair(config, self.out / name, overwrite=self.args.overwrite, **kwargs)
        for v, r in result.variants.items():
            if r.status != "finished":
                print(f"{name} {v}: {r.message}", file=sys.stderr)
        return result

    def figure(self, fig: Figure, name: str) -> None:
        """``OUT/figures/name.png`` (and ``.pdf``)."""
        self.written += save_figure(fig, self.out / FIGURES / name)

    def note(self, **entries: Any) -> None:
        """More settings for the saved configuration (JSON-able)."""
        self.record.update(entries)

    def save_config(self, status: str) -> Path:
        path = self.out / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "script": f"scripts/{self.script}.py",
            "preset": self.preset,
            "status": status,
            "command": store.provenance()["command_line"],
            "python": sys.executable,
            "argv": sys.argv,
            "seed": self.args.seed,
            "settings": self.settings,
            **self.record,
            "provenance": store.provenance(device=str(self.device)),
            "versions": versions(),
            "machine": machine(self.device),
            "outputs": sorted(str(p.relative_to(self.out)) for p in self.written),
        }
        text = json.dumps(config, indent=2, default=_json_default) + "\n"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def scaled(settings: Mapping[str, Any], steps: int | None) -> dict[str, Any]:
    """The preset's settings for ``steps`` training steps: every other step count
    (``*_steps``), cadence (``*_every``) and list of steps (``*_at``) scaled by
    ``steps / settings["steps"]`` (counts and cadences at least 1)."""
    out = dict(settings)
    if steps is None or steps == settings["steps"]:
        return out
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    ratio = steps / settings["steps"]
    for key, value in settings.items():
        if key.endswith(("_steps", "_every")) and value:
            out[key] = max(1, round(value * ratio))
        elif key.endswith("_at"):  # round() is monotone: a list stays within its run
            out[key] = sorted({round(s * ratio) for s in value})
    out["steps"] = steps
    return out


def check_data(name: str, data_dir: str | None, download: bool, **options: Any) -> None:
    """Load the data set once before anything is written: a missing one is one line."""
    try:
        load_dataset(name, data_dir=data_dir, download=download, **options)
    except DataError as err:
        raise ValueError(f"{err} [here: --data-dir DIR or --download]") from None


@contextlib.contextmanager
def session(
    script: str, doc: str, presets: Mapping[str, Mapping[str, Any]], argv: Sequence[str] | None
) -> Iterator[Session]:
    """Parse the options, check the output folder, and save the configuration before the
    work (status ``running``) and after it (``finished``, with the wall time and the files)."""
    args = parser(doc).parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif args.preset == "tiny":  # tiny models: a second thread costs more than it gives
        torch.set_num_threads(TINY_THREADS)
    keep_freed_memory()  # slices and Hessians: many passes (the CLI does the same)
    out = args.out if args.out is not None else Path("runs") / script / args.preset
    if (out / CONFIG_FILE).exists() and not args.overwrite:
        raise ValueError(f"{out} already holds this script's outputs: pass --overwrite to "
                         "replace them or choose another --out")  # fmt: skip
    settings = scaled(presets[args.preset], args.steps)
    s = Session(script, args, settings, out, resolve_device(args.device))
    start = time.perf_counter()
    yield s
    s.record["wall_s"] = round(time.perf_counter() - start, 1)
    s.save_config("finished")
    for p in s.written:
        print(f"figure: {p}")
    print(f"config: {out / CONFIG_FILE} ({s.record['wall_s']:.0f} s)")


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> int:
    """``main(argv)``; a ValueError (bad input, missing data) is one line and exit status 2."""
    try:
        main(argv)
    except ValueError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        print(f"{Path(sys.argv[0]).name}: error: {first}", file=sys.stderr)
        return 2
    return 0


def bn_fed_layers(model: torch.nn.Module, x: torch.Tensor, wanted: Sequence[int],
                  seed: int) -> list[dict[str, Any]]:  # fmt: skip
    """For each wanted k (1-based Conv/Linear layer): the closest such layer that feeds a
    BatchNorm, that BN module (whose output a plain twin's Identity passes through) and one
    of its units drawn with ``seed``; the rule and the draw of ``fig2_noisy_bn.py``, so that
    Figs. 1c and 2 of one seed show the same units."""
    feeds = bn_inputs(model, lambda m: m(x))
    weighted = list(feeds)
    fed = [i for i, name in enumerate(weighted, 1) if feeds[name] is not None]
    if not fed:
        raise ValueError("the model has no layer that feeds BatchNorm")
    units = torch.Generator().manual_seed(seed * 65_537 + UNIT_SALT)
    modules = dict(model.named_modules())
    layers: list[dict[str, Any]] = []
    for k in wanted:
        index = min(fed, key=lambda i: (abs(i - k), i))
        if all(layer["index"] != index for layer in layers):
            name = weighted[index - 1]
            unit = int(torch.randint(modules[feeds[name]].num_features, (1,), generator=units))
            layers.append({"requested": k, "index": index, "layer": name, "module": feeds[name],
                           "unit": unit})  # fmt: skip
    return layers


def write_study(
    path: Path, study: str, config: Mapping[str, Any], percentiles: Sequence[float],
    runs: Mapping[str, tuple[Path, str]], activations: Mapping[str, list[tuple[dict, dict]]],
) -> None:  # fmt: skip
    """A study file (docs/hdf5-schema.md, "Study files"): provenance with ``config``;
    ``/train/<network>`` and ``/eval/<network>`` copied from ``runs`` (network -> (run
    directory, variant)); ``/activations/<network>/layer<k>`` from ActivationRecorder series."""
    with store.edit(path, fresh=True) as f:
        store.write_provenance(f, store.provenance(config))
        store.write_attrs(f, {store.KIND_ATTR: "study file", "study": study,
                              "percentiles": [float(p) for p in percentiles]})  # fmt: skip
        for network, (run, variant) in runs.items():
            with store.open_run(run / store.RUN_FILE) as log:
                for part in ("train", "eval"):
                    rows = store.read_series(log[f"{part}/{variant}"])
                    group = f.create_group(f"{part}/{network}")
                    for name in ("step", "loss", "accuracy"):
                        group.create_dataset(name, data=rows[name])
                    store.describe_datasets(group, STUDY_COLUMNS[part])
        for network, per_layer in activations.items():
            for layer, data in per_layer:
                group = f.create_group(f"activations/{network}/layer{layer['index']}")
                group.create_dataset("step", data=data["step"])
                group.create_dataset("percentiles", data=data["percentiles"])
                store.write_attrs(group, {k: layer[k] for k in ("requested", "index", "layer",
                                                                 "module", "unit")})  # fmt: skip
                store.describe_datasets(group, STUDY_COLUMNS["activations"])


def paper_layer(k: int, paper_depth: int, depth: int) -> int:
    """The layer (1-based) of a ``depth``-layer network at the relative depth of the paper
    network's layer ``k`` of ``paper_depth``: round(k * depth / paper_depth), in 1..depth."""
    return min(depth, max(1, round(k * depth / paper_depth)))
