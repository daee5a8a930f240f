"""Mutation testing of one wing with mutmut 3: ``make mutate WING=probes [MODULES="core"]``.

Not part of ``make test`` or CI: a habit for after a change to a numerical module. mutmut plants
one small change (a mutant) at a time in ``landscape/<wing>/`` and runs the tests of that wing
that reach the changed function; a mutant no test notices *survived*: a test is missing, or the
change is equivalent (the same behaviour). ``docs/testing.md`` holds each wing's last score and
the survivors judged equivalent, with the reason for each.

Each wing works in its own git-ignored directory, ``build/mutate/<wing>/``: this project's
``pyproject.toml`` with a ``[tool.mutmut]`` table appended, a copy of ``landscape/`` whose
mutated modules have their decorated functions rewritten as a definition and an assignment
(``scripts/_undecorate.py``: mutmut 3 skips decorated functions, among them every
context manager and ``@torch.no_grad()`` function), and links to ``tests/``, ``docs/`` and
``scripts/`` (:data:`ALSO_COPY`). mutmut copies them to
``build/mutate/<wing>/mutants/``, mutates only the wing's modules (``--modules`` narrows them),
runs ``tests/<wing>/`` (``--tests`` names others instead) once to learn which test reaches
which function, then each mutant against those tests only: one forked worker, one thread (the
development machines have 2 shared cores). Logging
calls, the messages of raised errors, ``__repr__`` and docstrings are not mutated
(:data:`DO_NOT_MUTATE_PATTERNS`, and a ``# pragma: no mutate block`` on each ``__repr__`` and
``_repr_png_``).

Results persist: a second run tests only the mutants of functions that changed since;
``--survivors`` reruns the surviving mutants (after you added a test), those no test reached
and those of changed functions; ``--fresh`` starts over.
``cd build/mutate/<wing> && ../../../.venv/bin/mutmut show NAME`` prints a mutant's diff.

The package's top-level modules are the pseudo-wing ``root``: ``make mutate WING=root
MODULES=_params`` (tests: ``tests/test_params.py`` unless ``TESTS=`` names others).

Run:  .venv/bin/python scripts/mutate.py probes [--modules gradient core] [--survivors]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from _undecorate import undecorate  # scripts/, beside this file

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "landscape"

#: Lines whose expressions (a call with all its arguments) are never mutated: logging, and the
#: message of an error raised (its text; the condition that raises it is mutated). Tests check
#: a message with ``match=``, a search that a message wrapped in "XX...XX" still passes.
#: What the tests read besides the package and themselves (tests/store/test_schema_doc.py
#: checks docs/hdf5-schema.md against the files that scripts/fig2_noisy_bn.py writes), copied
#: next to the mutants.
ALSO_COPY = ["docs", "scripts"]
DO_NOT_MUTATE_PATTERNS = [
    r"\b(log|logger|logging)\.(debug|info|warning|error|exception)\(",
    r"^\s*raise\b",
]


#: Not a wing: the modules at the package's top level (``_params``, ``_files``, ...), named
#: with ``--modules``; their tests by default are ``tests/test_<module>.py``.
ROOT_WING = "root"


def wings() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def module_path(wing: str, module: str) -> str:
    """A module's path from the repository root (``root``: the package's top level)."""
    return f"landscape/{module}.py" if wing == ROOT_WING else f"landscape/{wing}/{module}.py"


def default_tests(wing: str, modules: list[str]) -> list[str]:
    """``tests/<wing>/``; for ``root``, each module's ``tests/test_<module>.py``."""
    if wing != ROOT_WING:
        return [f"tests/{wing}/"]
    return [f"tests/test_{m.lstrip('_')}.py" for m in modules]


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def mutmut_table(wing: str, modules: list[str], tests: list[str]) -> str:
    """The ``[tool.mutmut]`` table of one wing's run."""
    only = [module_path(wing, m) for m in modules] or [f"landscape/{wing}/*"]
    return "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["landscape"]',
            f"only_mutate = {toml_list(only)}",
            f"do_not_mutate_patterns = {toml_list(DO_NOT_MUTATE_PATTERNS)}",
            f"pytest_add_cli_args_test_selection = {toml_list(tests)}",
            f"also_copy = {toml_list(ALSO_COPY)}",
            'pytest_add_cli_args = ["-p", "no:cacheprovider"]',
            "use_git_change_detection = false",
            "",
        ]
    )


