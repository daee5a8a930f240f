"""Decorated functions rewritten as plain definitions followed by an assignment.

mutmut 3 leaves every decorated function alone (all but a lone ``@staticmethod`` or
``@classmethod``): copying one for its trampoline could repeat a decorator's side effect.
In this package that hid ~80 functions from mutation testing, among them every
``@contextlib.contextmanager`` and ``@torch.no_grad()`` one (the snapshot and restore of
``_params``, the point writers). :func:`undecorate` rewrites::

    @a(x)
    @b
    def f(...): ...

as the equivalent::

    def f(...): ...
    f = a(x)(b(f))

which mutmut mutates like any function; the decorators still wrap it, once, at the same
place in the module or class body. A function whose decorator names the function itself
(``@value.setter def value``) is defined under another name first, so that the decorator
still sees the property. ``scripts/mutate.py`` applies it to the copy of the package that
mutmut reads, never to the package itself.
"""

from __future__ import annotations

import libcst as cst

#: Decorators mutmut handles itself (alone on a function).
KEPT = ("staticmethod", "classmethod")


def undecorate(source: str) -> str:
    """``source`` with its decorated functions (at any depth) in the assignment form."""
    return cst.parse_module(source).visit(_Undecorate()).code


def _names(node: cst.CSTNode) -> set[str]:
    found: set[str] = set()

    class Names(cst.CSTVisitor):
        def visit_Name(self, name: cst.Name) -> None:
            found.add(name.value)

    node.visit(Names())
    return found


class _Undecorate(cst.CSTTransformer):
    def leave_FunctionDef(
        self, original: cst.FunctionDef, updated: cst.FunctionDef
    ) -> cst.FunctionDef | cst.FlattenSentinel[cst.BaseStatement]:
        decorators = updated.decorators
        if not decorators:
            return updated
        alone = decorators[0].decorator
        if len(decorators) == 1 and isinstance(alone, cst.Name) and alone.value in KEPT:
            return updated
        name = updated.name.value
        named = any(name in _names(d.decorator) for d in decorators)
        defined = f"_{name}__undecorated" if named else name
        wrapped: cst.BaseExpression = cst.Name(defined)
        for d in reversed(decorators):  # the decorator nearest the def applies first
            wrapped = cst.Call(func=d.decorator, args=[cst.Arg(wrapped)])
        assign = cst.SimpleStatementLine(
            body=[cst.Assign(targets=[cst.AssignTarget(cst.Name(name))], value=wrapped)]
        )
        plain = updated.with_changes(
            decorators=[],
            name=cst.Name(defined),
            leading_lines=[*decorators[0].leading_lines, *updated.leading_lines],
        )
        return cst.FlattenSentinel([plain, assign])
