"""``landscape._params.preserved``: whatever happens inside, the model and the global RNGs
come back bit for bit. A backward pass inside the block leaves no trace on ``.grad`` (values
set before come back, gradients that were None are None again); parameters, buffers
(non-persistent ones too), train/eval flags and Python's, NumPy's and torch's draws too."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import pytest
import torch
from torch import nn

from landscape._params import preserved, slots
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


def net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    model.register_buffer("scratch", torch.zeros(2), persistent=False)  # not in state_dict
    model[0].weight.grad = torch.full_like(model[0].weight, 7.0)  # one .grad set, others None
    return model.train()


def everything(model: nn.Module) -> dict:
    return {
        "tensors": {n: t.clone() for n, t in [*model.named_parameters(), *model.named_buffers()]},
        "grads": {
            n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        },
        "modes": {n: m.training for n, m in model.named_modules()},
    }


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def disturb(model: nn.Module) -> None:
    """Everything a probe could do: a backward, in-place moves, mode flips, RNG draws."""
    model.eval()
    model[1].train()
    model(torch.randn(5, 3)).sum().backward()  # writes every .grad, updates BN statistics
    with torch.no_grad():
        for t in [*model.parameters(), model.scratch]:
            t.add_(1.0)
    draws()


@pytest.mark.parametrize("fails", [False, True])
def test_model_and_rngs_come_back_bit_for_bit(fails):
    model = net()
    before = everything(model)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with pytest.raises(RuntimeError) if fails else contextlib.nullcontext():
        with preserved(model):
            disturb(model)
            if fails:
                raise RuntimeError("inside the block")
    after = everything(model)
    for n, t in before["tensors"].items():
        assert torch.equal(after["tensors"][n], t), n
    for n, g in before["grads"].items():
        got = after["grads"][n]
        assert (got is None) if g is None else torch.equal(got, g), n
    assert after["modes"] == before["modes"]
    want = draws()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    assert draws() == want  # the draws inside did not advance any generator


def test_restored_gradients_are_not_shared_with_the_block():
    model = net()
    with preserved(model):
        model[0].weight.grad.mul_(0.0)  # in place on the live .grad inside
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 7.0))


def test_a_model_without_tensors_comes_back_too():
    """Nothing to copy back (no parameter, no buffer): only the train/eval flags."""
    model = nn.Sequential(nn.ReLU(), nn.Flatten()).train()
    with preserved(model):
        model.eval()
    assert all(m.training for m in model.modules())


def test_the_one_walk_finds_what_torch_names():
    """``_walk`` replaces three of torch's walks: the same names, in the same order, a shared
    module or a tied weight once under its first name, a None buffer left out."""
    from landscape._params import _walk

    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.BatchNorm1d(3), shared, nn.Linear(3, 3), nn.Linear(3, 3))
    model[4].weight = model[3].weight  # tied
    model[1].register_buffer("unset", None)
    modules, params, buffers = _walk(model)
    assert [n for n, _ in modules] == [n for n, _ in model.named_modules()]
    assert [(n, id(p)) for n, p in params] == [(n, id(p)) for n, p in model.named_parameters()]
    assert [(n, id(b)) for n, b in buffers] == [(n, id(b)) for n, b in model.named_buffers()]
    assert "4.weight" not in dict(params) and "1.unset" not in dict(buffers)


def test_one_buffer_holds_the_tensors_as_views_and_gives_them_back():
    """Parameters and a buffer as slots of one buffer, in their own layouts; writes through it
    reach them, and on exit each has its own storage again with the values written inside."""
    from landscape._params import one_buffer

    conv = nn.Conv2d(3, 4, 3).double()
    conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
    conv.register_buffer("scale", torch.ones(4, dtype=F64))
    tensors = [conv.weight, conv.bias, conv.scale]
    own = [(t.data_ptr(), t.stride()) for t in tensors]
    before = [t.detach().clone() for t in tensors]
    with one_buffer(tensors) as flat:
        assert flat is not None and flat.numel() == sum(t.numel() for t in tensors)
        assert [t.stride() for t in tensors] == [s for _, s in own]
        assert all(torch.equal(t, b) for t, b in zip(tensors, before))
        flat.mul_(2.0)
    assert [(t.data_ptr(), t.stride()) for t in tensors] == own
    assert all(torch.equal(t, 2 * b) for t, b in zip(tensors, before))


@pytest.mark.parametrize("case", ["two dtypes", "strided", "too large", "none"])
def test_one_buffer_changes_nothing_where_it_cannot_hold_them(monkeypatch, case):
    import landscape._params as P

    a, b = torch.zeros(4), torch.zeros(2, 3)
    tensors = {
        "two dtypes": [a, b.double()],
        "strided": [a, b.t()],
        "too large": [a, b],
        "none": [],
    }[case]
    if case == "too large":
        monkeypatch.setattr(P, "ONE_BUFFER_BYTES", 4 * 10 - 1)
    ptrs = [t.data_ptr() for t in tensors]
    with P.one_buffer(tensors) as flat:
        assert flat is None and [t.data_ptr() for t in tensors] == ptrs


def test_slots_of_a_row_start_at_the_row():
    """A buffer that is itself a view (a row of a matrix): its slots lie inside it."""
    cl = torch.empty(4, 1, 1, 1).contiguous(memory_format=torch.channels_last)
    like = [torch.empty(2, 3), cl]
    matrix = torch.arange(30.0).reshape(3, 10)
    for r in range(3):
        views = slots(matrix[r], like)
        assert torch.equal(torch.cat([v.reshape(-1) for v in views]), matrix[r])
        assert [v.stride() for v in views] == [t.stride() for t in like]


@pytest.mark.parametrize("in_channels, kernel", [(1, 3), (3, 1), (3, 3)])
def test_channels_last_runs_a_convolution_channels_last_whatever_its_sizes(in_channels, kernel):
    """A weight with one input channel or a 1x1 kernel is ambiguous: ``.contiguous(
    memory_format=channels_last)`` returns it as it is, strides that torch reads as NCHW,
    and the network then ran NCHW. Inside ``channels_last`` the output is channels_last,
    equal to the model's own up to rounding, and the original weight comes back."""
    from landscape._params import channels_last

    conv = nn.Conv2d(in_channels, 4, kernel).double()
    x = torch.randn(2, in_channels, 5, 5, dtype=F64)
    weight, want = conv.weight.data, conv(x)
    own = (weight.data_ptr(), weight.stride())
    with channels_last(conv):
        assert conv.weight.stride(1) == 1 and torch.equal(conv.weight, weight)
        out = conv(x)
    assert out.stride(1) == 1 and not out.is_contiguous()  # channels_last, not NCHW
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    assert (conv.weight.data_ptr(), conv.weight.stride()) == own


