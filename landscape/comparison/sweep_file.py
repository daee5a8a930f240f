"""Sweep files (``landscape sweep init-scale``): their layout, writer and checked reader.

One HDF5 file holds a grid of *cells*, one per (init scale, activation, variant, seed):
dense arrays with those four leading axes (``docs/hdf5-schema.md``, "Sweep files"). The
file is made whole up front, every value NaN (text ``""``) and ``/cells/computed`` 0; a pair
of cells (BN and plain of one scale, activation and seed, trained together) is then
written in one copy-on-write edit with its ``computed`` set (:func:`write_pair`): a cell is
there completely or not at all, and a rerun computes only what is missing.

    /coords/scale (S,), activation (A,), variant (V,), seed (N,)    the grid
    /coords/layer (L,), feeds_bn (L,)        weight tensors; 1 where BN follows the layer
    /coords/grad_step (G,), probe_step (T,), train_step (K,)
    /cells/<name> (S, A, V, N, ...)          per cell: outcome, gradients, curves, probes
    /pairs/<name> (S, A, N)                  per trained pair: wall time, threads
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape import store
from landscape.comparison.matched import PROBE_METRICS, Network
from landscape.comparison.outcomes import OUTCOMES
from landscape.comparison.scaling import loglog_slopes

__all__ = [
    "CELLS",
    "COORDS",
    "KIND",
    "PAIRS",
    "SweepFile",
    "create_sweep_file",
    "read_sweep",
    "settings_differ",
    "write_pair",
]

KIND, SETTINGS_ATTR, RULES_ATTR = "sweep file", "sweep_settings", "outcome_rules"
#: The grid's axes and the per-cell axes, in /coords: name -> (dtype, description).
COORDS: dict[str, tuple[str, str]] = {
    "scale": (
        "float64",
        "init scales a (axis 0 of every cell array): every weight tensor "
        "(ndim >= 2) multiplied by a after its initialisation",
    ),
    "activation": ("str", "activations (axis 1)"),
    "variant": ("str", "variants (axis 2): bn = with BatchNorm, plain = without"),
    "seed": ("int64", "seeds (axis 3): initial weights, batch order and train/test split"),
    "layer": (
        "str",
        "weight tensors (ndim >= 2) whose gradient norms are recorded, "
        "parameter names in model order",
    ),
    "feeds_bn": (
        "int64",
        "1 where the layer's output goes into a BatchNorm layer in the bn "
        "variant, else 0 (the output layer)",
    ),
    "grad_step": ("int64", "training steps at which per-layer gradient norms are recorded"),
    "probe_step": ("int64", "training steps probed (Santurkar et al. Sec. 3.2)"),
    "train_step": ("int64", "training steps of the training curves"),
}
#: Per cell, after the four grid axes: name -> (trailing axes, dtype, description).
_PROBE_CELLS = {f"probe_{m}": (("probe_step",), "float64", f"{text}, at each probed step")
                for m, text in PROBE_METRICS.items()}  # fmt: skip
_MEDIAN_CELLS = {f"median_{m}": ((), "float64", f"median over the cell's finite probes of "
                 f"probe_{m}") for m in PROBE_METRICS}  # fmt: skip
CELLS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "computed": ((), "uint8", "1 once the cell's values are written, else 0"),
    "outcome": (
        (),
        "str",
        "trained, stalled or diverged (rules: root attribute outcome_rules); empty until computed",
    ),
    "diverged_step": (
        (),
        "float64",
        "first step whose training loss is not finite; NaN unless diverged",
    ),
    "final_loss": (
        (),
        "float64",
        "mean training mini-batch loss over the last final_window finite steps",
    ),
    "final_accuracy": (
        (),
        "float64",
        "mean training mini-batch accuracy over the last "
        "final_window finite steps (NaN for regression)",
    ),
    "eval_loss": ((), "float64", "held-out loss after training (NaN if diverged)"),
    "eval_accuracy": (
        (),
        "float64",
        "held-out accuracy after training (NaN if diverged or regression)",
    ),
    "grad_norm": (
        ("grad_step", "layer"),
        "float64",
        "||dL/dW_l||_2 of each layer's weight "
        "on the step's mini-batch, before its update (grad_step 0: at "
        "initialisation); NaN after divergence",
    ),
    "grad_ratio": (
        ("grad_step",),
        "float64",
        "max_l ||dL/dW_l|| / min_l ||dL/dW_l|| over the layers (the exploding measure)",
    ),
    "train_loss": (
        ("train_step",),
        "float64",
        "training mini-batch loss of each step (NaN after divergence)",
    ),
    "train_accuracy": (("train_step",), "float64", "training mini-batch accuracy of each step"),
    **_PROBE_CELLS,
    "probe_base_loss": (
        ("probe_step",),
        "float64",
        "L_B(theta) at each probed step, on the step's batch",
    ),
    **_MEDIAN_CELLS,
}
#: Per trained pair (S, A, N): name -> description.
PAIRS: dict[str, str] = {
    "wall_s": "seconds the pair took to train, probes included (NaN until computed)",
    "threads": "torch intra-op threads of the process that trained the pair (NaN until computed)",
}
GRID = ("scale", "activation", "variant", "seed")
#: What to do about a damaged sweep file (the reader never changes it).
FIX = "run the sweep again into a new file (--out NEW, or --overwrite)"


def create_sweep_file(
    path: str | Path,
    coords: Mapping[str, Any],
    settings: Mapping[str, Any],
    rules: Mapping[str, Any],
    *,
    attrs: Mapping[str, Any],
    device: str,
) -> None:
    """Publish a new sweep file at ``path`` (replacing one whole): every coordinate of
    :data:`COORDS`, every cell NaN (``""``) and not computed; ``attrs`` on the root."""
    shapes = {name: len(coords[name]) for name in COORDS}
    with store.edit(path, fresh=True) as f:
        store.write_provenance(f, store.provenance(dict(settings), device=device))
        store.write_attrs(f, {store.KIND_ATTR: KIND, SETTINGS_ATTR: dict(settings),
                              RULES_ATTR: dict(rules), **attrs})  # fmt: skip
        group = f.create_group("coords")
        for name, (dtype, _) in COORDS.items():
            values = np.asarray(coords[name])
            if dtype == "str":
                group.create_dataset(name, data=values.astype(object), shape=(len(values),),
                                     dtype=h5py.string_dtype())  # fmt: skip
            else:
                group.create_dataset(name, data=values.astype(dtype), shape=(len(values),))
        store.describe_datasets(group, {k: text for k, (_, text) in COORDS.items()})
        lead = tuple(shapes[a] for a in GRID)
        cells = f.create_group("cells")
        for name, (axes, dtype, _) in CELLS.items():
            shape = lead + tuple(shapes[a] for a in axes)
            if dtype == "str":
                cells.create_dataset(name, shape=shape, dtype=h5py.string_dtype())
            elif dtype == "uint8":
                cells.create_dataset(name, shape=shape, dtype=np.uint8, fillvalue=0)
            else:
                cells.create_dataset(name, shape=shape, dtype=np.float64, fillvalue=np.nan)
        store.describe_datasets(cells, {k: text for k, (_, _, text) in CELLS.items()})
        pairs = f.create_group("pairs")
        for name in PAIRS:
            pairs.create_dataset(name, shape=(shapes["scale"], shapes["activation"],
                                 shapes["seed"]), dtype=np.float64, fillvalue=np.nan)  # fmt: skip
        store.describe_datasets(pairs, PAIRS)


def write_pair(
    path: str | Path,
    at: tuple[int, int, int],
    cells: Mapping[int, Mapping[str, Any]],
    pair: Mapping[str, float],
) -> None:
    """Write the cells of one pair, ``{variant index: {name: value}}`` at grid index
    ``at = (scale, activation, seed)``, and its ``pair`` values, in one copy-on-write edit;
    each cell's ``computed`` is set with its values."""
    i, j, k = at
    with store.edit(path) as f:
        for v, values in cells.items():
            unknown = set(values) - set(CELLS)
            if unknown:
                raise ValueError(f"write_pair: no cell dataset {sorted(unknown)}")
            for name, value in values.items():
                f[f"cells/{name}"][i, j, v, k] = value
            f["cells/computed"][i, j, v, k] = 1
        for name, value in pair.items():
            f[f"pairs/{name}"][i, j, k] = value


