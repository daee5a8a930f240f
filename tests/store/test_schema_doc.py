"""docs/hdf5-schema.md is the layout: the files the toolkit writes hold exactly what it lists.

The demo's own code path writes a run log and a slice file (``DEMO_CONFIG`` and
``DEMO_SLICE`` of ``landscape demo``, a few steps and a few points); beside them an
``H5Sink`` probe log, an offline probe file, the slice kinds with parts of their own
(a PCA trajectory, buffer directions) and a one-pair sweep file. Every group, dataset and
attribute in them must be listed in the document for that kind of file, everything listed
must be written, every
dataset must say what it holds (``description``), and every attribute must be a native
value or JSON of a dict or a list.

How the document is read: level-2 headings name the sections; a backticked path beginning
with ``/`` in a heading is the group its tables describe (the root without one). A table
whose first header cell is ``column`` or ``dataset`` lists datasets (relative to that
group, or absolute), one whose first cell is ``attribute`` lists attributes of that group,
or of the paths the cell names (``attribute of `/trajectory```, ``attribute of every
dataset``). Names are the backticked words of the first cell; ``<...>`` is any one name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch.nn.functional as F

from landscape import H5Sink, ProbeCallback, StepSizes
from landscape.cli.demo import DEMO_CONFIG, DEMO_SLICE
from landscape.curvature.from_checkpoints import HessianConfig, hessian_checkpoints
from landscape.probes import OfflineProbeConfig, probe_checkpoints
from landscape.slices import SliceConfig, slice_checkpoint
from landscape.store import KIND_ATTR, PROVENANCE_KEYS, checkpoint_dir, checkpoint_path
from landscape.studies import init_scale_sweep
from landscape.train import train_pair
from tests.cases import bn_net, image_batch, load_script
from tests.studies.helpers import TINY

DOC = Path(__file__).resolve().parents[2] / "docs" / "hdf5-schema.md"
EVERY_DATASET = "<every dataset>"
#: The sections (level-2 headings, by their beginning) that describe each kind of file.
SECTIONS = {
    "run log": ("Conventions", "Root attributes", "`run.h5`", "Probe series"),
    "probe log": ("Conventions", "Root attributes", "Probe series"),
    "offline probe file": ("Conventions", "Root attributes", "Offline probe files"),
    "hessian file": ("Conventions", "Root attributes", "Hessian files"),
    "slice file": ("Conventions", "Root attributes", "Slice files"),
    "sweep file": ("Conventions", "Root attributes", "Sweep files"),
    "study file": ("Conventions", "Root attributes", "Study files"),
}
STEPS = 4  # the demo's run, cut short: two probe, ICS and Hessian rows, three checkpoints


@dataclass
class Section:
    datasets: set[str] = field(default_factory=set)  # path patterns
    attrs: set[tuple[str, str]] = field(default_factory=set)  # (object pattern, name)
    meta_keys: set[str] = field(default_factory=set)  # keys of a slice's `meta`


def parse(doc: str) -> dict[str, Section]:
    """The datasets and attributes each level-2 section of the document lists."""
    sections: dict[str, Section] = {}
    section, paths, table, fenced = Section(), ["/"], [], False
    for line in [*doc.splitlines(), ""]:
        text = line.strip()
        if text.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        if text.startswith("|"):
            table.append([cell.strip() for cell in text.strip("|").split("|")])
            continue
        if table:
            _read_table(table, paths, section)
            table = []
        if heading := re.match(r"(#+) (.*)", text):
            if len(heading[1]) == 2:
                section = sections.setdefault(heading[2], Section())
            paths = re.findall(r"`(/[^`]*)`", heading[2]) or ["/"]
    return sections


def _read_table(rows: list[list[str]], paths: list[str], section: Section) -> None:
    head = rows[0][0].lower()
    names = [n for row in rows[2:] for n in re.findall(r"`([^`]+)`", row[0])]
    if head.startswith(("column", "dataset")):
        section.datasets |= {_join(p, n) for p in paths for n in names}
    elif head.startswith("attribute"):
        owners = re.findall(r"`(/[^`]*)`", rows[0][0]) or paths
        owners = [EVERY_DATASET] if "every dataset" in head else owners
        section.attrs |= {(o, n) for o in owners for n in names}
    elif head == "`meta` key":
        section.meta_keys |= set(names)


def _join(group: str, name: str) -> str:
    return name if name.startswith("/") else f"{group.rstrip('/')}/{name}"


def _matches(pattern: str, path: str) -> bool:
    parts = re.split(r"(<[^>]+>)", pattern)
    regex = "".join("[^/]+" if p.startswith("<") else re.escape(p) for p in parts)
    return re.fullmatch(regex, path) is not None


@dataclass
class Written:
    """One file, walked: ``{object path: attributes}`` of every group and dataset."""

    path: Path
    objects: dict[str, dict] = field(default_factory=dict)
    datasets: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, path: Path) -> Written:
        w = cls(path)
        with h5py.File(path, "r") as f:
            w.objects["/"] = dict(f.attrs)

            def visit(name: str, obj: h5py.HLObject) -> None:
                w.objects[f"/{name}"] = dict(obj.attrs)
                if isinstance(obj, h5py.Dataset):
                    w.datasets.add(f"/{name}")

            f.visititems(visit)
        return w

    @property
    def kind(self) -> str:
        return str(self.objects["/"][KIND_ATTR])

    def owns(self, owner: str, obj: str) -> bool:
        """Whether the documented ``owner`` of an attribute is the object at ``obj``."""
        return obj in self.datasets if owner == EVERY_DATASET else _matches(owner, obj)


def problems(doc: str, files: list[Written]) -> list[str]:
    """Every difference between the document and the files (empty: they agree)."""
    sections = parse(doc)
    found = [
        f"{kind}: the document lacks a section of {titles}"
        for kind, titles in SECTIONS.items()
        if len([t for t in sections if t.startswith(titles)]) != len(titles)
    ]
    for w in files:
        mine = [s for title, s in sections.items() if title.startswith(SECTIONS[w.kind])]
        found += _undocumented(w, mine)
    for title, section in sections.items():
        kinds = {k for k, titles in SECTIONS.items() if title.startswith(titles)}
        found += _never_written(title, section, [w for w in files if w.kind in kinds])
    return found + _meta_keys(sections, [w for w in files if w.kind == "slice file"])


def _undocumented(w: Written, mine: list[Section]) -> list[str]:
    """What ``w`` holds that its sections do not list, datasets without a description, and
    attributes that break the one encoding."""
    found = []
    patterns = {p for s in mine for p in s.datasets}
    documented = {a for s in mine for a in s.attrs}
    for ds in sorted(w.datasets):
        if not any(_matches(p, ds) for p in patterns):
            found.append(f"{w.path.name}: dataset {ds} is not documented ({w.kind})")
        text = w.objects[ds].get("description")
        if not (isinstance(text, str) and text.strip()):
            found.append(f"{w.path.name}: dataset {ds} has no description")
    for obj, attrs in w.objects.items():
        for name, value in attrs.items():
            if not any(w.owns(o, obj) for o, n in documented if n == name):
                found.append(f"{w.path.name}: attribute {name} of {obj} is not documented "
                             f"({w.kind})")  # fmt: skip
            found += [f"{w.path.name}: {obj}@{name}: {why}" for why in _encoding(name, value)]
    return found


def _never_written(title: str, section: Section, files: list[Written]) -> list[str]:
    """What the section lists that none of the files of its kinds holds."""
    found = [
        f"{title}: dataset {pattern} is documented but never written"
        for pattern in sorted(section.datasets)
        if not any(_matches(pattern, ds) for w in files for ds in w.datasets)
    ]
    found += [
        f"{title}: attribute {name} of {owner} is documented but never written"
        for owner, name in sorted(section.attrs)
        if not any(name in a and w.owns(owner, obj) for w in files for obj, a in w.objects.items())
    ]
    return found


def _meta_keys(sections: dict[str, Section], slices: list[Written]) -> list[str]:
    """The keys of the slice files' ``meta`` against the document's ``meta`` key table."""
    mine = [s for title, s in sections.items() if title.startswith("Slice files")]
    documented = {k for s in mine for k in s.meta_keys}
    written = {k for w in slices for k in json.loads(w.objects["/"]["meta"])}
    return [f"slice file: meta key {k} is documented but never written"
            for k in sorted(documented - written)] + [
            f"slice file: meta key {k} is written but not documented"
            for k in sorted(written - documented)]  # fmt: skip


def _encoding(name: str, value: object) -> list[str]:
    """Why an attribute value breaks the one encoding (native scalars and text, arrays of
    numbers, JSON only for dicts and lists)."""
    if isinstance(value, str):
        if value[:1] in ("{", "["):
            try:
                parsed = json.loads(value)
            except ValueError:
                return [f"{value[:40]!r} looks like JSON but is not"]
            return [] if isinstance(parsed, (dict, list)) else [f"{value!r} is JSON of a scalar"]
        if value[:1] == '"' or value in ("true", "false", "null"):
            return [f"{value!r} is JSON text of a scalar: store it natively"]
        if name not in (*PROVENANCE_KEYS, "config_hash") and re.fullmatch(r"-?[\d.eE+-]+", value):
            return [f"{value!r} is a number stored as text"]
        return []
    if isinstance(value, np.ndarray):
        return [] if value.dtype.kind in "biuf" else [f"an array of {value.dtype}"]
    if isinstance(value, (np.int64, np.float64, np.bool_)):
        return []
    return [f"{type(value).__name__} is not int64, float64, bool or text"]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> list[Written]:
    """The files: the demo's (cut short), a probe log, an offline probe file, more slices."""
    tmp = tmp_path_factory.mktemp("schema")
    run = tmp / "demo"
    config = replace(DEMO_CONFIG, steps=STEPS, batch_size=32, eval_every=2, checkpoint_every=2,
                     probe_every=2, probe_count=2, ics_every=2, hessian_every=STEPS,
                     hessian_examples=64, hessian_batch_size=32,
                     hessian_trace_rtol=1.0)  # fmt: skip
    train_pair(config, run)
    final = {v: checkpoint_path(checkpoint_dir(run, v), STEPS) for v in ("bn", "plain")}
    few = {"examples": 64, "device": config.device}
    plane = replace(DEMO_SLICE, x="-1:1:3", y="-1:1:2", device=config.device)  # as the demo's
    slices = {
        "bn_final_random_plane.h5": (plane, {}),
        "pca.h5": (SliceConfig(kind="pca", x="-1:1:2", y="-1:1:2", **few),
                   {"trajectory": checkpoint_dir(run, "bn")}),
        "interpolate.h5": (SliceConfig(kind="interpolate", x="0:1:2", **few),
                           {"to": checkpoint_path(checkpoint_dir(run, "bn"), 2)}),
    }  # fmt: skip
    for name, (cfg, inputs) in slices.items():
        slice_checkpoint(final["bn"], run / "slices" / name, cfg, **inputs)
    offline = OfflineProbeConfig(num_batches=2, batch_size=16, count=2, ics=True)
    probe_checkpoints({v: [p] for v, p in final.items()}, run / "probes.h5", offline)
    curvature = HessianConfig(top_k=2, trace_max_products=20, density=True, density_probes=1,
                              density_steps=4, density_points=11, examples=32)  # fmt: skip
    hessian_checkpoints({v: [p] for v, p in final.items()}, run / "hessian.h5", curvature)
    sink = H5Sink(tmp / "probe_log.h5", "bn")
    grid = StepSizes.vgg(0.1, count=2)
    ProbeCallback(every=1, step_sizes=grid, sink=sink, ics_every=1)(
        0, bn_net(), F.cross_entropy, image_batch()
    )
    sweep = replace(TINY, scales=[1.0], activations=["relu"], seeds=[0])
    init_scale_sweep(sweep, tmp / "sweep.h5")
    fig2 = load_script("fig2_noisy_bn")  # a study file: the script's own code path
    fig2.main(["--out", str(tmp / "fig2"), "--steps", "4", "--record-every", "2"])
    paths = [run / "run.h5", run / "probes.h5", run / "hessian.h5", tmp / "probe_log.h5",
             tmp / "sweep.h5", tmp / "fig2" / "fig2.h5"]  # fmt: skip
    return [Written.of(p) for p in [*paths, *(run / "slices" / name for name in slices)]]


