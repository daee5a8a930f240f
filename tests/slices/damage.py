"""Ways to damage a slice file (``h5py.File`` opened ``r+``), shared by the library's and the
command line's tests of the checked reader (:mod:`landscape.slices.cells`)."""

from __future__ import annotations

import h5py
import numpy as np


def bad_dtype(f: h5py.File) -> None:
    """Every tensor of the first direction names a dtype torch does not have."""
    for ds in f["directions/d1"].values():
        ds.attrs["dtype"] = "os.system"


def no_name(f: h5py.File) -> None:
    """The first direction's tensors lose their parameter names."""
    for ds in f["directions/d1"].values():
        del ds.attrs["name"]


def extra_group(f: h5py.File) -> None:
    """A group below ``directions`` that is not a direction."""
    f["directions"].create_group("dx")


def strings(f: h5py.File) -> None:
    """The loss grid replaced by one of the same shape holding text."""
    shape = f["values/loss"].shape
    del f["values/loss"]
    f["values/loss"] = np.full(shape, b"a")
