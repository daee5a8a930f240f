"""Probes and slices of a HuggingFace-style model whose batches are dicts.

``forward(input_ids, attention_mask, labels=None)`` returns ``loss`` and ``logits`` (a tiny
embedding + mean-pool classifier on synthetic tokens; a ``transformers`` model works the same
way). One ``landscape.batch_loss`` serves every entry point: ``ProbeCallback`` in the training
loop (``OUT/probes.h5``), ``gradient_probe``, and a filter-normalised ``random_plane`` around
the trained weights (``OUT/plane.h5``). Run (a few seconds on 2 CPU cores):

    python examples/dict_batch_model.py --out DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape import H5Sink, ProbeCallback, StepSizes, batch_loss, gradient_probe, random_plane

VOCAB, LENGTH, LR, STEPS = 50, 12, 0.5, 60


class TinyClassifier(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(VOCAB, dim), nn.Linear(dim, 2)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, labels: Tensor | None = None
    ) -> dict[str, Tensor]:  # as transformers' ModelOutput: out["logits"], out["loss"]
        mask = attention_mask.unsqueeze(-1).float()  # (B, T, 1)
        logits = self.head((self.embed(input_ids) * mask).sum(1) / mask.sum(1))  # (B, 2)
        loss = {} if labels is None else {"loss": F.cross_entropy(logits, labels)}
        return {"logits": logits, **loss}


def token_batch(n: int, generator: torch.Generator) -> dict[str, Tensor]:
    """Padded sequences of random length; label 1 if most real tokens are in the upper half."""
    ids = torch.randint(0, VOCAB, (n, LENGTH), generator=generator)
    lengths = torch.randint(3, LENGTH + 1, (n, 1), generator=generator)
    mask = (torch.arange(LENGTH) < lengths).long()
    labels = (((ids >= VOCAB // 2) * mask).sum(1) * 2 > lengths.squeeze(1)).long()
    return {"input_ids": ids * mask, "attention_mask": mask, "labels": labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("example_out/dict_batch"))
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    (out / "probes.h5").unlink(missing_ok=True)  # H5Sink refuses to append a second run
    gen = torch.Generator().manual_seed(0)
    train, held_out = [[token_batch(n, gen) for _ in range(k)] for n, k in ((64, 8), (128, 2))]
    loss = batch_loss(lambda model, b: model(**b)["loss"], size=lambda b: len(b["labels"]))

    torch.manual_seed(0)
    model = TinyClassifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    probe = ProbeCallback(20, StepSizes.vgg(LR), sink=H5Sink(out / "probes.h5"))
    for step in range(STEPS + 1):
        batch = train[step % len(train)]
        probe(step, model, loss, batch)  # before the update; the model is left as found
        optimizer.zero_grad()
        loss(model, batch).backward()
        optimizer.step()

    print(gradient_probe(model, loss, held_out[0], StepSizes.vgg(LR)))
    plane = out / "plane.h5"  # resumable; overwrite: replace a plane of other weights
    print(random_plane(model, loss, held_out, x="-1:1:9", y="-1:1:9", out=plane, overwrite=True))


if __name__ == "__main__":
    main()
