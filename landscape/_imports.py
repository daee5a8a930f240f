"""Objects named by an import path, ``package.module:name``: your model factory, data set or
loss, given on the command line or in a config.

The current directory is importable while the name is resolved, as under ``python -m``, so
``--model mymodels:make`` finds ``./mymodels.py`` without ``PYTHONPATH``. Importing runs the
module's code: only paths the user gave, or files they trust, are resolved.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__all__ = ["import_object", "is_import_path"]


def is_import_path(name: str) -> bool:
    """Whether ``name`` has the form ``package.module:name``."""
    module, sep, attr = str(name).partition(":")
    return bool(sep and module and attr)


def import_object(path: str, what: str) -> Any:
    """The object at ``package.module:name`` (``name`` may be dotted: ``module:Class.make``).

    Raises:
        ValueError: naming ``what`` (e.g. "model factory") when the path does not resolve.
    """
    if not is_import_path(path):
        raise ValueError(f"{what} {path!r} is not an import path package.module:name")
    module_name, _, attr = path.partition(":")
    cwd, added = os.getcwd(), False
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
        added = True
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"cannot import {what} {path!r}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(cwd)
    return obj
