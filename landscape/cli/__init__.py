"""The ``landscape`` command line: a thin click layer over the library.

Each command builds a configuration, calls one library function and writes through the
store. User errors (``ValueError`` and its subclasses, missing files) become a one-line
``Error: ...`` and exit code 2, never a traceback. One module per command family;
:mod:`.common` holds the plumbing they share (errors, progress bars, option parsing).

May import: every wing of the library. Nothing in the library imports the CLI or click.
"""

from __future__ import annotations

import logging
import sys

import click

from landscape import distributed
from landscape._device import keep_freed_memory
from landscape.cli.common import BadInput, LandscapeGroup
from landscape.store.provenance import package_version

#: The commands torchrun can spread over processes (landscape.distributed).
SHARDED = ("slice", "probe")


@click.group(cls=LandscapeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), "--version", prog_name="landscape")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr.")
def main(verbose: bool) -> None:
    """Loss landscapes of neural networks: BatchNorm vs plain, probes and slices."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    keep_freed_memory()  # many passes: freed buffers stay with the process (landscape._device)
    command = click.get_current_context().invoked_subcommand
    if distributed.launched().world > 1 and command not in SHARDED:
        raise BadInput(
            f"landscape {command} runs in one process: run it without torchrun (torchrun "
            f"spreads {' and '.join(SHARDED)} over processes)"
        )


def _register() -> None:
    from landscape.cli import check, demo, export, hessian, info, plot, probe, slice, sweep, train

    for module in (train, demo, info, plot, probe, slice, hessian, check, sweep, export):
        module.register(main)


_register()
