"""``landscape check``: numerical checks of the theory the measurements rely on.

``landscape check scale-invariance TARGET``: BN((aW)u) = BN(Wu), dL/du unchanged and
dL/dW(aW) = dL/dW(W) / a for every layer that feeds BatchNorm (Ioffe & Szegedy 2015, Sec.
3.3), beside the plain twin's same layers. Exit 0 when they hold within the tolerance, 1
when they do not, 2 on bad input.
"""

from __future__ import annotations

import math

import click

from landscape.cli.common import BadInput, literal_choice, parse_key_values
from landscape.probes.scale_check import ScaleCheck, ScaleCheckConfig, check_scale_invariance
from landscape.probes.scale_invariance import IDENTITIES, TINY_EPS

#: Column heads of the identities, in IDENTITIES order.
HEADS = {
    "output": "(i) BN out",
    "input_grad": "(ii) dL/du",
    "weight_grad": "(iii) a·dL/dW",
}
#: Exit code of a check that ran and found an identity violated.
EXIT_FAILED = 1


def _scales(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise BadInput(
            f"--scales must be comma-separated numbers, e.g. 0.1,10,1000, got {text!r}"
        ) from None
    if not values or not all(math.isfinite(a) and a > 0 for a in values):
        raise BadInput(f"--scales must be positive numbers, got {text!r}")
    return values


def _number(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.2e}"


def table(check: ScaleCheck) -> str:
    """One row per network and layer: the largest relative deviation over the scales of each
    identity; a layer that feeds no BN says so."""
    rows = [(v, c) for v, r in check.results.items() for c in r.layers]
    wl = max(len("layer"), *(len(c.layer) for _, c in rows))
    wb = max(len("BN"), len("no BN follows"), *(len(c.bn or "") for _, c in rows))
    wv = max(len("network"), *(len(v) for v, _ in rows))
    head = f"{'network':<{wv}}  {'layer':<{wl}}  {'BN':<{wb}}" + "".join(
        f"  {HEADS[i]:>13}" for i in IDENTITIES
    )
    lines = [head]
    for variant, c in rows:
        cells = "".join(f"  {_number(c.worst(i)):>13}" for i in IDENTITIES)
        lines.append(f"{variant:<{wv}}  {c.layer:<{wl}}  {c.bn or 'no BN follows':<{wb}}{cells}")
    return "\n".join(lines)


def _header(check: ScaleCheck) -> str:
    c, s = check.config, check.source
    eps = f"eps = {TINY_EPS:.1e} (in effect 0)" if c.eps == "zero" else "the layers' own eps"
    scales = ", ".join(f"{a:g}" for a in c.scales)
    built = "" if "checkpoint" in s else f", seed {c.seed}"
    return (
        f"scale invariance of {check.target}{built}: {s['examples']} {s['dataset']} training "
        f"examples, float64, BN in training mode with {eps}\n"
        f"largest relative deviation max|x(aW) - x(W)| / max|x(W)| over a = {scales}, of\n"
        "(i) x = BN(Wu) (where no BN follows: the layer's output Wu + b), (ii) x = dL/du, "
        "(iii) x = a dL/dW"
    )


def _verdict(check: ScaleCheck) -> tuple[bool, str]:
    claimed = [r for r in check.results.values() if r.claimed]
    others = [
        r.largest(claimed=False) for r in check.results.values() if len(r.claimed) < len(r.layers)
    ]
    contrast = f"; layers without BN deviate up to {_number(max(others))}" if others else ""
    tol = _number(check.config.tolerance)
    if not claimed:
        return False, (
            f"no checked layer feeds a BatchNorm layer: nothing here is scale invariant{contrast}"
        )
    if check.passed:
        worst = max(r.largest() for r in claimed)
        return (
            True,
            f"holds: every layer that feeds BN within {tol} (largest {_number(worst)}){contrast}",
        )
    variant, result = next((v, r) for v, r in check.results.items() if r.claimed and not r.passed)
    n = len({f[0] for f in result.failures()})
    layer, identity, a, value = result.failures()[0]
    return False, (
        f"FAILED: {n} of {len(result.claimed)} layers of {variant} that feed BN exceed {tol}; "
        f"largest: {layer} {HEADS[identity]} = {_number(value)} at a = {a:g}"
    )


def register(main: click.Group) -> None:
    @main.group("check")
    def check() -> None:
        """Numerical checks of the theory the measurements rely on."""

    @check.command("scale-invariance")
    @click.argument("target")
    @click.option("--scales", default="0.1,10,1000", show_default=True, metavar="A[,A...]",
                  help="The factors a > 0 the layer's weight is multiplied by.")  # fmt: skip
    @click.option("--tolerance", type=float, default=1e-10, show_default=True,
                  help="Largest relative deviation that counts as holding.")  # fmt: skip
    @click.option("--keep-eps", is_flag=True, help="Keep BN's own eps (it breaks exactness by "
                  "about |1 - 1/a^2| eps / (2 var)) instead of setting it to 0.")  # fmt: skip
    @click.option("--examples", type=int, default=256, show_default=True,
                  help="Training examples in the one batch (BN's statistics are "
                  "its own).")  # fmt: skip
    @click.option("--data", "dataset", default=None,
                  help="Data set [default: the checkpoint's, else digits].")  # fmt: skip
    @click.option("--data-option", "data_options", multiple=True, metavar="KEY=VALUE",
                  help="A data set option, e.g. kind=linear-regression (repeatable).")  # fmt: skip
    @click.option("--variant", type=literal_choice(ScaleCheckConfig, "variant"), default="both",
                  show_default=True, help="With a model name: the BN network, its plain twin "
                  "(same seed and shared weights), or both.")  # fmt: skip
    @click.option("--seed", type=int, default=0, show_default=True,
                  help="With a model name: the seed the pair is built with.")  # fmt: skip
    @click.option("--activation", type=literal_choice(ScaleCheckConfig, "activation"),
                  default="relu", show_default=True, help="With a model name.")  # fmt: skip
    @click.option("--init-scale", type=float, default=1.0, show_default=True,
                  help="With a model name: multiplies every weight tensor after init.")  # fmt: skip
    @click.option("--model-option", "model_options", multiple=True, metavar="KEY=VALUE",
                  help="With a model name: a family option, e.g. width=8 "
                  "(repeatable).")  # fmt: skip
    @click.option("--trust-factory", is_flag=True,
                  help="Rebuild a checkpoint's model named by an import path (runs "
                  "that code).")  # fmt: skip
    def scale_invariance_cmd(target: str, scales: str, keep_eps: bool,
                             model_options: tuple[str, ...], data_options: tuple[str, ...],
                             trust_factory: bool, **settings) -> None:  # fmt: skip
        """Check that BN makes TARGET's layers scale invariant: BN((aW)u) = BN(Wu), dL/du
        unchanged and dL/dW at aW = (1/a) dL/dW at W, for every Conv/Linear layer that feeds
        BatchNorm (float64, BN in training mode). TARGET is a checkpoint file or a model
        name (built as a BN/plain pair; the plain twin's same layers are shown for contrast).
        Exit 0: all hold within --tolerance; 1: some do not."""
        config = ScaleCheckConfig(
            scales=_scales(scales), eps="model" if keep_eps else "zero",
            model_options=parse_key_values(model_options, "model-option"),
            data_options=parse_key_values(data_options, "data-option"), **settings,
        )  # fmt: skip
        result = check_scale_invariance(target, config, trust_factory=trust_factory)
        click.echo(_header(result))
        click.echo(table(result))
        ok, message = _verdict(result)
        click.echo(message, err=not ok)
        if not ok:
            raise click.exceptions.Exit(EXIT_FAILED)
