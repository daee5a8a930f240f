"""Nothing from a file is ever unpickled or evaluated (the brief's security rule), checked
in the source: every ``torch.load`` asks ``weights_only=True`` explicitly (torch < 2.6,
which pyproject admits, defaults to a full unpickler), every ``np.load`` refuses pickles, and
no code loads a pickle or evaluates text. The one exception is the user's explicit opt-in,
``weights_checkpoint(..., trust_pickle=True)`` (``--trust-pickle``) for a whole pickled model
they made themselves."""

from __future__ import annotations

import ast
from pathlib import Path

import landscape

ROOT = Path(landscape.__file__).parent.parent
SOURCES = sorted([*(ROOT / "landscape").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")])
#: (file, function) of the trust_pickle branch: the only full unpickler, asked for by name.
OPT_IN = {("landscape/store/weights.py", "weights_checkpoint")}


def calls(tree: ast.AST):
    """Every call with the name of the function it is in (its innermost def)."""

    def walk(node: ast.AST, where: str):
        for child in ast.iter_child_nodes(node):
            named = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            inside = child.name if named else where
            if isinstance(child, ast.Call):
                yield child, inside
            yield from walk(child, inside)

    yield from walk(tree, "<module>")


def dotted(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"{dotted(func.value)}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else "?"


def keyword(call: ast.Call, name: str):
    for k in call.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "not a constant"
    return "missing"


def found() -> dict[str, list[tuple[str, str, object]]]:
    sites: dict[str, list[tuple[str, str, object]]] = {"torch.load": [], "np.load": [], "other": []}
    for path in SOURCES:
        rel = path.relative_to(ROOT).as_posix()
        for call, where in calls(ast.parse(path.read_text(), rel)):
            name = dotted(call.func)
            if name == "torch.load":
                sites[name].append((rel, where, keyword(call, "weights_only")))
            elif name in ("np.load", "numpy.load"):
                sites["np.load"].append((rel, where, keyword(call, "allow_pickle")))
            elif name in ("eval", "exec", "pickle.load", "pickle.loads", "marshal.loads",
                          "yaml.load", "shelve.open", "dill.load", "joblib.load"):  # fmt: skip
                sites["other"].append((rel, where, name))
    return sites


def test_every_torch_load_is_weights_only_but_the_users_opt_in():
    sites = found()["torch.load"]
    assert len(sites) >= 3  # the checker sees the loads (safe_torch_load, the output guard, ...)
    unsafe = {(rel, where) for rel, where, value in sites if value is not True}
    assert unsafe == OPT_IN, f"torch.load without an explicit weights_only=True: {unsafe - OPT_IN}"


def test_every_np_load_refuses_pickles_and_nothing_unpickles_or_evaluates():
    sites = found()
    assert sites["np.load"] and all(v is False for _, _, v in sites["np.load"]), sites["np.load"]
    assert sites["other"] == []


def test_the_checker_sees_a_bad_load():
    bad = "import torch\ndef f(p):\n    return torch.load(p)\nx = eval('1')\n"
    found = calls(ast.parse(bad))
    got = [(where, dotted(c.func), keyword(c, "weights_only")) for c, where in found]
    assert ("f", "torch.load", "missing") in got and ("<module>", "eval", "missing") in got
