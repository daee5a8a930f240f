"""What the gradient probe and ICS share (landscape.probes.core), through the public calls:
batch_loss batches, unused parameters, the cosine's clamp, directions in another dtype, and
the one-line errors that name what went wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import landscape as L
from landscape.probes import gradient_probe, ics
from tests.cases import ETAS, F64, Quadratic, identity_loss, regression_batch, sq_loss, three_layer


def test_batch_loss_on_dict_batches_equals_the_plain_route():
    """A dict batch with batch_loss(fn) probes the same function as (inputs, targets)."""
    model, (x, y) = three_layer(), regression_batch()
    loss = L.batch_loss(lambda m, b: sq_loss(m(b["features"]), b["labels"]))
    batch = {"features": x, "labels": y}
    plain = gradient_probe(model, sq_loss, (x, y), ETAS)
    mine = gradient_probe(model, loss, batch, ETAS)
    for field in ("loss", "grad_distance", "ratio", "grad_cosine"):
        np.testing.assert_allclose(getattr(mine, field), getattr(plain, field), rtol=1e-12)
    assert mine.base_loss == pytest.approx(plain.base_loss, rel=1e-12)
    shift, plain_shift = ics(model, loss, batch, lr=0.1), ics(model, sq_loss, (x, y), lr=0.1)
    np.testing.assert_allclose(shift.l2, plain_shift.l2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(shift.grad_norm, plain_shift.grad_norm, rtol=1e-12)


class WithUnused(nn.Module):
    """A linear map and a trainable parameter the loss never touches."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3).to(F64)
        self.spare = nn.Parameter(torch.ones(5, dtype=F64))

    def forward(self, x):
        return self.lin(x)


def test_a_parameter_the_loss_does_not_use_has_a_zero_gradient():
    """It is in theta but moves nothing: the probe equals that of the model without it."""
    model, batch = WithUnused(), regression_batch()
    r = gradient_probe(model, sq_loss, batch, ETAS)
    alone = gradient_probe(model.lin, sq_loss, batch, ETAS)
    for field in ("loss", "grad_distance", "ratio", "distance", "grad_cosine"):
        np.testing.assert_allclose(getattr(r, field), getattr(alone, field), rtol=1e-12)
    assert r.grad_norm == pytest.approx(alone.grad_norm, rel=1e-12)
    shift = ics(model, sq_loss, batch, lr=0.1)
    assert shift.layers == ["lin"] and shift.l2[0] == 0.0


def test_the_cosine_is_clamped_to_one_against_rounding():
    """cos(G', g) of a gradient with itself (and its negative) is exactly 1 (-1), although
    g.g / (|g| |g|), as the probe computes it (the moved gradients as the rows of a matrix),
    rounds to 1 + 2.2e-16 for this g in float64."""
    theta = torch.randn(6, generator=torch.Generator().manual_seed(7), dtype=F64)
    rows = theta[None, :]
    assert float((rows @ theta) / (rows.norm(dim=1) * theta.norm())) > 1.0  # the case at hand
    eye = torch.eye(6, dtype=F64)  # L = |theta|^2 / 2: the gradient at theta - eta g is
    r = gradient_probe(Quadratic(theta), identity_loss, (eye, None), [1e-300, 2.0])
    assert r.grad_cosine.tolist() == [1.0, -1.0]  # (1 - eta) g: g itself, then -g


def test_a_direction_in_another_dtype_is_used_in_the_parameters_dtype():
    """A float32 direction for a float64 model is converted first: the probe equals the one
    along the same (exactly representable) direction given in float64."""
    a = torch.diag(torch.arange(1.0, 6.0, dtype=F64))
    theta = torch.linspace(-1.0, 1.0, 5, dtype=F64)
    d32 = torch.randn(5, generator=torch.Generator().manual_seed(1))
    r32 = gradient_probe(Quadratic(theta), identity_loss, (a, None), ETAS, direction={"theta": d32})
    r64 = gradient_probe(
        Quadratic(theta), identity_loss, (a, None), ETAS, direction={"theta": d32.double()}
    )
    for field in ("loss", "grad_distance", "ratio", "distance", "grad_cosine"):
        np.testing.assert_array_equal(getattr(r32, field), getattr(r64, field))
    assert r32.direction_norm == r64.direction_norm


