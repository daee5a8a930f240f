"""HessianOperator: exact products (dense reference, finite differences), both methods,
every data form, BN modes, parameter subsets, and the model left exactly as found."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import landscape as L
from landscape.curvature import HessianOperator
from landscape.data import dataset_batches
from tests.curvature.helpers import (
    CASES,
    F64,
    bn_cnn,
    dense_hessian,
    dropout_mlp,
    full_loss,
    image_data,
    mlp,
    vector_data,
)


def _dense_of(op: HessianOperator) -> torch.Tensor:
    eye = torch.eye(op.size, dtype=F64)
    return torch.stack([op.flat_matvec(eye[i]) for i in range(op.size)], dim=1)


@pytest.mark.parametrize(("name", "make", "data", "bn_mode"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("method", ["graph", "func"])
def test_products_equal_the_dense_hessian(name, make, data, bn_mode, method) -> None:
    model, batches = make(), data()
    reference = dense_hessian(model, batches, train=bn_mode == "train")
    with HessianOperator(model, F.cross_entropy, batches, bn_mode=bn_mode, method=method) as op:
        h = _dense_of(op)
        assert op.products == op.size
    assert h.shape == reference.shape
    torch.testing.assert_close(h, reference, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h, h.T, rtol=1e-10, atol=1e-12)  # symmetric, BN train included


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
def test_products_equal_central_differences_of_gradients(bn_mode) -> None:
    model, batches = bn_cnn(), image_data()
    params = list(model.parameters())
    v = [torch.randn(p.shape, generator=torch.Generator().manual_seed(4), dtype=F64)
         for p in params]  # fmt: skip
    with HessianOperator(model, F.cross_entropy, batches, bn_mode=bn_mode) as op:
        hv = torch.cat([t.reshape(-1) for t in op.matvec(v)])
        eps = 1e-5

        def grad_at(sign: float) -> torch.Tensor:
            with torch.no_grad():
                for p, d in zip(params, v):
                    p.add_(d, alpha=sign * eps)
            g = torch.cat([t.reshape(-1) for t in op.gradient()])
            with torch.no_grad():
                for p, d in zip(params, v):
                    p.sub_(d, alpha=sign * eps)
            return g

        fd = (grad_at(1.0) - grad_at(-1.0)) / (2 * eps)
    torch.testing.assert_close(hv, fd, rtol=1e-6, atol=1e-8)


def test_the_model_is_left_exactly_as_found() -> None:
    model, batches = bn_cnn(), image_data()
    model.train()
    full_loss(model, batches).backward()  # .grad set: must survive
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    for method in ("graph", "func"):
        with HessianOperator(model, F.cross_entropy, batches, bn_mode="train",
                             method=method) as op:  # fmt: skip
            op.matvec([torch.ones_like(p) for p in op.params])
            # batch statistics are used, the running ones never move
            assert torch.equal(model[1].running_mean, state["1.running_mean"])
            assert torch.equal(model[1].num_batches_tracked, state["1.num_batches_tracked"])
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert model.training and model[1].track_running_stats
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_subset_by_name_or_predicate_is_that_block_of_the_hessian() -> None:
    model, batches = mlp(), vector_data()
    full = dense_hessian(model, batches, train=True)
    sizes = [p.numel() for p in model.parameters()]
    start = sum(sizes[:2])  # "2.weight" and "2.bias": the last layer's block
    block = full[start:, start:]
    for chosen in (["2.weight", "2.bias"], lambda name, p: name.startswith("2.")):
        with HessianOperator(model, F.cross_entropy, batches, params=chosen) as op:
            assert op.names == ["2.weight", "2.bias"]
            torch.testing.assert_close(_dense_of(op), block, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["graph", "func"])
def test_dict_batches_through_batch_loss_equal_the_plain_route(method) -> None:
    model, batches = mlp(), vector_data()
    v = [torch.randn_like(p) for p in model.parameters()]
    with HessianOperator(model, F.cross_entropy, batches, method=method) as op:
        plain = op.matvec(v)
    dicts = [{"features": x, "labels": y} for x, y in batches]
    loss = L.batch_loss(lambda m, b: F.cross_entropy(m(b["features"]), b["labels"]))
    with HessianOperator(model, loss, dicts, method=method) as op:
        mine = op.matvec(v)
    for a, b in zip(plain, mine):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_bad_arguments_are_named() -> None:
    model, batches = mlp(), vector_data()
    with pytest.raises(ValueError, match="unknown bn_mode 'recalibrate'"):
        HessianOperator(model, F.cross_entropy, batches, bn_mode="recalibrate")
    with pytest.raises(ValueError, match="unknown method"):
        HessianOperator(model, F.cross_entropy, batches, method="jacfwd")
    with pytest.raises(ValueError, match=r"params \['nope'\] are not trainable"):
        HessianOperator(model, F.cross_entropy, batches, params=["nope"])
    with pytest.raises(ValueError, match="dict"):
        with HessianOperator(model, F.cross_entropy, [{"x": batches[0][0]}]):
            pass
    op = HessianOperator(model, F.cross_entropy, batches)
    with pytest.raises(RuntimeError, match="inside `with"):
        op.matvec([torch.ones_like(p) for p in model.parameters()])


def test_the_loss_is_the_example_weighted_mean_over_the_batches() -> None:
    model, batches = bn_cnn(), image_data()
    with HessianOperator(model, F.cross_entropy, batches) as op:
        value = op.loss()
    with torch.no_grad():
        expected = float(full_loss(model.train(), batches))
    assert value == pytest.approx(expected, rel=1e-12)


class Scaled(torch.nn.Module):
    """A model with a keyword argument: ``forward(x, scale=1.0)``."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = mlp()

    def forward(self, x, scale: float = 1.0):
        return scale * self.inner(x)


