"""Model factories the CLI can import: ``landscape slice m.pt --model tiny_models:make``.

The CLI calls ``make(**options)`` (options from ``--model-option KEY=VALUE``, values parsed
as JSON) to build the network that ``torch.save(model.state_dict(), "m.pt")`` came from.
The current directory is importable, so run the CLI from this folder (or put it on
``PYTHONPATH``).
"""

from __future__ import annotations

from torch import nn


def make(hidden: int = 32, bn: bool = True) -> nn.Module:
    """An MLP for the bundled 8x8 digits: (N, 1, 8, 8) -> 10 logits."""
    norm = nn.BatchNorm1d if bn else nn.Identity
    return nn.Sequential(
        nn.Flatten(),
        *(nn.Linear(64, hidden), norm(hidden), nn.ReLU()),
        nn.Linear(hidden, 10),
    )
