"""scripts/fig2_noisy_bn.py (Santurkar et al. Fig. 2) runs its tiny preset end to end with
a handful of steps, writes what it promises, and refuses the paper preset without CIFAR-10."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from landscape import store
from tests.cases import load_script
from tests.render.helpers import PNG_MAGIC


@pytest.fixture(scope="module")
def fig2():
    return load_script("fig2_noisy_bn")


def test_the_tiny_preset_writes_runs_a_study_file_and_a_figure(fig2, tmp_path, one_thread, capsys):
    out = tmp_path / "fig2"
    fig2.main(["--out", str(out), "--steps", "6", "--record-every", "3"])
    assert (out / "fig2_noisy_bn.png").read_bytes().startswith(PNG_MAGIC)
    assert (out / "fig2_noisy_bn.pdf").is_file()
    assert {p.name for p in (out / "pair" / "checkpoints").iterdir()} == {"bn", "plain"}
    assert {p.name for p in (out / "noisy_bn" / "checkpoints").iterdir()} == {"bn"}
    with h5py.File(out / "fig2.h5", "r") as f:
        attrs = store.read_attrs(f)
        assert attrs[store.KIND_ATTR] == "study file"
        assert set(store.PROVENANCE_KEYS) <= set(attrs)
        config = attrs["config_json"]  # read_attrs decodes the JSON
        assert config["preset"] == "tiny" and config["steps"] == 6
        assert config["train_configs"]["noisy_bn"]["bn_noise"] == "santurkar"
        assert [lay["index"] for lay in config["layers_chosen"]] == [3, 5]  # 11 -> the last BN
        assert set(f["train"]) == set(f["eval"]) == {"plain", "bn", "noisy_bn"}
        np.testing.assert_array_equal(f["train/noisy_bn/step"][()], np.arange(6))
        for v in ("plain", "bn", "noisy_bn"):
            assert set(f[f"activations/{v}"]) == {"layer3", "layer5"}
            group = f[f"activations/{v}/layer3"]
            np.testing.assert_array_equal(group["step"][()], [0, 3])
            assert group["percentiles"].shape == (2, len(attrs["percentiles"]))
            assert group.attrs["module"] == "features.3.bn"
            for name in group:
                assert group[name].attrs["description"]
        # the same initial weights, different noise: step 0's BN and noisy-BN losses differ
        assert f["train/bn/loss"][0] != f["train/noisy_bn/loss"][0]
        assert f["eval/bn/loss"][0] == f["eval/noisy_bn/loss"][0]  # eval mode: plain BN
    with pytest.raises(SystemExit) as again:  # refused before any training
        fig2.main(["--out", str(out), "--steps", "6"])
    assert again.value.code == 2
    assert "holds an earlier study: pass --overwrite" in capsys.readouterr().err


def test_the_paper_preset_needs_cifar10(fig2, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fig2.main(["--preset", "paper", "--data-dir", str(tmp_path), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: cifar10 files not found under")
    assert "the paper preset trains vgg11 on cifar10" in err
    assert not list(tmp_path.iterdir())
