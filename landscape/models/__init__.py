"""Models: the registry and its JSON-safe spec, the building blocks, the built-in families.

Owns :mod:`.spec` (``MODELS``, ``register_model``, ``ModelSpec``: enough to rebuild a model
reproducibly without touching the global RNG), :mod:`.blocks` (activations, ``op -> bn ->
act`` blocks, initialisation), :mod:`.families` (vgg, vgg11, vgg_small, mlp, dln, resnet20,
registered on import), :mod:`.pairs` (the BN and plain twins of a pair differ only by
BatchNorm layers) and :mod:`.noisy_bn` (Santurkar et al.'s noisy BatchNorm, Algorithm 1:
``ModelSpec.bn_noise``).

May import: :mod:`landscape._imports` (factories by import path); torch.
"""

# The families register themselves in MODELS when imported: this import fills the registry.
from landscape.models import families  # noqa: F401
from landscape.models.blocks import Activation, Init
from landscape.models.noisy_bn import BNNoise, add_bn_noise, santurkar_noise
from landscape.models.pairs import BATCHNORMS, bn_layer_names, copy_shared_parameters
from landscape.models.spec import MODELS, SPEC_FIELDS, ModelSpec, create_model, register_model

__all__ = [
    "BATCHNORMS",
    "MODELS",
    "SPEC_FIELDS",
    "Activation",
    "BNNoise",
    "Init",
    "ModelSpec",
    "add_bn_noise",
    "bn_layer_names",
    "copy_shared_parameters",
    "create_model",
    "register_model",
    "santurkar_noise",
]
