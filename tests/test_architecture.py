"""The package's architecture, checked: wings import in one direction, the public API is pinned.

``docs/architecture.md`` draws the wings; :data:`RANKS` is the same picture as data. A module
may import its own wing and wings of a lower rank, never a higher or an equal one (equal
ranks are siblings that stay independent: the numerical wings never import each other or
rendering). Imports inside functions count too. Run ``python tests/test_architecture.py`` to
print the wing-to-wing imports the package has today.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import landscape

PACKAGE = Path(landscape.__file__).parent

#: Wings (sub-packages) and the shared top-level modules, by rank: cli -> studies (sweeps
#: of trained pairs) -> orchestration (train, figures) -> numerical (probes, slices,
#: curvature, comparison) and pure rendering -> the parameter algebra and torchrun sharding
#: -> data and store -> models -> the file, device and import helpers.
RANKS: dict[str, int] = {
    "_files": 0,
    "_device": 0,
    "_imports": 0,
    "models": 1,
    "data": 2,
    "store": 2,
    "_params": 3,
    "distributed": 3,
    "probes": 4,
    "slices": 4,
    "curvature": 4,
    "render": 4,
    "comparison": 4,
    "train": 5,
    "figures": 5,
    "studies": 6,  # sweeps of trained pairs: above the trainer they run
    "cli": 7,
    "__main__": 8,  # python -m landscape (and torchrun -m landscape): runs the CLI
}
#: Third-party packages only some wings may use.
ONLY_IN = {"click": {"cli"}, "matplotlib": {"render", "figures"}}
MAX_LINES = 400
#: The one import against the direction: a result's picture in a notebook (IPython calls
#: ``_repr_png_``) is drawn by rendering, imported inside that method only, when asked.
DISPLAY_HOOK = ("_repr_png_", "landscape.render.notebook")
LONG_MODULE_REASON = "Longer than 400 lines because"

#: The public API: every name here is importable from ``landscape`` (README, docs).
PUBLIC_API = [
    "__version__",
    # models
    "MODELS",
    "ModelSpec",
    "create_model",
    "register_model",
    # probes (Santurkar et al. 2018)
    "ICSResult",
    "ProbeCallback",
    "ProbeResult",
    "StepSizes",
    "gradient_probe",
    "ics",
    "H5Sink",
    # BN's scale invariance (Ioffe & Szegedy 2015, Sec. 3.3)
    "ScaleInvarianceResult",
    "scale_invariance",
    # directions and slices (Li et al. 2018)
    "checkpoint_direction",
    "normalize_direction",
    "orthogonalize",
    "pca_directions",
    "random_direction",
    "random_directions",
    "SliceResult",
    "dataset_batches",
    "evaluate_grid",
    "interpolate",
    "parse_range",
    "plane_through",
    "random_line",
    "random_plane",
    "read_grid",
    "run_grid",
    # curvature (Ghorbani et al. 2019; Yao et al. 2020)
    "HessianOperator",
    "curvature_along",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_trace",
    # many passes: glibc keeps freed memory (the CLI does this at start)
    "keep_freed_memory",
    # the CPU a result came from
    "cpu_description",
    # data, and batches of any form
    "batch_loss",
    "DataError",
    "Dataset",
    "batch_indices",
    "load_dataset",
    # training and checkpoints
    "CheckpointError",
    "TrainConfig",
    "load_checkpoint",
    "save_checkpoint",
    "train_pair",
    # does BN make large initial weights safe? (Ioffe & Szegedy 2015; science.md s. 2, 5)
    "SweepConfig",
    "init_scale_sweep",
    "read_sweep",
]


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def wing_of(path: Path) -> str:
    """The wing (or shared top-level module) a file of the package belongs to."""
    first = path.relative_to(PACKAGE).parts[0]
    return first.removesuffix(".py")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every landscape module ``path`` imports, relative ones resolved;
    ``from landscape import store`` names ``landscape.store``."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    tree = ast.parse(path.read_text(), str(path))
    hooks = {
        id(inner)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and fn.name == DISPLAY_HOOK[0]
        for inner in ast.walk(fn)
        if isinstance(inner, ast.ImportFrom) and inner.module == DISPLAY_HOOK[1]
    }
    for node in ast.walk(tree):
        if id(node) in hooks:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            if base == "landscape":  # from landscape import store, _params
                found += [(node.lineno, f"landscape.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, base))
    return found


def wing_imports() -> dict[str, dict[str, list[str]]]:
    """wing -> imported wing -> ``file:line`` of each import."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in modules():
        for line, name in imported(path):
            if name.split(".")[0] == "landscape":
                target = name.split(".")[1] if "." in name else "landscape"
                where = f"{path.relative_to(PACKAGE.parent)}:{line}"
                edges[wing_of(path)][target].append(where)
    return edges


