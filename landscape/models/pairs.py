"""BN/plain pairs: the two networks of a pair differ *only* by BatchNorm layers, so their
shared layers carry identical parameter names and can start from the same weights."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BATCHNORMS", "bn_layer_names", "copy_shared_parameters"]

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@torch.no_grad()
def copy_shared_parameters(src: nn.Module, dst: nn.Module) -> list[str]:
    """Copy every parameter and buffer of ``src`` whose name and shape match one of ``dst``.

    Returns:
        The names copied, in ``dst``'s order. Used so a BN/plain pair starts from the same
        weights (BN layers, present in one only, are skipped).
    """
    source = dict(src.named_parameters()) | dict(src.named_buffers())
    copied = []
    for name, t in [*dst.named_parameters(), *dst.named_buffers()]:
        if name in source and source[name].shape == t.shape:
            t.copy_(source[name])
            copied.append(name)
    return copied


def bn_layer_names(model: nn.Module) -> list[str]:
    """Names of the model's BatchNorm modules, in registration order."""
    return [n for n, m in model.named_modules() if isinstance(m, BATCHNORMS)]