# --- the dict algebra, against closed forms in float64 ---------------------------------


def test_the_dict_algebra_is_the_algebra_of_the_concatenated_vector():
    """``get_params`` keeps the trainable parameters only (detached copies); ``dot``,
    ``norm``, ``flatten`` and ``unflatten`` are those of the one vector that concatenates
    the tensors in dict order, ``norm`` and ``dot`` of nothing are 0."""
    from landscape._params import dot, flatten, get_params, norm, unflatten

    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)).double()
    model[0].bias.requires_grad_(False)
    got = get_params(model)
    assert list(got) == ["0.weight", "1.weight", "1.bias"]
    assert all(torch.equal(got[n], p) and not got[n].requires_grad
               for n, p in model.named_parameters() if n in got)  # fmt: skip
    got["0.weight"].add_(1.0)  # a copy: the model does not move
    assert not torch.equal(got["0.weight"], model[0].weight)
    x = {"a": torch.tensor([[1.0, 2.0]], dtype=F64), "b": torch.tensor([2.0], dtype=F64)}
    y = {"a": torch.tensor([[3.0, -1.0]], dtype=F64), "b": torch.tensor([0.5], dtype=F64)}
    assert float(dot(x, y)) == 1 * 3 + 2 * -1 + 2 * 0.5 and float(norm(x)) == 3.0
    assert float(norm({})) == 0.0 and float(dot({}, {})) == 0.0
    flat = flatten(x)
    assert flat.tolist() == [1.0, 2.0, 2.0]
    back = unflatten(flat, x)
    assert all(torch.equal(back[n], x[n]) and back[n].shape == x[n].shape for n in x)
    with pytest.raises(ValueError, match="vector has 4 entries, the parameters 3"):
        unflatten(torch.zeros(4, dtype=F64), x)


