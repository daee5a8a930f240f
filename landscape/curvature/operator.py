"""The Hessian of the mean loss over evaluation data, as a linear operator.

For data made of batches ``B_1 .. B_m`` with ``n_b`` examples each (``N = sum n_b``), the
loss is ``L(theta) = sum_b (n_b / N) L_b(theta)`` (``L_b`` the batch mean) and

    H v = sum_b (n_b / N) d/d eps [grad L_b(theta + eps v)] at eps = 0,

the exact Hessian-vector product of ``L`` with respect to the chosen parameters (every
trainable one, or a subset by name). Two ways to take it, both exact:

- ``"graph"``: one forward and backward per batch builds ``grad L_b`` with its graph kept
  (``create_graph=True``); each product is then one backward through it (double backward).
  Cheapest per product; memory grows with the data (every batch's graph is held).
- ``"func"``: ``torch.func.jvp`` of the gradient (forward-over-reverse), nothing kept between
  products: a forward and a backward per batch and product. For data whose graphs do not fit.

BatchNorm: ``bn_mode="train"`` normalises with each batch's statistics (the loss the
optimizer sees) and ``"eval"`` with the running statistics; the choice is the caller's,
never forced. Stochastic layers draw the same numbers in every evaluation (a fixed seed per
batch). The model is left exactly as found (parameters, buffers, ``.grad``, modes, RNGs).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp

from landscape._params import preserved
from landscape.data.evaluation import BatchLoss, Data, Loss, as_batches, describe_data, objective

__all__ = ["BNMode", "HessianOperator", "Method", "Params"]

BNMode = Literal["train", "eval"]
Method = Literal["graph", "func"]
#: Which parameters: all trainable ones (None), names, or a predicate ``(name, param) -> bool``.
Params = Sequence[str] | Callable[[str, nn.Parameter], bool] | None


class HessianOperator:
    """``v -> H v`` for the mean loss of ``model`` over ``data`` (see the module docstring).

    Use it inside ``with op:`` (or call :meth:`close`): entering puts the model in the BN
    mode and builds the graphs (``"graph"``); leaving restores the model exactly.

    Attributes:
        names: The parameters the Hessian is taken over, in the model's order.
        size: Their total number of entries (the Hessian is ``size x size``).
        products: Hessian-vector products taken so far (one per :meth:`matvec` column).
        examples: ``N``, the examples in the data.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Loss,
        data: Data,
        *,
        params: Params = None,
        bn_mode: BNMode = "train",
        method: Method = "graph",
        seed: int = 0,
    ) -> None:
        if bn_mode not in ("train", "eval"):
            raise ValueError(f"unknown bn_mode {bn_mode!r}; use 'train' (batch statistics) "
                             "or 'eval' (running statistics)")  # fmt: skip
        if method not in ("graph", "func"):
            raise ValueError(f"unknown method {method!r}; use 'graph' or 'func'")
        self.model, self.loss_fn, self.bn_mode, self.method, self.seed = (
            model, loss_fn, bn_mode, method, seed,
        )  # fmt: skip
        self.data = as_batches(data, model) if isinstance(data, str) else data
        self.examples = describe_data(self.data, loss_fn).examples
        named = _chosen(model, params)
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.size = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.products = 0
        self._stack: contextlib.ExitStack | None = None
        self._graphs: list[tuple[float, list[Tensor]]] = []

    def __enter__(self) -> HessianOperator:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(preserved(self.model))
        self.model.train(self.bn_mode == "train")
        if self.bn_mode == "train":  # batch statistics; the running ones never updated
            self._stack.enter_context(_untracked(self.model))
        if self.method == "graph":
            try:
                self._graphs = [(w, self._grad(batch, i, create_graph=True))
                                for i, (w, batch) in enumerate(self._weighted())]  # fmt: skip
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Free the graphs and restore the model."""
        self._graphs = []
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def _weighted(self) -> Iterator[tuple[float, Any]]:
        for batch in as_batches(self.data):
            _, n = objective(self.loss_fn, batch)
            yield n / self.examples, batch

    def _seed(self, index: int) -> None:
        gen = torch.cuda.default_generators[self.device.index or 0] if (
            self.device.type == "cuda") else torch.default_generator  # fmt: skip
        gen.manual_seed(self.seed * 1_000_003 + index)

    def _loss(self, batch: Any, index: int) -> Tensor:
        self._seed(index)
        loss = objective(self.loss_fn, batch)[0](self.model)
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError("the loss must be a scalar (the batch mean); reduce it")
        return loss.reshape(())

    def _grad(self, batch: Any, index: int, create_graph: bool = False) -> list[Tensor]:
        loss = self._loss(batch, index)
        if not loss.requires_grad:
            raise ValueError("the loss does not depend on the chosen parameters")
        grads = torch.autograd.grad(loss, self.params, create_graph=create_graph,
                                    allow_unused=True)  # fmt: skip
        return [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads)]

    def _require_open(self) -> None:
        if self._stack is None:
            raise RuntimeError("use the operator inside `with HessianOperator(...) as op:`")

    def gradient(self) -> list[Tensor]:
        """``grad L`` (the exact weighted mean over the batches), detached."""
        self._require_open()
        total = [torch.zeros_like(p) for p in self.params]
        for i, (w, batch) in enumerate(self._weighted()):
            for t, g in zip(total, self._grad(batch, i)):
                t.add_(g.detach(), alpha=w)
        return total

    def loss(self) -> float:
        """``L`` at the current parameters (the weighted mean over the batches)."""
        self._require_open()
        with torch.no_grad():
            return sum(w * float(self._loss(b, i)) for i, (w, b) in enumerate(self._weighted()))

    def matvec(self, v: Sequence[Tensor]) -> list[Tensor]:
        """``H v`` for ``v`` given as one tensor per parameter (shapes of :attr:`names`)."""
        self._require_open()
        v = [t.to(device=self.device, dtype=self.dtype) for t in v]
        out = [torch.zeros_like(p) for p in self.params]
        if self.method == "graph":
            for w, g in self._graphs:
                # a parameter the loss does not reach has a constant zero gradient, no graph
                live = [k for k, t in enumerate(g) if t.requires_grad]
                if not live:
                    continue
                hv = torch.autograd.grad([g[k] for k in live], self.params, [v[k] for k in live],
                                         retain_graph=True, allow_unused=True)  # fmt: skip
                for o, h in zip(out, hv):
                    if h is not None:
                        o.add_(h, alpha=w)
        else:
            for i, (w, batch) in enumerate(self._weighted()):
                for o, h in zip(out, self._jvp_of_grad(batch, i, v)):
                    o.add_(h, alpha=w)
        self.products += 1
        return out

    def _jvp_of_grad(self, batch: Any, index: int, v: list[Tensor]) -> Sequence[Tensor]:
        """Forward-over-reverse: the derivative of ``grad L_b`` along ``v``."""
        fixed = {n: t.detach() for n, t in self.model.named_parameters()}
        fixed.update({n: t for n, t in self.model.named_buffers()})

        def loss_at(chosen: tuple[Tensor, ...]) -> Tensor:
            state = {**fixed, **dict(zip(self.names, chosen))}
            self._seed(index)
            if isinstance(self.loss_fn, BatchLoss):
                proxy = _Functional(self.model, state)
                return self.loss_fn(proxy, batch).reshape(())  # type: ignore[arg-type]
            inputs, targets = batch
            return self.loss_fn(functional_call(self.model, state, (inputs,)), targets).reshape(())

        primals = tuple(p.detach() for p in self.params)
        with warnings.catch_warnings():  # torch.func's own first-use scripting, not ours
            warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated")
            _, tangent = jvp(grad(loss_at), (primals,), (tuple(v),))
        return tangent

    def flat_matvec(self, x: Tensor) -> Tensor:
        """``H x`` for a flat vector (float64 in, float64 out), as scipy and Lanczos use it."""
        return flatten(self.matvec(self.unflatten(x))).to(torch.float64)

    def unflatten(self, x: Tensor) -> list[Tensor]:
        """A flat vector as one tensor per parameter, in the model's dtype and device."""
        if x.numel() != self.size:
            raise ValueError(f"vector has {x.numel()} entries, the parameters {self.size}")
        out, i = [], 0
        for p in self.params:
            out.append(x[i : i + p.numel()].reshape(p.shape).to(self.device, self.dtype))
            i += p.numel()
        return out

    def as_dict(self, x: Tensor) -> dict[str, Tensor]:
        """A flat vector as ``{parameter name: tensor}`` (a direction for the slices)."""
        return dict(zip(self.names, (t.detach().clone() for t in self.unflatten(x))))


