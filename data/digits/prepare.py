"""Convert scikit-learn's copy of the UCI optical-recognition digits into `digits.npz`.

Run once by a maintainer (needs scikit-learn); the resulting file,
`landscape/data/digits.npz`, is committed and shipped inside the installed package, so
`landscape` never needs scikit-learn at run time:

    python data/digits/prepare.py

The archive holds two arrays and nothing pickled:
    images  uint8 (1797, 8, 8), pixel counts 0..16
    targets uint8 (1797,), digit labels 0..9
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def main() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.uint8)  # (1797, 8, 8), values 0..16
    targets = digits.target.astype(np.uint8)  # (1797,)
    assert images.shape == (1797, 8, 8) and images.max() == 16
    out = Path(__file__).resolve().parents[2] / "landscape" / "data" / "digits.npz"
    np.savez_compressed(out, images=images, targets=targets)
    print(f"wrote {out} sha256={hashlib.sha256(out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