def test_every_wing_has_a_rank() -> None:
    """A new top-level module or sub-package must be placed in the picture first."""
    tops = {wing_of(p) for p in modules()}
    assert tops <= set(RANKS), f"give {sorted(tops - set(RANKS))} a rank in RANKS and the docs"


def test_the_top_level_holds_only_wings_and_a_few_shared_modules() -> None:
    files = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert files == [
        "__init__.py",
        "__main__.py",
        "_device.py",
        "_files.py",
        "_imports.py",
        "_params.py",
        "distributed.py",
    ]


@pytest.mark.parametrize("wing", sorted(RANKS))
def test_a_wing_imports_only_lower_wings(wing: str) -> None:
    """Lower wings never import higher ones (cli -> orchestration -> numerical -> base)."""
    bad = [
        f"{where} imports {target} (rank {RANKS.get(target, 'top')}, {wing} is {RANKS[wing]})"
        for target, places in wing_imports().get(wing, {}).items()
        if target != wing and not RANKS.get(target, sys.maxsize) < RANKS[wing]
        for where in places
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", sorted(ONLY_IN))
def test_third_party_packages_stay_in_their_wings(package: str) -> None:
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in modules()
        if wing_of(path) not in ONLY_IN[package]
        for line, name in imported(path)
        if name.split(".")[0] == package
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules() -> None:
    names = {module_name(p): p for p in modules()}
    graph = {
        m: {t for _, t in imported(p) if t in names and t != m and not m.startswith(f"{t}.")}
        for m, p in names.items()
    }
    done: set[str] = set()

    def visit(m: str, stack: list[str]) -> None:
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(m) :], m]))
        if m in done:
            return
        for t in sorted(graph[m]):
            visit(t, [*stack, m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


def test_long_modules_say_why() -> None:
    long = [
        f"{p.relative_to(PACKAGE.parent)} ({n} lines)"
        for p in modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
        and LONG_MODULE_REASON not in (ast.get_docstring(ast.parse(p.read_text())) or "")
    ]
    assert not long, f"split these or write '{LONG_MODULE_REASON} ...' at their top: {long}"


def test_every_wing_says_what_it_owns_and_may_import() -> None:
    """Each wing's docstring names every wing it imports in its "May import" paragraph."""
    imports = wing_imports()
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in doc, f"{init}: say what the wing owns and what it may import"
        allowed = doc[doc.index("May import") :].split("\n\n")[0]
        named = set(re.findall(r"landscape\.(\w+)", allowed))
        if "every wing" not in allowed:
            used = set(imports.get(init.parent.name, {})) - {init.parent.name}
            assert used <= named, f"{init}: May import does not name {sorted(used - named)}"


def test_the_public_api_is_pinned() -> None:
    assert landscape.__all__ == PUBLIC_API
    for name in PUBLIC_API:
        assert getattr(landscape, name) is not None


def test_the_cli_is_one_thin_layer_the_library_never_imports() -> None:
    users = {w for w, targets in wing_imports().items() if "cli" in targets} - {"cli", "__main__"}
    assert not users


if __name__ == "__main__":  # the wing-to-wing imports, for docs/architecture.md
    for wing in sorted(RANKS, key=lambda w: (-RANKS[w], w)):
        targets = wing_imports().get(wing, {})
        shown = ", ".join(f"{t} ({len(v)})" for t, v in sorted(targets.items()) if t != wing)
        print(f"{RANKS[wing]}  {wing:10s} -> {shown or '-'}")
