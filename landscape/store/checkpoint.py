"""The checkpoint format: save, weights-only load, rebuild the model, read its training.

A checkpoint is one ``torch.save`` file holding a plain dict that ``torch.load(...,
weights_only=True)`` can read without executing anything: tensors, numbers, strings,
lists, tuples and dicts only. The model spec, the training configuration and any extra
metadata are stored as JSON strings, so arbitrary Python objects never enter the file.
The layout is specified in ``docs/hdf5-schema.md`` (section "Checkpoint files").

File names, atomic writes and weights-only reads are in
:mod:`landscape.store.checkpoint_files`, the RNG states in :mod:`landscape.store.rng`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape.models import ModelSpec
from landscape.store.checkpoint_files import (
    CheckpointError,
    as_step,
    atomic_torch_save,
    safe_torch_load,
    step_of_name,
)
from landscape.store.rng import capture_rng

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "Checkpoint",
    "TrainingRecord",
    "build_model",
    "checkpoint_step",
    "load_checkpoint",
    "save_checkpoint",
]

#: What to do about a damaged checkpoint, the end of its message (a resume says otherwise).
REPAIR = "re-create it or leave it out"
CHECKPOINT_FORMAT = "landscape-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
CHECKPOINT_KEYS = (
    "format",
    "format_version",
    "model_state",
    "optimizer_state",
    "step",
    "rng",
    "spec",
    "config",
    "extra",
)


@dataclass
class Checkpoint:
    """The content of a checkpoint file, with the JSON fields decoded.

    Attributes:
        model_state: ``model.state_dict()`` at save time (parameters and buffers).
        optimizer_state: ``optimizer.state_dict()`` or None if no optimizer was saved.
        step: Training step the state belongs to (number of updates already applied).
        rng: RNG states in the form returned by :func:`capture_rng`.
        spec: Model spec as a JSON dict (``ModelSpec.to_dict()``); tuples come back as lists.
        config: Training configuration as a JSON dict.
        extra: Free-form JSON metadata.
        path: The file the checkpoint was read from.
    """

    model_state: dict[str, Tensor]
    optimizer_state: dict[str, Any] | None
    step: int
    rng: dict[str, Any]
    spec: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    # The caller's own model builder (weights_checkpoint): never read from a file.
    builder: Callable[[], nn.Module] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class TrainingRecord:
    """How a checkpoint's model was trained, as far as evaluating it needs to know.

    Read from the checkpoint's ``config`` (the trainer stores its whole ``TrainConfig``
    there); offline probes and checkpoint slices take their defaults from it: the data set
    (with the same directory, options and split seed), the batch size and the learning rate.
    A field the config does not hold is None (``data_options`` empty, ``seed`` 0), and the
    code that needs it asks the caller for it.
    """

    model: str | None = None  # registry name or "package.module:factory"
    dataset: str | None = None
    data_dir: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0  # the run's seed: also the data set's split seed
    lr: float | None = None
    batch_size: int | None = None

    @classmethod
    def of(cls, ckpt: Checkpoint) -> TrainingRecord:
        """The record in ``ckpt.config``; keys it does not name are ignored.

        Raises:
            CheckpointError: If a recorded value has the wrong type.
        """
        c = ckpt.config
        text, integer, number = (str, "a string"), (int, "an integer"), ((int, float), "a number")
        types = {
            "model": text, "dataset": text, "data_dir": text, "data_options": (dict, "a dict"),
            "seed": integer, "lr": number, "batch_size": integer,
        }  # fmt: skip
        for key, (kind, what) in types.items():
            value = c.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
                raise CheckpointError(
                    f"{ckpt.path}: its training config holds {key}={value!r}, which is not "
                    f"{what}: re-save it with a valid config"
                )
        return cls(
            model=c.get("model"),
            dataset=c.get("dataset"),
            data_dir=c.get("data_dir"),
            data_options=dict(c.get("data_options") or {}),
            seed=int(c.get("seed") or 0),
            lr=None if c.get("lr") is None else float(c["lr"]),
            batch_size=c.get("batch_size"),
        )


# --------------------------------------------------------------------------- JSON fields


def _check_json_safe(obj: Any, where: str) -> None:
    """Raise CheckpointError naming the first value JSON cannot round-trip."""
    # float covers NaN and inf too: Python's json writes and reads them back exactly.
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise CheckpointError(
                    f"{where} has key {k!r} of type {type(k).__name__}; JSON keys must be "
                    "str: convert the key to a string"
                )
            _check_json_safe(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_json_safe(v, f"{where}[{i}]")
        return
    raise CheckpointError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which is not JSON-safe: "
        "convert it to str, int, float, bool, None, list or dict before saving"
    )


def _to_json_dict(value: Any, name: str) -> str:
    """Validate and encode a spec/config/extra mapping as a JSON string."""
    if value is None:
        value = {}
    elif not isinstance(value, Mapping) and callable(getattr(value, "to_dict", None)):
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise CheckpointError(
            f"{name} must be a dict (or have .to_dict()), got {type(value).__name__}"
        )
    _check_json_safe(value, name)
    return json.dumps(dict(value))


def _from_json_dict(text: Any, name: str, path: Path) -> dict[str, Any]:
    if not isinstance(text, str):
        raise CheckpointError(f"corrupt checkpoint at {path}: field {name!r} is not a JSON string")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"corrupt checkpoint at {path}: field {name!r}: {exc}") from exc
    if not isinstance(value, dict):
        raise CheckpointError(f"corrupt checkpoint at {path}: field {name!r} is not a JSON object")
    return value


# --------------------------------------------------------------------------- save


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module | Mapping[str, Tensor],
    step: int,
    spec: Mapping[str, Any] | Any,
    config: Mapping[str, Any] | Any,
    optimizer: torch.optim.Optimizer | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write a checkpoint atomically (temp file + fsync + rename); parents are created.

    The global RNG states are captured at call time (:func:`capture_rng`), so saving
    right after optimizer step ``step`` lets a resumed run draw the same numbers.

    Args:
        path: Target file, usually :func:`checkpoint_path`.
        model: The module (its ``state_dict()`` is saved) or a state_dict.
        step: Non-negative training step.
        spec: JSON-safe model spec (a dict, or an object with ``to_dict()`` such as
            ``ModelSpec``); enough to rebuild the model.
        config: JSON-safe training configuration (dict or object with ``to_dict()``).
        optimizer: Optimizer whose ``state_dict()`` is saved, or None.
        extra: JSON-safe free-form metadata, or None.

    Raises:
        CheckpointError: If spec/config/extra hold values that are not JSON-safe.
        ValueError: If ``step`` is not a non-negative int.
    """
    step = as_step(step)
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model_state": state,
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "rng": capture_rng(),
        "spec": _to_json_dict(spec, "spec"),
        "config": _to_json_dict(config, "config"),
        "extra": _to_json_dict(extra, "extra"),
    }
    atomic_torch_save(payload, Path(path))


