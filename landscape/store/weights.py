"""Your own weights as a checkpoint: a state_dict file (or, trusted, a whole pickled model)
and the factory that builds its model, for probes and slices of models not trained here."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape._imports import import_object
from landscape.store.checkpoint import CHECKPOINT_FORMAT, Checkpoint, build_model
from landscape.store.checkpoint_files import CheckpointError, PickledObjectsError, safe_torch_load

__all__ = ["load_state_dict_file", "weights_checkpoint"]

# Wrapper keys under which third-party files commonly keep their state_dict.
_STATE_DICT_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model_state", "model")


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def load_state_dict_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Tensor]:
    """Load user-supplied weights safely (``weights_only=True``).

    Accepts a bare state_dict (``torch.save(model.state_dict(), path)``), a landscape
    checkpoint (its ``model_state`` is returned), or a dict wrapping the state_dict under
    one of ``state_dict``, ``model_state_dict``, ``model_state``, ``model``. Key prefixes
    such as ``module.`` are left as they are.

    Raises:
        CheckpointError: If the file is missing, unsafe, unreadable, or holds no state_dict.
    """
    path = Path(path)
    obj = safe_torch_load(path, map_location)
    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        return dict(obj["model_state"])
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in _STATE_DICT_WRAPPER_KEYS:
            if _is_state_dict(obj.get(key)):
                return dict(obj[key])
    raise CheckpointError(
        f"{path} holds no state_dict (a mapping of parameter names to tensors): save one with "
        "torch.save(model.state_dict(), path)"
    )


def weights_checkpoint(
    path: str | Path,
    model: str,
    options: Mapping[str, Any] | None = None,
    *,
    trust_pickle: bool = False,
) -> Checkpoint:
    """Your own weights as a checkpoint: probes and slices take it like a landscape one.

    Args:
        path: ``torch.save(model.state_dict(), path)`` (also a dict wrapping the state_dict,
            see :func:`load_state_dict_file`), or a whole pickled model with ``trust_pickle``.
        model: ``package.module:factory`` (the current directory is importable): called as
            ``factory(**options)``, it builds the model the weights belong to.
        options: keyword arguments of the factory.
        trust_pickle: unpickle a whole pickled model (``torch.save(model, path)``): that runs
            code the file names, so only for a file you made or trust.

    Returns:
        A :class:`Checkpoint` with step 0, an empty training config (probes and slices then
        ask for the data set, learning rate and batch size), ``spec = {"factory": model,
        "options": options}`` recorded as provenance, and the builder.

    Raises:
        CheckpointError: the file is missing, unreadable, pickled (without ``trust_pickle``),
            or its weights do not fit the model; ValueError: the factory does not import.
    """
    path, options = Path(path), dict(options or {})
    factory = import_object(model, "model factory")
    if not callable(factory):
        raise ValueError(f"model factory {model!r} is not callable")
    form = "state_dict"
    try:
        state = load_state_dict_file(path)
    except PickledObjectsError:
        if not trust_pickle:
            raise CheckpointError(
                f"{path} is a whole pickled model: loading it runs code the file names; pass "
                "--trust-pickle (trust_pickle=True) only for a file you made or trust, or save "
                "its model.state_dict() instead"
            ) from None
        whole = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(whole, nn.Module):
            raise CheckpointError(f"{path} holds a {type(whole).__name__}, not a model") from None
        state, form = whole.state_dict(), "pickled model"
    spec = {"factory": model, "options": options}
    ckpt = Checkpoint(state, None, 0, {}, spec=spec, extra={"form": form}, path=path,
                      builder=lambda: factory(**options))  # fmt: skip
    build_model(ckpt)  # the weights fit the model, or a one-line error now
    return ckpt