def prepare(workdir: Path, wing: str, modules: list[str], tests: list[str], fresh: bool) -> None:
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    copy_package(workdir / "landscape", mutated(wing, modules))
    for name in ("tests", *ALSO_COPY):
        link = workdir / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    text = (ROOT / "pyproject.toml").read_text() + mutmut_table(wing, modules, tests)
    config = workdir / "pyproject.toml"
    if not config.is_file() or config.read_text() != text:
        config.write_text(text)


def mutated(wing: str, modules: list[str]) -> list[Path]:
    """The files a run mutates, relative to the package."""
    if modules:
        return [Path(module_path(wing, m)).relative_to("landscape") for m in modules]
    return sorted(p.relative_to(PACKAGE) for p in (PACKAGE / wing).glob("*.py"))


def copy_package(dest: Path, rewrite: list[Path]) -> None:
    """A fresh copy of the package at ``dest`` (replacing a link left by earlier versions of
    this script), the files of ``rewrite`` with their decorated functions undecorated
    (:mod:`_undecorate`: mutmut 3 does not mutate decorated functions)."""
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for rel in rewrite:
        (dest / rel).write_text(undecorate((PACKAGE / rel).read_text()))


def mutmut(workdir: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    command = [sys.executable, "-m", "mutmut", *args]
    return subprocess.run(command, cwd=workdir, env=env, text=True, capture_output=capture)


def results(workdir: Path) -> dict[str, str]:
    """Every mutant's status by name (``killed``, ``survived``, ``no tests``, ``timeout``...)."""
    out = mutmut(workdir, "results", "--all", "true", capture=True)
    if out.returncode != 0:
        sys.exit(out.stderr or out.stdout)
    found = (re.match(r"\s+(\S+): (.+)$", line) for line in out.stdout.splitlines())
    return {m.group(1): m.group(2).strip() for m in found if m}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wing", choices=[*wings(), ROOT_WING])
    parser.add_argument(
        "--modules", nargs="*", default=[], help="module names in the wing (default: all)"
    )
    parser.add_argument(
        "--tests", nargs="*", default=[], help="the tests to run (default: tests/<wing>/)"
    )
    parser.add_argument(
        "--survivors", action="store_true", help="rerun the surviving (untested, unchecked) mutants"
    )
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    args = parser.parse_args(argv)

    if args.wing == ROOT_WING and not args.modules:
        parser.error("root needs --modules (e.g. --modules _params)")
    for m in args.modules:
        if not (ROOT / module_path(args.wing, m)).is_file():
            parser.error(f"no module {module_path(args.wing, m)}")
    tests = args.tests or default_tests(args.wing, args.modules)
    for t in tests:
        if not (ROOT / t).exists():
            parser.error(f"no tests at {t}; name them with --tests")
    workdir = ROOT / "build" / "mutate" / args.wing
    prepare(workdir, args.wing, args.modules, tests, args.fresh)

    names: list[str] = []
    if args.survivors:
        # not checked: mutants of functions changed since; no tests: none reached them then
        rerun = ("survived", "not checked", "no tests")
        names = [n for n, s in results(workdir).items() if s in rerun]
        if not names:
            print("no surviving mutants to rerun")
            return 0
    start = time.perf_counter()
    run = mutmut(workdir, "run", "--max-children", "1", *names)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        return run.returncode

    status = results(workdir)
    counts = Counter(status.values())
    survivors = sorted(n for n, s in status.items() if s not in ("killed", "timeout"))
    print(f"\nmutate {args.wing}: {len(status)} mutants in {wall:.0f} s wall")
    print("  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for name in survivors:
        print(f"  {status[name]}: {name}")
    print(f"diffs: cd {workdir.relative_to(ROOT)} && {sys.executable} -m mutmut show NAME")
    return 0


if __name__ == "__main__":
    sys.exit(main())