def test_the_document_lists_exactly_what_is_written(written):
    assert {w.kind for w in written} == set(SECTIONS)
    assert problems(DOC.read_text(), written) == []


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("| `grad_norm` | float64 | Euclidean", "dataset /train/bn/grad_norm is not documented"),
        ("| `variants` |", "attribute variants of / is not documented (run log)"),
        ("| `explained_variance` |", "attribute explained_variance of /trajectory is not"),
        ("| `seed` | int64: seed", "attribute seed of /probe/bn is not documented"),
        ("| `description` |", "attribute description of /coords/x is not documented"),
        ("| `/offline_probe_batches` |", "dataset /offline_probe_batches is not documented"),
        ("| `curvature_gradient` | float64 | () | gᵀHg", "dataset /hessian/bn/curvature_gradient"),
        ("| `loss` | the loss:", "meta key loss is written but not documented"),
    ],
)
def test_a_row_taken_out_of_the_document_is_missed(written, row, expected):
    doc = DOC.read_text()
    lines = [line for line in doc.splitlines() if line.startswith(row)]
    assert len(lines) == 1, f"the test's row {row!r} is not one line of the document"
    found = problems(doc.replace(lines[0] + "\n", ""), written)
    assert any(expected in p for p in found), found


def test_a_documented_name_never_written_is_missed(written):
    doc = DOC.read_text().replace("| `message` |", "| `elapsed` | seconds |\n| `message` |")
    assert problems(doc, written) == [
        "`run.h5`: attribute elapsed of /train/<variant> is documented but never written"
    ]


def test_an_old_encoding_or_a_missing_description_is_missed(written, tmp_path):
    copy = tmp_path / "run.h5"
    copy.write_bytes(written[0].path.read_bytes())
    with h5py.File(copy, "r+") as f:
        f["probe/bn"].attrs["bn_mode"] = '"train"'  # schema 1.0's JSON text of a string
        f["probe/bn"].attrs["seed"] = "0"
        del f["eval/bn/loss"].attrs["description"]
    found = problems(DOC.read_text(), [Written.of(copy), *written[1:]])
    assert "run.h5: /probe/bn@bn_mode: '\"train\"' is JSON text of a scalar: store it" in " ".join(
        found
    )
    assert "run.h5: /probe/bn@seed: '0' is a number stored as text" in found
    assert "run.h5: dataset /eval/bn/loss has no description" in found