# --------------------------------------------------------------------------- load


def checkpoint_step(path: str | Path) -> int:
    """The step of a checkpoint file: that of its ``step_XXXXXXX.pt`` name (no file read;
    :func:`load_checkpoint` checks it against the stored step), else the stored step."""
    step = step_of_name(Path(path).name)
    return step if step is not None else load_checkpoint(path).step


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint` without executing any code.

    Args:
        path: The ``.pt`` file.
        map_location: Passed to ``torch.load`` (default: everything on the CPU).

    Returns:
        The decoded :class:`Checkpoint`.

    Raises:
        CheckpointError: If the file is missing, unreadable, holds disallowed objects (it
            is refused, not executed), is a foreign torch file (e.g. a bare state_dict), or
            was written by a newer format version; a field of the wrong type, or a stored
            step other than the one its ``step_XXXXXXX.pt`` name says (damaged).
    """
    path = Path(path)
    obj = safe_torch_load(path, map_location)
    if not isinstance(obj, Mapping) or obj.get("format") != CHECKPOINT_FORMAT:
        what = (
            f"a dict with keys {sorted(map(str, obj))[:5]}"
            if isinstance(obj, Mapping)
            else f"a {type(obj).__name__}"
        )
        raise CheckpointError(
            f"foreign checkpoint at {path}: {what} (expected keys {list(CHECKPOINT_KEYS)}); "
            "for your own weights (a state_dict) pass --model package.module:factory "
            "(weights_checkpoint)"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint at {path} has format_version {version!r}, this landscape reads up to "
            f"{CHECKPOINT_FORMAT_VERSION}: upgrade landscape"
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in obj]
    if missing:
        raise CheckpointError(f"corrupt checkpoint at {path}: missing keys {missing}")
    step = _checked_fields(obj, path)
    return Checkpoint(
        model_state=dict(obj["model_state"]),
        optimizer_state=obj["optimizer_state"],
        step=step,
        rng=obj["rng"],
        spec=_from_json_dict(obj["spec"], "spec", path),
        config=_from_json_dict(obj["config"], "config", path),
        extra=_from_json_dict(obj["extra"], "extra", path),
        path=path,
    )


def _checked_fields(obj: Mapping[str, Any], path: Path) -> int:
    """The stored step, once the fields a reader relies on have their documented types.

    A file named ``step_XXXXXXX.pt`` must hold that step: a resume or a probe would
    otherwise file its rows under the wrong step.

    Raises:
        CheckpointError: naming the file and the field as damaged.
    """

    def damaged(what: str) -> CheckpointError:
        return CheckpointError(f"damaged checkpoint at {path}: {what}; {REPAIR}")

    try:
        step = as_step(obj["step"])
    except ValueError:
        raise damaged(f"its step is {obj['step']!r}, not a non-negative integer") from None
    named = step_of_name(path.name)
    if named is not None and named != step:
        raise damaged(f"it is named for step {named} but holds step {step}")
    state = obj["model_state"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise damaged("model_state is not a dict of named tensors")
    opt = obj["optimizer_state"]
    if opt is not None and not (
        isinstance(opt, Mapping)
        and isinstance(opt.get("state"), Mapping)
        and isinstance(opt.get("param_groups"), (list, tuple))
        and all(isinstance(g, Mapping) and "params" in g for g in opt["param_groups"])
    ):
        raise damaged("optimizer_state is not an optimizer's state_dict (state, param_groups)")
    if not isinstance(obj["rng"], Mapping):
        raise damaged("rng is not a dict of generator states")
    return step


def build_model(ckpt: Checkpoint, *, device: Any = "cpu", trust_factory: bool = False) -> nn.Module:
    """The checkpoint's model, rebuilt from its stored spec, in its stored dtype, with its
    weights and buffers.

    A spec whose model is an import path (``package.module:factory``) would import and call
    code named by the file, so it is refused unless ``trust_factory`` (the CLI's
    ``--trust-factory``): weights-only loading is only safe if the file cannot pick code.

    Raises:
        CheckpointError: an untrusted import path, a spec that does not build, or weights
            that do not fit it.
    """
    if ckpt.builder is not None:
        return _load_into(ckpt, ckpt.builder, device)
    name = str(ckpt.spec.get("name", ""))
    if ":" in name and not trust_factory:
        raise CheckpointError(
            f"{ckpt.path} names its model by the import path {name!r}: rebuilding it would run "
            "that code; pass --trust-factory (trust_factory=True) only if you trust the file"
        )
    # seeded: the global RNG is left as it was
    return _load_into(ckpt, lambda: ModelSpec.from_dict(ckpt.spec).build(seed=0), device)


def _load_into(ckpt: Checkpoint, build: Callable[[], nn.Module], device: Any) -> nn.Module:
    """``build()``'s model in the weights' dtype on ``device``, with ``ckpt``'s weights."""
    try:
        model = build()
        if not isinstance(model, nn.Module):
            raise TypeError(f"the model factory returned a {type(model).__name__}, not a module")
        floats = [t.dtype for t in ckpt.model_state.values() if t.is_floating_point()]
        model.to(device=device, dtype=floats[0] if floats else torch.float32)
        model.load_state_dict(ckpt.model_state)
    # ModelSpec.build already turns a factory's ZeroDivisionError/OverflowError into ValueError.
    except (TypeError, ValueError, RuntimeError) as exc:
        why = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{ckpt.path}: cannot rebuild its model: {why}") from None
    return model
