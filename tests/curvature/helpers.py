"""Small float64 models and their dense Hessians, built independently of the package.

The reference Hessian is assembled row by row by reverse-over-reverse differentiation of
the full-data loss written out by hand (``sum_b n_b / N * L_b``), never through
``landscape.curvature`` (and not with ``torch.func.hessian``, which is wrong for BN in train
mode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

F64 = torch.float64


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(F64)


def bn_cnn() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)
    ).to(F64)
    with torch.no_grad():  # running statistics that differ from any batch's
        net[1].running_mean.uniform_(-0.5, 0.5)
        net[1].running_var.uniform_(0.5, 2.0)
    return net


def dropout_mlp() -> nn.Module:
    """The mlp with dropout between its layers: its Hessian depends on the seed's masks."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Dropout(0.5), nn.Linear(7, 3)).to(F64)


def frozen_mlp() -> nn.Module:
    net = mlp()
    net[0].bias.requires_grad_(False)
    return net


def image_data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    sizes = (6, 4)  # unequal batches: the weighting by size matters
    return [(torch.randn(n, 1, 6, 6, generator=g, dtype=F64),
             torch.randint(0, 3, (n,), generator=g)) for n in sizes]  # fmt: skip


def vector_data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    return [(torch.randn(n, 5, generator=g, dtype=F64), torch.randint(0, 3, (n,), generator=g))
            for n in (9, 5, 2)]  # fmt: skip


def full_loss(model: nn.Module, data) -> torch.Tensor:
    total = sum(len(y) for _, y in data)
    return sum(len(y) / total * F.cross_entropy(model(x), y) for x, y in data)


def dense_hessian(model: nn.Module, data, train: bool) -> torch.Tensor:
    """d^2 L / d theta^2 over the trainable parameters, row by row (double backward)."""
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    model.train(train)
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(
        full_loss(model, data), params, create_graph=True)])  # fmt: skip
    rows = []
    for i in range(g.numel()):
        row = torch.autograd.grad(g[i], params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if r is None else r).reshape(-1)
                               for p, r in zip(params, row)]))  # fmt: skip
    model.load_state_dict(snapshot)
    return torch.stack(rows)


#: (id, model, data, bn_mode): the models every dense check runs on.
CASES = [
    ("mlp", mlp, vector_data, "train"),
    ("bn_cnn_train", bn_cnn, image_data, "train"),
    ("bn_cnn_eval", bn_cnn, image_data, "eval"),
    ("frozen", frozen_mlp, vector_data, "train"),
]