def test_a_failing_forward_or_loss_is_named_with_the_first_line_of_its_error():
    def two_lines(out, y):
        raise IndexError("the first line\nthe second line")

    def silent(out, y):
        raise RuntimeError()

    model, batch = three_layer(), regression_batch()
    with pytest.raises(ValueError, match=r"batch targets do not fit loss_fn: the first line$"):
        gradient_probe(model, two_lines, batch, ETAS)
    with pytest.raises(ValueError, match=r"batch targets do not fit loss_fn: RuntimeError$"):
        gradient_probe(model, silent, batch, ETAS)
    with pytest.raises(ValueError, match=r"batch does not fit the model: mat1 and mat2 shapes"):
        gradient_probe(model, sq_loss, (torch.randn(16, 7, dtype=F64), batch[1]), ETAS)


@pytest.mark.parametrize(
    ("loss_fn", "got"),
    [
        (lambda out, y: ((out - y) ** 2).sum(dim=1), r"got \(16,\);"),
        (lambda out, y: 1.5, "got float;"),
    ],
)
def test_a_loss_that_is_not_a_scalar_is_named_by_its_shape_or_type(loss_fn, got):
    with pytest.raises(ValueError, match=f"loss_fn must return a scalar, {got}"):
        gradient_probe(three_layer(), loss_fn, regression_batch(), ETAS)


class FiveQuadratics(nn.Module):
    """Five parameters p0..p4 of shape (4,), L = sum_i p_i^T A p_i / 2."""

    def __init__(self) -> None:
        super().__init__()
        for i in range(5):
            self.register_parameter(f"p{i}", nn.Parameter(torch.ones(4, dtype=F64)))

    def forward(self, a):
        return sum(0.5 * p @ a @ p for p in self.parameters())


def test_direction_errors_name_the_offending_entries():
    """Mismatched keys list the first three missing and extra names; a wrong value is named
    by its shape (a tensor) or its type (anything else)."""
    model, a = FiveQuadratics(), torch.eye(4, dtype=F64)
    names = [n for n, _ in model.named_parameters()]

    def refusal(direction) -> str:
        with pytest.raises(ValueError) as err:
            gradient_probe(model, identity_loss, (a, None), ETAS, direction=direction)
        return str(err.value)

    extra = {f"x{i}": torch.zeros(4, dtype=F64) for i in range(5)}
    assert refusal(extra).endswith(
        "direction keys do not match the trainable parameters: missing ['p0', 'p1', 'p2'], "
        "extra ['x0', 'x1', 'x2']"
    )
    full = {n: torch.ones(4, dtype=F64) for n in names}
    assert refusal(full | {"p3": torch.ones(3, dtype=F64)}).endswith(
        "direction['p3'] has shape (3,), parameter (4,)"
    )
    assert refusal(full | {"p3": [1.0, 1.0, 1.0, 1.0]}).endswith(
        "direction['p3'] has shape list, parameter (4,)"
    )


def test_cosine_is_clamped_to_its_range_against_rounding_and_nan_for_a_zero_norm():
    """``<a, b> / (|a| |b|)`` rounded past +-1 (parallel gradients) comes back as +-1
    exactly; a zero norm gives nan, not a clamped number."""
    from landscape.probes.core import cosine

    one, tiny = torch.tensor(1.0, dtype=torch.float64), 1e-12
    inner = torch.tensor([1.0 + tiny, -1.0 - tiny, 0.5, 0.0], dtype=torch.float64)
    got = cosine(inner, one, one)
    assert got.tolist() == [1.0, -1.0, 0.5, 0.0]
    zero = torch.tensor(0.0, dtype=torch.float64)
    assert torch.isnan(cosine(torch.tensor([0.0], dtype=torch.float64), zero, one)).all()
