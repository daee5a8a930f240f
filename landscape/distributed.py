"""Scale-out with torchrun: PyTorch's own process groups, one writer, no per-point collective.

Under ``torchrun --nproc_per_node N -m landscape slice|probe ...`` every process runs the
same command. The work items (a slice's grid points, a run's checkpoints) are dealt out
round-robin (:func:`shard`); rank 0 alone touches the output file: it prepares it, and the
other ranks' finished results reach it in blocks (one ``all_gather`` per block of ``chunk``
points or per checkpoint, :class:`RowGatherer`), never one collective per point and never a
rewrite of the whole file. A rank that dies takes the group down (torchrun's default);
the file then holds every finished block, and a rerun, with any number of processes,
continues from it exactly as a single process would.

Backends: gloo on CPUs, NCCL on GPUs (one device per process: ``LOCAL_RANK``). Outside
torchrun (or ``WORLD_SIZE`` 1) nothing here does anything: rank 0 of 1.

Failures: rank 0 alone reports. A decision rank 0 makes (:func:`on_main`, :func:`held_on_main`:
the writer lock, the file checked or made) reaches every rank, success or error; a collective
whose peer is gone raises :class:`PeerFailed` (not gloo's or NCCL's own error), so that the
command line can let rank 0 say what went wrong and the other ranks end quietly
(:func:`launched`: which rank a process is, even before it joins the group).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from landscape._device import resolve_device

__all__ = [
    "PeerFailed",
    "Ranks",
    "RowGatherer",
    "all_gather_object",
    "held_on_main",
    "launched",
    "on_main",
    "ranks",
    "session",
    "shard",
]

T = TypeVar("T")


class PeerFailed(RuntimeError):
    """A collective failed because another process of the command stopped (it reports why)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            "another process of this torchrun command stopped (run with -v to see every "
            "process's message): the output keeps every finished block; run the same command "
            "again to continue"
        )
        self.cause = cause


