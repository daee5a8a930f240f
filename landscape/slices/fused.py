"""The cross-entropy of a batch of logits with few classes, in the CPU layout that is fast.

``F.cross_entropy(z, y)`` of ``(N, C)`` logits is ``nll_loss(log_softmax(z, dim=1), y)``.
On the CPU, torch's ``log_softmax`` vectorises along the softmax dimension, so with fewer
classes than one vector register holds (16 floats with AVX-512) each row runs scalar: 65-115
us for the 512 x 10 logits of a digits batch on one thread, 1-2% of a small VGG's slice point.
Along dimension 0 of the transposed ``(C, N)`` view it vectorises across examples instead:
10-15 us, the same operations on the same numbers (float64: equal to the last bit)::

    CE(z, y) = nll_loss(log_softmax(z^T, dim=0)^T, y)

Used by the grid engine for ``F.cross_entropy`` and ``nn.CrossEntropyLoss`` without label
smoothing (weights, ``ignore_index`` and ``reduction`` pass through to ``nll_loss``), for 2-D
float32/float64 CPU logits with 3 to 15 classes and at least 256 examples (measured: below
that, or from 16 classes on, torch's own layout is as fast or faster); anything else, bfloat16
logits under autocast included, goes to the loss as given.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["cross_entropy", "fuse"]

FEW_CLASSES = range(3, 16)  # C for which the transposed layout is faster
MIN_EXAMPLES = 256


def cross_entropy(outputs: Tensor, targets: Tensor, **options) -> Tensor:
    """``F.cross_entropy(outputs, targets, **options)``; by the transposed layout where it is
    faster (``options``: ``weight``, ``ignore_index``, ``reduction``)."""
    if (
        outputs.device.type == "cpu"
        and outputs.ndim == 2
        and outputs.shape[1] in FEW_CLASSES
        and outputs.shape[0] >= MIN_EXAMPLES
        and outputs.dtype in (torch.float32, torch.float64)  # half types: torch's own rules
        and targets.ndim == 1
        and not targets.is_floating_point()
    ):
        return F.nll_loss(F.log_softmax(outputs.t(), 0).t(), targets, **options)
    return F.cross_entropy(outputs, targets, **options)


def fuse(loss_fn: Callable) -> Callable:
    """:func:`cross_entropy` in place of ``F.cross_entropy`` or an ``nn.CrossEntropyLoss``
    without label smoothing; any other loss as it is."""
    if loss_fn is F.cross_entropy:
        return cross_entropy
    if type(loss_fn) is nn.CrossEntropyLoss and loss_fn.label_smoothing == 0.0:
        options = {"ignore_index": loss_fn.ignore_index, "reduction": loss_fn.reduction}
        if loss_fn.weight is None and options == {"ignore_index": -100, "reduction": "mean"}:
            return cross_entropy  # torch's defaults
        return partial(cross_entropy, weight=loss_fn.weight, **options)
    return loss_fn
