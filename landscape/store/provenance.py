"""Provenance: where every number in an HDF5 file comes from.

Every HDF5 file the toolkit writes carries :func:`provenance` as string attributes on its
root: schema and package versions, the command line, the configuration as canonical JSON,
time, host, device and git commit (``docs/hdf5-schema.md``).
"""

from __future__ import annotations

import importlib.metadata
import platform
import shlex
import socket
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from landscape.store.hdf5 import SCHEMA_VERSION, attr_str, dumps, write_attrs

__all__ = [
    "PROVENANCE_KEYS",
    "SCHEMA_VERSION",
    "package_version",
    "provenance",
    "read_provenance",
    "write_provenance",
]

PROVENANCE_KEYS = (
    "schema_version",
    "package",
    "package_version",
    "command_line",
    "config_json",
    "created",
    "torch_version",
    "numpy_version",
    "h5py_version",
    "python_version",
    "hostname",
    "device",
    "git_commit",
)
_PACKAGE = "landscape"
_GIT_TIMEOUT_S = 2.0


def package_version() -> str:
    """The installed version of landscape ("0+unknown" in a source tree not installed)."""
    try:
        return importlib.metadata.version(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


@lru_cache(maxsize=1)
def _git_commit() -> str:
    """HEAD of the repository holding this package, or "unknown" (no git, no repo, timeout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else "unknown"


def provenance(
    config: Mapping[str, Any] | None = None, *, device: str | None = None
) -> dict[str, str]:
    """Describe where a result comes from: software versions, command, config, host.

    Args:
        config: The configuration that produced the result (a dict or a dataclass); stored
            as sorted-key JSON. NumPy scalars/arrays and paths are converted.
        device: Device the computation ran on (default ``"cpu"``).

    Returns:
        ``dict[str, str]`` with exactly the keys of :data:`PROVENANCE_KEYS`.

    Raises:
        ValueError: If ``config`` holds values that cannot be written as JSON.
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "package": _PACKAGE,
        "package_version": package_version(),
        "command_line": shlex.join(sys.argv),
        "config_json": dumps(config if config is not None else {}, "config"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
        "numpy_version": np.__version__,
        "h5py_version": h5py.__version__,
        "python_version": platform.python_version(),
        "hostname": socket.gethostname(),
        "device": str(device) if device is not None else "cpu",
        "git_commit": _git_commit(),
    }


def write_provenance(obj: h5py.Group | h5py.File, prov: Mapping[str, str]) -> None:
    """Write ``prov`` as text attributes on ``obj`` (normally the file root)."""
    write_attrs(obj, {key: str(value) for key, value in prov.items()})


def read_provenance(obj: h5py.Group | h5py.File) -> dict[str, str]:
    """Return the :data:`PROVENANCE_KEYS` attributes present on ``obj`` (empty if none)."""
    return {k: attr_str(obj.attrs[k]) for k in PROVENANCE_KEYS if k in obj.attrs}
