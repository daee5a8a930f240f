"""Your own weights on the command line: a plain ``state_dict`` file and a model factory.

Trains the MLP of ``examples/tiny_models.py`` briefly on the bundled digits, saves it with
``torch.save(model.state_dict(), OUT/m.pt)``, then runs the CLI on that file with
``--model tiny_models:make`` (the factory that builds the network; ``--model-option``
passes its keywords):

    landscape info  m.pt --model tiny_models:make --model-option hidden=32
    landscape slice m.pt --model tiny_models:make ... --data digits --x -1:1:11 --y -1:1:11
    landscape probe --checkpoint m.pt --model tiny_models:make ... --data digits --lr 0.1
    landscape plot slice OUT/slice.h5

The commands run from ``examples/`` (the current directory is importable, so
``tiny_models`` is found) as ``python -m landscape``, which needs no installed entry point.

Run (about 15 s on 2 CPU cores):  python examples/state_dict_cli.py --out DIR
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tiny_models import make

from landscape import batch_indices, load_dataset

HERE = Path(__file__).resolve().parent
MODEL = ["--model", "tiny_models:make", "--model-option", "hidden=32"]


def landscape(*args: str | Path) -> None:
    """Run one CLI command from this folder; stop on its error."""
    print("$ python -m landscape", *args, flush=True)
    subprocess.run([sys.executable, "-m", "landscape", *map(str, args)], cwd=HERE, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_out/state_dict"))
    out: Path = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = make(hidden=32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(100):
        idx = batch_indices(len(data.x_train), 128, step, seed=0)
        optimizer.zero_grad()
        F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        optimizer.step()
    weights, slice_file = out / "m.pt", out / "slice.h5"
    torch.save(model.state_dict(), weights)  # a plain state_dict: no landscape checkpoint

    landscape("info", weights, *MODEL)
    grid = ["--x", "-1:1:11", "--y", "-1:1:11", "--overwrite", "-q"]  # overwrite: other weights
    landscape("slice", weights, *MODEL, "--data", "digits", *grid, "--out", slice_file)
    probe = ["--lr", "0.1", "--batches", "2", "--batch-size", "128", "--overwrite", "-q"]
    landscape("probe", "--checkpoint", weights, *MODEL, "--data", "digits", *probe,
              "--out", out / "probes.h5")  # fmt: skip
    landscape("plot", "slice", slice_file, "--out", out / "slice")  # slice.png, slice.pdf


if __name__ == "__main__":
    main()
