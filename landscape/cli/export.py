"""``landscape export vtk``: slice files for ParaView."""

from __future__ import annotations

from pathlib import Path

import click

from landscape.figures import export_vtk


def register(main: click.Group) -> None:
    @main.group("export")
    def export() -> None:
        """Write results in other tools' formats."""

    @export.command("vtk")
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="[default: FILE with the suffix .vts]")  # fmt: skip
    @click.option("--z", "z", default="loss", show_default=True, help="The metric the surface "
                  "rises by.")  # fmt: skip
    @click.option("--log", is_flag=True, help="z = log10 of the metric.")
    def vtk(file: Path, out: Path | None, z: str, log: bool) -> None:
        """A slice file as a VTK StructuredGrid (.vts): the surface f(a, b) for ParaView."""
        click.echo(export_vtk(file, out, z=z, log=log))
