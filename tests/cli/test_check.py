"""``landscape check scale-invariance``: the table, the exit code (0 holds, 1 violated), and
bad input as one ``Error:`` line with exit 2."""

from __future__ import annotations

import re

import pytest

from tests.cli.helpers import error_line, invoke

CHECK = ("check", "scale-invariance")
FEW = ("--examples", 48)
LAYERS = ("features.0.conv", "features.1.conv", "features.3.conv", "features.4.conv",
          "classifier.0.linear")  # fmt: skip


def rows(output: str) -> dict[tuple[str, str], list[float]]:
    """(network, layer) -> the three deviations of each table row."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] in ("bn", "plain", "model"):
            found[parts[0], parts[1]] = [float(v) for v in parts[-3:]]
    return found


def no_bn_rows(output: str) -> int:
    return sum("no BN follows" in line for line in output.splitlines() if line.startswith("plain"))


def test_a_model_name_checks_the_bn_network_beside_its_plain_twin():
    result = invoke(*CHECK, "vgg_small", *FEW)
    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert set(table) == {(v, layer) for v in ("bn", "plain") for layer in LAYERS}
    assert all(max(table["bn", layer]) < 1e-12 for layer in LAYERS)
    assert all(min(table["plain", layer]) > 0.5 for layer in LAYERS)
    assert no_bn_rows(result.output) == 5
    assert "48 digits training examples, float64" in result.output
    assert re.search(r"holds: every layer that feeds BN within 1\.00e-10", result.output)


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--variant", "plain"), "no checked layer feeds a BatchNorm layer"),
        (("--keep-eps", "--variant", "bn"), "FAILED: 5 of 5 layers of bn that feed BN exceed"),
    ],
)
def test_violated_identities_exit_1_with_a_message(args, needle):
    result = invoke(*CHECK, "vgg_small", *FEW, *args)
    assert result.exit_code == 1, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_checkpoints_of_a_trained_pair(tmp_path):
    run = tmp_path / "run"
    train = ("train", "--model", "mlp", "--model-option", "depth=2", "--model-option",
             "width=16", "--steps", 3, "--device", "cpu", "-q", "--out", run)  # fmt: skip
    assert invoke(*train).exit_code == 0
    bn = invoke(*CHECK, run / "checkpoints" / "bn" / "step_0000003.pt", *FEW)
    assert bn.exit_code == 0, bn.output
    assert set(rows(bn.output)) == {("bn", "layers.0.linear"), ("bn", "layers.1.linear")}
    plain = invoke(*CHECK, run / "checkpoints" / "plain" / "step_0000003.pt", *FEW)
    assert plain.exit_code == 1  # the plain network, at the layers its BN twin normalises
    assert no_bn_rows(plain.output) == 2 and "nothing here is scale invariant" in plain.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (("nosuchnet",), "unknown model 'nosuchnet'"),
        (("missing.pt",), "no checkpoint file missing.pt"),
        (("runs/none/step_0000001.pt",), "no checkpoint file runs/none/step_0000001.pt"),
        (("vgg_small", "--scales", "0.1,-1"), "--scales must be positive numbers"),
        (("vgg_small", "--scales", "ten"), "--scales must be comma-separated numbers"),
        (("vgg_small", "--examples", "1"), "examples (--examples) must be >= 2"),
        (("vgg_small", "--variant", "twin"), "'--variant': 'twin' is not one of"),
        (("vgg_small", "--model-option", "depth=2"), "unknown option(s) ['depth']"),
        (("vgg_small", "--data", "nosuchdata"), "nosuchdata"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle):
    assert needle in error_line(invoke(*CHECK, *args))


def test_build_options_are_refused_for_a_checkpoint(tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    assert "seed (--seed) only apply to a model name" in error_line(
        invoke(*CHECK, bad, "--seed", 3)
    )
    error_line(invoke(*CHECK, bad))  # a damaged file: one line
