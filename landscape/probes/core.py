"""What the gradient probe and ICS share (:mod:`.gradient`, :mod:`.covariate_shift`).

Loss and gradient at the model's current parameters with seeded stochastic layers, writing
``theta0 + alpha * d`` into the parameters from a saved copy (no drift), and validation of
the common arguments, the BN mode among them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from landscape._params import ModelSnapshot, Target, point_setter, set_point
from landscape.data.evaluation import BatchLoss, Loss, pair

#: BatchNorm during a probe: "train" uses batch statistics (the landscape the optimizer
#: sees), "eval" the running statistics. Slices add "recalibrate" (``SliceBNMode``).
BNMode = Literal["train", "eval"]


def check_bn_mode(bn_mode: str) -> bool:
    """True for ``"train"`` (batch statistics), False for ``"eval"``; else ValueError."""
    if bn_mode == "train":
        return True
    elif bn_mode == "eval":
        return False
    else:
        raise ValueError(f"unknown bn_mode {bn_mode!r}; expected 'train' or 'eval'")


def setup(
    model: nn.Module, batch: Any, bn_mode: str, loss_fn: Loss
) -> tuple[bool, Any, list, list]:
    """Validate; return the train flag, the batch (a plain one as the pair ``(inputs,
    targets)``), the trainable parameters' names and the parameters."""
    train_mode = check_bn_mode(bn_mode)
    if not isinstance(loss_fn, BatchLoss):
        batch = pair(batch)  # a dict is refused, naming batch_loss
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no parameters with requires_grad=True")
    return train_mode, batch, [n for n, _ in named], [p for _, p in named]


def saved(snap: ModelSnapshot, names: list[str], params: list[nn.Parameter]) -> list[Tensor]:
    """theta at entry: the snapshot's clones (no second copy), else a fresh clone."""
    return [snap.state[n] if n in snap.state else p.detach().clone() for n, p in zip(names, params)]


def by_name(
    mapping: Mapping[str, Tensor],
    names: list[str],
    params: list[nn.Parameter],
    what: str,
    missing: Literal["zero", "error"] = "zero",
) -> list[Tensor]:
    """A caller's ``{name: tensor}`` as one tensor per trainable parameter, in ``names`` order.

    Names that are not trainable parameters are an error; so are a tensor whose shape is not
    its parameter's and a value that is not a tensor. A missing name (or a None value) is a
    zero tensor with ``missing="zero"``, an error with ``missing="error"``. Tensors come back
    detached, in their parameter's dtype and on its device.
    """
    unknown = sorted(set(mapping) - set(names))
    if missing == "error":
        absent = [n for n in names if n not in mapping]
        if absent or unknown:
            msg = f"missing {absent[:3]}, extra {unknown[:3]}"
            raise ValueError(f"{what} keys do not match the trainable parameters: {msg}")
    elif unknown:
        raise ValueError(f"{what} has names that are not trainable parameters: {unknown[:3]}")
    out = []
    for n, p in zip(names, params):
        v = mapping.get(n)
        if v is None and missing == "zero":
            out.append(torch.zeros_like(p))
            continue
        if not isinstance(v, Tensor) or v.shape != p.shape:
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"{what}[{n!r}] has shape {got}, parameter {tuple(p.shape)}")
        out.append(v.detach().to(device=p.device, dtype=p.dtype))
    return out


def first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def loss_and_grad(
    model: nn.Module, loss_fn: Loss, batch: Any, wrt: list[nn.Parameter], seed: int
) -> tuple[Tensor, list[Tensor]]:
    """L_B at the model's current parameters (0-d, detached) and its gradient w.r.t. ``wrt``."""
    seed_device(wrt[0].device, seed)  # identical draws in stochastic layers at every evaluation
    if isinstance(loss_fn, BatchLoss):
        try:
            loss = loss_fn(model, batch)
        except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as err:
            raise ValueError(f"the batch_loss fn fails on the batch: {first_line(err)}") from err
    else:
        inputs, targets = batch
        try:
            out = model(inputs)
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise ValueError(f"batch does not fit the model: {first_line(err)}") from err
        try:
            loss = loss_fn(out, targets)
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            raise ValueError(f"batch targets do not fit loss_fn: {first_line(err)}") from err
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar, got {shape}; reduce it (e.g. mean)")
    if not loss.requires_grad:
        raise ValueError("the loss does not depend on the model's trainable parameters")
    grads = torch.autograd.grad(loss.reshape(()), wrt, allow_unused=True)
    grads = [torch.zeros_like(p) if gr is None else gr for p, gr in zip(wrt, grads)]
    return loss.detach().reshape(()), grads


def seed_device(device: torch.device, seed: int) -> None:
    """Seed only the generator the model draws from (``torch.manual_seed`` also seeds every
    other backend and costs ~0.4 ms per call on CPU builds); restored by ``preserved``."""
    if device.type == "cuda":
        torch.cuda.default_generators[device.index or 0].manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


def _line(params: list[nn.Parameter], theta0: list[Tensor], d: list[Tensor]) -> list[Target]:
    """Each parameter moved from its saved value along its part of the one direction."""
    return [(p, t, [(0, di)]) for p, t, di in zip(params, theta0, d)]


def place(params: list[nn.Parameter], theta0: list[Tensor], d: list[Tensor], alpha: float):
    """Write ``theta0 + alpha * d`` into the parameters (from the saved copy: no drift)."""
    set_point(_line(params, theta0, d), (alpha,))


@contextlib.contextmanager
def points(
    params: list[nn.Parameter], theta0: list[Tensor], d: list[Tensor]
) -> Iterator[Callable[[float], None]]:
    """``at(alpha)`` writes ``theta0 + alpha * d`` into the parameters, as :func:`place` does
    (bit for bit), for the duration of the block: one kernel over one vector where the
    parameters can be held in one buffer (:func:`~landscape._params.point_setter`)."""
    with point_setter(_line(params, theta0, d), 1) as at:
        yield lambda alpha: at((alpha,))


def cosine(inner: Tensor, norm_a: Tensor, norm_b: Tensor) -> Tensor:
    """Cosine from its parts, clamped against rounding; nan when a norm is 0."""
    return (inner / (norm_a * norm_b)).clamp(-1.0, 1.0)
