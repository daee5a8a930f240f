"""Model families for BatchNorm-vs-plain loss-landscape studies, and a JSON-safe spec.

The import for the model registry: it re-exports the registry and :class:`ModelSpec`
(:mod:`landscape.model_spec`), registers the built-in families
(:mod:`landscape.architectures`, which documents their parameter names) and holds the
helpers for BN/plain pairs: the two networks of a pair differ *only* by BatchNorm layers,
so their shared layers carry identical parameter names. Blocks and families are imported
from their own modules (:mod:`landscape.model_blocks`, :mod:`landscape.architectures`).

A ``ModelSpec`` holds enough to rebuild a model; ``build(seed)`` is reproducible and leaves
the global RNG untouched.
"""

from __future__ import annotations

import torch
from torch import nn

# Imported for its side effect: it registers the built-in families in MODELS (nothing else
# imports it, so without this line MODELS would be empty).
from landscape import architectures as _architectures  # noqa: F401
from landscape.model_spec import MODELS, ModelSpec, create_model, register_model

__all__ = [
    "BATCHNORMS",
    "MODELS",
    "ModelSpec",
    "bn_layer_names",
    "copy_shared_parameters",
    "create_model",
    "register_model",
]

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