@contextlib.contextmanager
def _untracked(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with batch statistics and leave their running ones alone
    (``track_running_stats=False`` for the duration: exact, and safe under torch.func)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    flags = [m.track_running_stats for m in norms]
    try:
        for m in norms:
            m.track_running_stats = False
        yield
    finally:
        for m, flag in zip(norms, flags):
            m.track_running_stats = flag


class _Functional(nn.Module):
    """The model called with other parameters (``functional_call``), for a batch_loss fn
    that calls ``model(...)`` itself."""

    def __init__(self, model: nn.Module, state: dict[str, Tensor]) -> None:
        super().__init__()
        object.__setattr__(self, "_inner", model)
        object.__setattr__(self, "_state", state)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self._inner, self._state, args, kwargs)


def flatten(ts: Sequence[Tensor]) -> Tensor:
    """One flat float64 vector on the CPU-or-device of the tensors."""
    return torch.cat([t.reshape(-1).to(torch.float64) for t in ts])


def _chosen(model: nn.Module, params: Params) -> list[tuple[str, nn.Parameter]]:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if params is None:
        chosen = trainable
    elif callable(params):
        chosen = [(n, p) for n, p in trainable if params(n, p)]
    else:
        wanted, have = list(params), dict(trainable)
        unknown = [n for n in wanted if n not in have]
        if unknown:
            raise ValueError(f"params {unknown[:3]} are not trainable parameters of the model; "
                             f"some that are: {list(have)[:4]}")  # fmt: skip
        chosen = [(n, p) for n, p in trainable if n in set(wanted)]
    if not chosen:
        raise ValueError("no parameters to take the Hessian over (none trainable or chosen)")
    return chosen