@dataclass
class SweepFile:
    """The checked content of a sweep file.

    Attributes:
        path: where it was read from.
        settings: the configuration it was computed with (``sweep_settings``).
        rules: the outcome rules' constants (``outcome_rules``).
        coords: name -> 1-D array (:data:`COORDS`; text as ``str``).
        cells: name -> array (S, A, V, N, ...) (:data:`CELLS`; ``outcome`` as ``str``).
        pairs: name -> array (S, A, N) (:data:`PAIRS`).
    """

    path: Path
    settings: dict[str, Any]
    rules: dict[str, Any]
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    cells: dict[str, np.ndarray] = field(default_factory=dict)
    pairs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def computed(self) -> np.ndarray:
        """(S, A, V, N) bool: the cells written."""
        return self.cells["computed"].astype(bool)

    def index(self, scale: float, activation: str, variant: str, seed: int) -> tuple[int, ...]:
        """The grid index of a cell, by its coordinates."""
        wanted = {"scale": scale, "activation": activation, "variant": variant, "seed": seed}
        out = []
        for axis, value in wanted.items():
            hit = np.flatnonzero(self.coords[axis] == value)
            if not hit.size:
                raise ValueError(f"{self.path} has no {axis} {value!r}: choose one of "
                                 f"{', '.join(map(str, self.coords[axis]))}")  # fmt: skip
            out.append(int(hit[0]))
        return tuple(out)

    def network(self, i: int, j: int, v: int, k: int) -> Network:
        """Cell ``(i, j, v, k)`` as a :class:`~landscape.comparison.matched.Network`
        (labelled by its seed)."""
        if not self.computed[i, j, v, k]:
            raise ValueError(f"{self.path}: cell {(i, j, v, k)} is not computed yet: run the "
                             "sweep again to finish it")  # fmt: skip
        c = {name: a[i, j, v, k] for name, a in self.cells.items()}
        probes = {m: c[f"probe_{m}"] for m in PROBE_METRICS}
        dstep = None if math.isnan(c["diverged_step"]) else int(c["diverged_step"])
        return Network(f"seed {self.coords['seed'][k]}", str(c["outcome"]),
                       self.coords["train_step"], c["train_loss"], self.coords["probe_step"],
                       probes, dstep)  # fmt: skip

    def networks(self, i: int, j: int, v: int) -> list[Network]:
        """The computed cells of one scale, activation and variant, one per seed."""
        return [self.network(i, j, v, k) for k in range(len(self.coords["seed"]))
                if self.computed[i, j, v, k]]  # fmt: skip

    def outcome_counts(self) -> np.ndarray:
        """(S, A, V, 3) int: how many seeds trained, stalled, diverged (:data:`OUTCOMES`)."""
        out = self.cells["outcome"]
        return np.stack([(out == o) for o in OUTCOMES], axis=-1).sum(axis=3)

    def init_slopes(self) -> np.ndarray:
        """(A, V, N, L): the least-squares slope of log ||dL/dW_l|| at initialisation on
        log scale, over the computed scales (NaN with fewer than two)."""
        norms = self.cells["grad_norm"][..., 0, :]  # (S, A, V, N, L) at grad_step 0
        return loglog_slopes(self.coords["scale"], norms)


