"""Short reprs and notebook pictures of result objects (before: printing a SliceResult
printed every direction tensor, over 1,000 lines for vgg_small)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape.models import create_model
from landscape.probes import gradient_probe
from landscape.slices import random_line, random_plane
from tests.render.helpers import PNG_MAGIC

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def vgg_and_data():
    torch.manual_seed(0)
    model = create_model("vgg_small", bn=True, input_shape=(1, 8, 8))
    g = torch.Generator().manual_seed(1)
    return model, [(torch.randn(16, 1, 8, 8, generator=g), torch.arange(16) % 10)]


def test_results_print_in_one_line_and_draw_in_notebooks(vgg_and_data):
    model, data = vgg_and_data
    ce = nn.functional.cross_entropy
    plane = random_plane(model, ce, data, "-1:1:3", "-1:1:2")
    text = repr(plane)
    assert "\n" not in text and len(text) < 300 and "tensor(" not in text
    assert text.startswith("SliceResult(random_plane 3×2 over x -1..1, y -1..1; loss ")
    assert "6 of 6 computed; bn_mode eval; 2 direction(s)" in text
    line = random_line(model, ce, data, "-1:1:3")
    probe = gradient_probe(model, ce, data[0], [0.05, 0.1, 0.2])
    ptext = repr(probe)
    assert "\n" not in ptext and ptext.startswith("ProbeResult(3 step sizes 0.05..0.2 along ")
    assert f"beta {probe.beta:.4g}" in ptext
    for result in (plane, line, probe):
        png = result._repr_png_()
        assert png.startswith(PNG_MAGIC) and len(png) > 2000
    assert np.isfinite(probe.beta)
