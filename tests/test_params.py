"""``landscape._params.preserved``: a backward pass inside the block leaves no trace on
``.grad`` (values set before come back, gradients that were None are None again)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape._params import preserved
from tests.cases import F64, regression_batch, sq_loss, three_layer


def _with_mixed_grads() -> tuple[nn.Module, dict[str, torch.Tensor | None]]:
    model = three_layer()
    x, y = regression_batch()
    sq_loss(model(x), y).backward()
    model[0].bias.grad = None  # a mix of set and None gradients
    model[6].weight.grad = None
    before = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    return model, before


def _assert_grads(model: nn.Module, before: dict[str, torch.Tensor | None]) -> None:
    for n, p in model.named_parameters():
        if before[n] is None:
            assert p.grad is None, n
        else:
            assert p.grad is not None and torch.equal(p.grad, before[n]), n


def test_a_backward_inside_preserved_leaves_the_gradients_as_found():
    model, before = _with_mixed_grads()
    x, y = regression_batch()
    with preserved(model):
        sq_loss(model(2 * x), y).backward()  # accumulates into set grads, creates None ones
        assert model[0].bias.grad is not None and model[6].weight.grad is not None
        changed = model[3].weight.grad
        assert changed is not None and not torch.equal(changed, before["3.weight"])
    _assert_grads(model, before)


def test_gradients_set_to_none_or_replaced_inside_come_back_after_an_error():
    model, before = _with_mixed_grads()
    x, y = regression_batch()
    with pytest.raises(RuntimeError, match="inside"), preserved(model):
        model.zero_grad(set_to_none=True)
        model[0].bias.grad = torch.ones(6, dtype=F64)
        sq_loss(model(x), y).backward()
        raise RuntimeError("inside")
    _assert_grads(model, before)
