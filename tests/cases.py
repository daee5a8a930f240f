"""Small models, batches and state checks shared by the probe and ICS tests; a writer lock
held by another process (:func:`locked_elsewhere`); a script of ``scripts/`` as a module
(:func:`load_script`)."""

from __future__ import annotations

import contextlib
import importlib.util
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

F64 = torch.float64
RTOL = 1e-10
ETAS = [0.01, 0.05, 0.1, 0.3]


class Quadratic(nn.Module):
    """L(theta) = 0.5 theta^T A theta, with A passed as the 'input'."""

    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.theta @ a @ self.theta


def identity_loss(out, _targets):
    return out


def spd(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random SPD matrix with its eigenvalues (ascending) and eigenvectors."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=F64))
    eigs = torch.linspace(0.5, 5.0, n, dtype=F64)
    return q @ torch.diag(eigs) @ q.T, eigs, q


def sq_loss(out, y):
    return ((out - y) ** 2).sum(dim=1).mean()


def bn_net(dtype=torch.float32) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(8, 3),
    ).to(dtype)


def image_batch(dtype=torch.float32, n: int = 10):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 6, 6, generator=gen, dtype=dtype), torch.randint(0, 3, (n,))


def three_layer(dtype=F64) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 6),
        nn.BatchNorm1d(6),
        nn.Tanh(),
        nn.Linear(6, 5),
        nn.BatchNorm1d(5),
        nn.Tanh(),
        nn.Linear(5, 3),
    ).to(dtype)


def regression_batch(n: int = 16, d_in: int = 4, d_out: int = 3, dtype=F64):
    gen = torch.Generator().manual_seed(2)
    return torch.randn(n, d_in, generator=gen, dtype=dtype), torch.randn(
        n, d_out, generator=gen, dtype=dtype
    )


def close(actual, expected, rtol=RTOL):
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=np.float64), rtol=rtol)


def full_state(model: nn.Module) -> dict:
    return {
        "tensors": {n: t.detach().clone() for n, t in model.state_dict(keep_vars=True).items()},
        "grads": {
            n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        },
        "modes": {n: m.training for n, m in model.named_modules()},
        "torch_rng": torch.get_rng_state(),
        "np_rng": np.random.get_state(),
        "py_rng": random.getstate(),
    }


def assert_same_state(before: dict, after: dict) -> None:
    assert before["tensors"].keys() == after["tensors"].keys()
    for n, t in before["tensors"].items():
        assert torch.equal(t, after["tensors"][n]), n
    for n, gr in before["grads"].items():
        other = after["grads"][n]
        assert (gr is None and other is None) or torch.equal(gr, other), n
    assert before["modes"] == after["modes"]
    assert torch.equal(before["torch_rng"], after["torch_rng"])
    (kind, keys, *rest), (kind2, keys2, *rest2) = before["np_rng"], after["np_rng"]
    assert kind == kind2 and np.array_equal(keys, keys2) and rest == rest2
    assert before["py_rng"] == after["py_rng"]


def prepared_bn_net(device: str = "cpu") -> tuple[nn.Module, tuple]:
    model = bn_net().to(device)
    x, y = image_batch()
    x, y = x.to(device), y.to(device)
    model.train()
    with torch.no_grad():
        for _ in range(3):  # non-trivial running statistics and num_batches_tracked
            model(x + 1.0)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    model[0].bias.grad = None  # a mix of set and None gradients
    model[8].bias.requires_grad_(False)  # a frozen parameter is never moved
    model[7].eval()  # mixed training flags must come back as they were
    return model, (x, y)


@contextlib.contextmanager
def locked_elsewhere(path: str | Path) -> Iterator[None]:
    """Another process holds the writer lock of ``path`` for the block (``landscape._files.
    writer_lock``, as a running slice or probe does); it is killed afterwards."""
    hold = ("import sys, time; from landscape._files import writer_lock\n"
            "with writer_lock(sys.argv[1]):\n    print(1, flush=True); time.sleep(60)")  # fmt: skip
    writer = subprocess.Popen([sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"1"
        yield
    finally:
        writer.kill()
        writer.wait()


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (registered under ``scripts.<name>``, so that its
    dataclasses find their module), for calling its ``main(argv)`` in-process."""
    qualified = f"scripts.{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    if str(path.parent) not in sys.path:  # as when run: the scripts import their _presets
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(qualified, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module


#: SplitMix64's golden increment and its published first outputs for the seed 1234567
#: (Vigna's reference C code): what the data order and the BN noise streams rest on.
SPLITMIX64_GOLDEN = 0x9E3779B97F4A7C15
SPLITMIX64_PUBLISHED = (1234567, [6457827717110365317, 3203168211198807973, 9817491932198370423])


def splitmix64(state: int) -> tuple[int, int]:
    """One step of SplitMix64 (Steele, Lea and Flood 2014), written from its definition: the
    next state and the output."""
    state = (state + SPLITMIX64_GOLDEN) & ((1 << 64) - 1)
    z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return state, z ^ (z >> 31)


def splitmix64_stream(seed: int, n: int) -> list[tuple[int, int]]:
    """The first ``n`` steps from ``seed``: ``(state before the step, output)``."""
    out, state = [], seed
    for _ in range(n):
        nxt, value = splitmix64(state)
        out.append((state, value))
        state = nxt
    return out