def read_sweep(path: str | Path) -> SweepFile:
    """Read and check a sweep file written by :func:`create_sweep_file`/:func:`write_pair`.

    Checked: the kind, the settings and rules are JSON objects, every coordinate and cell
    dataset is there with the shape the coordinates give, ``computed`` holds 0 or 1, and
    every computed cell's outcome is one of :data:`OUTCOMES`.

    Raises:
        ValueError: naming the file and what in it is damaged (the file is not changed).
    """
    path = Path(path)
    kind = store.kind_of(path)
    if kind != KIND:
        raise ValueError(f"{path} is not a sweep file (it holds {kind}): pass the file of "
                         "landscape sweep init-scale")  # fmt: skip
    try:
        with store.open_run(path) as f:
            out = SweepFile(path, store.read_json_object(f, SETTINGS_ATTR, path),
                            store.read_json_object(f, RULES_ATTR, path))  # fmt: skip
            for name, (dtype, _) in COORDS.items():
                out.coords[name] = _dataset(f, f"coords/{name}", path, dtype == "str")
                if out.coords[name].ndim != 1:
                    raise ValueError(f"{path}: /coords/{name} is not 1-D: the file is damaged")
            sizes = {name: len(a) for name, a in out.coords.items()}
            lead = tuple(sizes[a] for a in GRID)
            for name, (axes, dtype, _) in CELLS.items():
                out.cells[name] = _dataset(f, f"cells/{name}", path, dtype == "str",
                                           lead + tuple(sizes[a] for a in axes))  # fmt: skip
            for name in PAIRS:
                out.pairs[name] = _dataset(f, f"pairs/{name}", path, False,
                                           (lead[0], lead[1], lead[3]))  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"{exc}; {FIX}") from None
    done = out.cells["computed"]
    if not np.isin(done, (0, 1)).all():
        raise ValueError(f"{path}: /cells/computed holds values other than 0 and 1: the file "
                         f"is damaged; {FIX}")  # fmt: skip
    bad = ~np.isin(out.cells["outcome"][done == 1], OUTCOMES)
    if bad.any():
        raise ValueError(f"{path}: a computed cell's outcome is not one of {OUTCOMES}: the "
                         f"file is damaged; {FIX}")  # fmt: skip
    return out


def _dataset(f: h5py.File, name: str, path: Path, text: bool,
             shape: tuple[int, ...] | None = None) -> np.ndarray:  # fmt: skip
    ds = f.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"{path}: /{name} is missing or not a dataset: the file is damaged")
    is_text = h5py.check_string_dtype(ds.dtype) is not None
    if is_text != text or (not text and ds.dtype.kind not in "biuf"):
        raise ValueError(f"{path}: /{name} holds {ds.dtype}, not "
                         f"{'text' if text else 'numbers'}: the file is damaged")  # fmt: skip
    if shape is not None and ds.shape != shape:
        raise ValueError(f"{path}: /{name} has shape {ds.shape}, not {shape} (the "
                         "coordinates'): the file is damaged")  # fmt: skip
    values = ds.asstr()[()] if text else ds[()]
    return np.asarray(values, dtype=object).astype(str) if text else values


def settings_differ(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The keys whose values differ between two settings (compared as canonical JSON;
    nested objects by their keys: ``train.steps``)."""
    new = json.loads(store.dumps(dict(new), "sweep settings"))
    return _differ(stored, new, "")


def _differ(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(a.keys() | b.keys())
                for d in _differ(a.get(k), b.get(k), f"{prefix}{k}.")]  # fmt: skip
    return [] if a == b else [prefix.rstrip(".")]