def test_func_products_pass_keyword_arguments_and_the_model_s_own_warnings() -> None:
    """A batch_loss fn that calls model(x, scale=...) gets the keyword under "func" as under
    "graph"; a warning the model gives is not swallowed with torch's own."""
    model, batches = Scaled(), vector_data()
    loss = L.batch_loss(lambda m, b: F.cross_entropy(m(b[0], scale=3.0), b[1]))
    v = [torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
         for p in model.parameters()]  # fmt: skip
    products = {}
    for method in ("graph", "func"):
        with HessianOperator(model, loss, batches, method=method) as op:
            products[method] = op.matvec(v)
    for a, b in zip(products["graph"], products["func"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)

    def warns(m, b):
        warnings.warn("the model's own warning", UserWarning, stacklevel=1)
        return F.cross_entropy(m(b[0]), b[1])

    with HessianOperator(model, L.batch_loss(warns), batches, method="func") as op:
        with pytest.warns(UserWarning, match="the model's own warning"):
            op.matvec(v)


class WithUnused(torch.nn.Module):
    """The mlp and a trainable parameter the loss never reaches."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()
        self.spare = torch.nn.Parameter(torch.ones(2, dtype=F64))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("method", ["graph", "func"])
def test_a_parameter_the_loss_does_not_reach_has_zero_rows_and_columns(method) -> None:
    model, batches = WithUnused(), vector_data()
    inner = dense_hessian(model.net, batches, train=True)
    with HessianOperator(model, F.cross_entropy, batches, method=method) as op:
        assert op.names[0] == "spare"  # the module's own parameter comes first
        h = _dense_of(op)
        g = torch.cat([t.reshape(-1) for t in op.gradient()])
    torch.testing.assert_close(h[2:, 2:], inner, rtol=1e-10, atol=1e-12)
    assert torch.count_nonzero(h[:2]) == 0 and torch.count_nonzero(h[:, :2]) == 0
    assert torch.count_nonzero(g[:2]) == 0


def test_vectors_in_another_dtype_and_a_predicate_on_the_parameter() -> None:
    """v in float32 is used in the model's float64 (the float32 values themselves); the
    predicate of ``params`` sees each parameter, not only its name."""
    model, batches = mlp(), vector_data()
    v32 = [torch.randn(p.shape, generator=torch.Generator().manual_seed(2)) for p in
           model.parameters()]  # fmt: skip
    with HessianOperator(model, F.cross_entropy, batches) as op:
        for a, b in zip(op.matvec(v32), op.matvec([t.double() for t in v32])):
            assert torch.equal(a, b)
    with HessianOperator(model, F.cross_entropy, batches, params=lambda n, p: p.ndim == 1) as op:
        assert op.names == ["0.bias", "2.bias"]


def test_the_operator_is_closed_after_its_block_and_its_loss_must_be_a_scalar() -> None:
    model, batches = mlp(), vector_data()
    with HessianOperator(model, F.cross_entropy, batches) as op:
        pass
    with pytest.raises(RuntimeError, match="inside `with"):
        op.matvec([torch.ones_like(p) for p in model.parameters()])
    op.close()  # a second close is harmless
    per_example = L.batch_loss(lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"))
    with pytest.raises(ValueError, match="the loss must be a scalar"):
        with HessianOperator(model, per_example, batches):
            pass


def test_the_default_seed_is_zero() -> None:
    model, batches = dropout_mlp(), vector_data()
    v = [torch.ones_like(p) for p in model.parameters()]
    with HessianOperator(model, F.cross_entropy, batches) as op:
        default = op.matvec(v)
    for seed, same in ((0, True), (1, False)):
        with HessianOperator(model, F.cross_entropy, batches, seed=seed) as op:
            got = op.matvec(v)
        assert all(torch.equal(a, b) for a, b in zip(default, got)) is same


def test_a_dataset_name_is_its_default_subset() -> None:
    """data="digits": the 1000-example subset of dataset_batches, in the model's dtype."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).to(F64)
    subset = dataset_batches("digits", dtype=F64)
    v = [torch.randn(p.shape, generator=torch.Generator().manual_seed(3), dtype=F64)
         for p in model.parameters()]  # fmt: skip
    with HessianOperator(model, F.cross_entropy, "digits") as op:
        named = op.matvec(v)
        assert op.examples == 1000
    with HessianOperator(model, F.cross_entropy, subset) as op:
        given = op.matvec(v)
    for a, b in zip(named, given):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_data_from_a_callable_is_a_fresh_pass_for_every_product() -> None:
    """data may be a callable returning a fresh (one-shot) iterator: every product and the
    gradient take a new pass, as with the list."""
    model, batches = mlp(), vector_data()
    v = [torch.ones_like(p) for p in model.parameters()]
    with HessianOperator(model, F.cross_entropy, batches) as op:
        want = op.matvec(v)
    for method in ("graph", "func"):
        with HessianOperator(model, F.cross_entropy, lambda: iter(batches), method=method) as op:
            for _ in range(2):
                for a, b in zip(op.matvec(v), want):
                    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


class TwoParts(torch.nn.Module):
    """L_b = mean((a . x)^2) for batches marked "a", mean((b . x)^2) for those marked "b"."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor([1.0, -1.0, 0.5], dtype=F64))
        self.b = torch.nn.Parameter(torch.tensor([0.5, 2.0, -1.0], dtype=F64))

    def forward(self, x, part: str):
        return x @ getattr(self, part)


def test_a_batch_whose_loss_does_not_reach_the_chosen_parameters_adds_nothing() -> None:
    """The Hessian over ``b`` when the first batch's loss involves only ``a``: the second
    batch's (n_b / N) 2 X^T X / n_b, not zero."""
    g = torch.Generator().manual_seed(0)
    data = [{"x": torch.randn(n, 3, generator=g, dtype=F64), "part": part}
            for n, part in ((4, "a"), (6, "b"))]  # fmt: skip
    loss = L.batch_loss(lambda m, bt: (m(bt["x"], bt["part"]) ** 2).mean())
    x = data[1]["x"]
    want = 2 * x.T @ x / 10  # weight 6 / 10 times 2 X^T X / 6
    for method in ("graph", "func"):
        with HessianOperator(TwoParts(), loss, data, params=["b"], method=method) as op:
            torch.testing.assert_close(_dense_of(op), want, rtol=1e-12, atol=1e-14)