def test_the_walk_names_the_root_modules_own_tensors_without_a_dot():
    """Parameters and buffers of the model itself, not of a child, are named bare."""
    from landscape._params import _walk

    model = nn.Sequential(nn.Linear(2, 2))
    model.scale = nn.Parameter(torch.ones(()))
    model.register_buffer("count", torch.zeros(()))
    _, params, buffers = _walk(model)
    assert [n for n, _ in params] == [n for n, _ in model.named_parameters()]
    assert [n for n, _ in buffers] == ["count"] and "scale" in dict(params)


def test_channels_last_switched_off_leaves_the_weights_alone():
    from landscape._params import channels_last

    conv = nn.Conv2d(3, 4, 3)
    own = (conv.weight.data_ptr(), conv.weight.stride())
    with channels_last(conv, enabled=False):
        assert (conv.weight.data_ptr(), conv.weight.stride()) == own


def test_one_buffer_holds_one_tensor_and_exactly_its_size_limit(monkeypatch):
    """One tensor (a model with a single parameter) is held too; a buffer of exactly
    ``ONE_BUFFER_BYTES`` is allowed, one byte less is not."""
    import landscape._params as P

    t = torch.zeros(10)
    monkeypatch.setattr(P, "ONE_BUFFER_BYTES", 40)
    with P.one_buffer([t]) as flat:
        assert flat is not None and t.untyped_storage().data_ptr() == flat.data_ptr()
    monkeypatch.setattr(P, "ONE_BUFFER_BYTES", 39)
    with P.one_buffer([t]) as flat:
        assert flat is None


def test_one_buffer_refuses_a_4d_tensor_that_is_neither_layout():
    """A permuted 4-D tensor is dense but neither contiguous nor channels_last: its strides
    do not fit a slot of the flat buffer."""
    from landscape._params import one_buffer

    odd = torch.zeros(2, 3, 4, 5).transpose(2, 3)
    with one_buffer([torch.zeros(3), odd]) as flat:
        assert flat is None


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_set_point_is_base_plus_the_sum_of_the_scaled_directions(dtype):
    """Against ``base + sum_k c_k d_k`` computed directly, for coefficients 1, -1, 0.5 and 0,
    one target or several; at all-zero coefficients the point is the base bit for bit,
    signs of zeros included (nothing is added)."""
    from landscape._params import set_point

    g = torch.Generator().manual_seed(0)
    base = [torch.randn(3, 2, generator=g, dtype=dtype), torch.tensor([-0.0, 1.0], dtype=dtype)]
    dirs = [[torch.randn(b.shape, generator=g, dtype=dtype) for b in base] for _ in range(2)]
    live = [torch.empty_like(b) for b in base]
    targets = [(t, b, [(0, dirs[0][i]), (1, dirs[1][i])]) for i, (t, b) in
               enumerate(zip(live, base))]  # fmt: skip
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 0, "atol": 1e-15}
    for coeffs in [(1.0, -1.0), (0.5, 1.0), (1.0, 0.0)]:
        for chosen in (targets, targets[:1]):  # several targets, and a single one
            set_point(chosen, coeffs)
            for t, b, moves in chosen:
                want = b + sum(coeffs[k] * d for k, d in moves)
                torch.testing.assert_close(t, want, **tol)
    set_point(targets, (0.0, 0.0))
    assert all(torch.equal(t, b) for t, b in zip(live, base))
    assert torch.signbit(live[1][0]) and torch.signbit(base[1][0])  # -0.0 stays -0.0