def _collective(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, a collective: a peer gone (gloo: "Connection closed by peer")
    becomes :class:`PeerFailed`."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:  # DistError and the backends' plain RuntimeErrors alike
        raise PeerFailed(exc) from exc


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of a command: rank 0 of 1 alone."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the output."""
        return self.rank == 0


def ranks() -> Ranks:
    """The ranks of the default process group, or rank 0 of 1 when there is none."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def _env_number(name: str, default: int, least: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = least - 1
    if value < least:
        raise ValueError(
            f"{name}={raw!r} is not a whole number >= {least}: torchrun sets {name}; unset it "
            "(and RANK, LOCAL_RANK) to run in one process"
        )
    return value


def launched() -> Ranks:
    """What torchrun says this process is (``RANK`` of ``WORLD_SIZE``), joined or not.

    Raises:
        ValueError: ``WORLD_SIZE`` or ``RANK`` is not a number (or out of range).
    """
    world = _env_number("WORLD_SIZE", 1, 1)
    rank = _env_number("RANK", 0, 0) if world > 1 else 0  # RANK alone means nothing
    if rank >= world:
        raise ValueError(f"RANK={rank} is not below WORLD_SIZE={world}: torchrun sets both")
    return Ranks(rank, world)


@contextlib.contextmanager
def session(device: str) -> Iterator[Ranks]:
    """Join torchrun's processes for the block (when ``WORLD_SIZE`` > 1), then leave.

    ``device`` is the command's ``--device``: CUDA gives NCCL and this process's GPU
    (``LOCAL_RANK``), anything else gloo.

    Raises:
        ValueError: Bad torchrun variables, ``cuda`` without CUDA or with fewer GPUs than
            processes on this machine: on every process alike, before any of them joins.
    """
    world = launched().world
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        yield ranks()
        return
    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed: run without torchrun")
    cuda = resolve_device(device).type == "cuda"  # cuda without CUDA: the one-process message
    if cuda:
        local, gpus = _env_number("LOCAL_RANK", 0, 0), torch.cuda.device_count()
        if local >= gpus:
            raise ValueError(f"process {local} of this machine has no GPU of its own ({gpus} "
                             "found): start at most that many processes per machine "
                             "(--nproc_per_node), or use --device cpu")  # fmt: skip
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield ranks()
    finally:
        dist.destroy_process_group()


def shard(items: Sequence[T], r: Ranks) -> list[T]:
    """This rank's share of ``items``: every ``world``-th, from position ``rank``."""
    return list(items[r.rank :: r.world])


def _device() -> torch.device:
    """Where collectives take their tensors: the current GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def on_main(fn: Callable[[], T], r: Ranks) -> T:
    """``fn()`` run on rank 0 only, its result given to every rank.

    An error on rank 0 (bad input, a file that is refused) is raised on every rank with
    the same one-line message (a ``ValueError`` on the others), so that no rank waits
    forever for the others.
    """
    if r.world == 1:
        return fn()
    box: list[Any] = [None]
    failure: Exception | None = None
    if r.main:
        try:
            box = [("ok", fn())]
        except Exception as exc:  # every rank must hear of it, whatever it is
            failure, box = exc, [("error", str(exc))]
    _collective(dist.broadcast_object_list, box, src=0, device=_device())
    status, value = box[0]
    if failure is not None:
        raise failure
    if status == "error":
        raise ValueError(value)
    return value


@contextlib.contextmanager
def held_on_main(make: Callable[[], AbstractContextManager[T]], r: Ranks) -> Iterator[T | None]:
    """``make()`` entered on rank 0 only for the block (a writer lock), every rank hearing
    whether it could be (:func:`on_main`). Yields what it yields on rank 0, None elsewhere."""
    with contextlib.ExitStack() as stack:
        box: list[T | None] = [None]

        def enter() -> None:
            box[0] = stack.enter_context(make())

        on_main(enter, r)
        yield box[0]


def all_gather_object(out: list[Any], obj: Any) -> None:
    """``out[k]`` = rank ``k``'s ``obj`` on every rank (results among the command's own
    processes, never anything read from a file)."""
    _collective(dist.all_gather_object, out, obj)


class RowGatherer:
    """Collects ``(index, values)`` rows of every rank on rank 0, a block at a time.

    Each rank :meth:`add` s its rows; every ``chunk`` rows (and in :meth:`finish`, until all
    ranks have done ``rounds`` blocks) one ``all_gather`` moves a block of each rank: rows
    padded with index -1 in a float64 tensor ``(chunk, 1 + width)``. Rank 0 hands every
    gathered row to ``on_row(index, values)``. Indices must be exact in float64 (< 2**53).

    Args:
        chunk: Rows per rank per block.
        width: Values per row.
        rounds: Blocks every rank takes part in (the same on every rank).
        on_row: Called on rank 0 for each row of each block, in rank order.
        r: The ranks.
    """

    def __init__(
        self,
        chunk: int,
        width: int,
        rounds: int,
        on_row: Callable[[int, list[float]], None] | None,
        r: Ranks,
    ) -> None:
        self.chunk, self.width, self.rounds, self.on_row, self.r = chunk, width, rounds, on_row, r
        self.rows: list[list[float]] = []
        self.done = 0

    def add(self, index: int, values: Sequence[float]) -> None:
        self.rows.append([float(index), *map(float, values)])
        if len(self.rows) == self.chunk:
            self._gather()

    def finish(self) -> None:
        """Take part in the blocks still due (with what is left, or nothing)."""
        while self.done < self.rounds:
            self._gather()
        if self.rows:
            raise ValueError(f"{len(self.rows)} rows left after {self.rounds} blocks")

    def _gather(self) -> None:
        if self.done >= self.rounds:
            raise ValueError(f"more than {self.rounds} blocks of {self.chunk} rows")
        block = torch.full((self.chunk, 1 + self.width), -1.0, dtype=torch.float64)
        if self.rows:
            block[: len(self.rows)] = torch.tensor(self.rows, dtype=torch.float64)
        block = block.to(_device())
        parts = [torch.empty_like(block) for _ in range(self.r.world)]
        _collective(dist.all_gather, parts, block)
        self.rows, self.done = [], self.done + 1
        if self.r.main and self.on_row is not None:
            for row in torch.cat(parts).cpu().tolist():
                if row[0] >= 0:
                    self.on_row(int(row[0]), row[1:])
