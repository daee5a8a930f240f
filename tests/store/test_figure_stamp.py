"""Figures carry landscape's stamp in every format save_figure writes; only stamped images
are figures to the output guard (any other image is never replaced)."""

from __future__ import annotations

import re

import pytest
from matplotlib.figure import Figure

from landscape.render import save_figure
from landscape.store import check_output, kind_of
from landscape.store.figure_stamp import savefig_kwargs, stamp, stamped
from landscape.store.outputs import FOREIGN_IMAGE

FORMATS = ["png", "pdf", "svg", "eps", "ps", "jpg", "jpeg", "tif", "tiff"]


def _figure() -> Figure:
    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_stamped_and_only_stamped_images_are_replaced(tmp_path, fmt):
    fig = _figure()
    (path,) = save_figure(fig, tmp_path / "fig", formats=(fmt,))
    assert kind_of(path) == "figure"
    assert save_figure(fig, path, formats=(fmt,)) == [path]  # a figure of landscape: redrawn
    theirs = tmp_path / f"theirs.{fmt}"
    fig.savefig(theirs, format=fmt)  # the same figure, drawn with matplotlib alone
    before = theirs.read_bytes()
    assert kind_of(theirs) == FOREIGN_IMAGE
    with pytest.raises(ValueError, match=rf"theirs\.{fmt} holds an image landscape did not draw"):
        save_figure(fig, theirs, formats=(fmt,))
    assert theirs.read_bytes() == before


def test_a_pdf_is_ours_only_by_its_own_info_and_only_as_written(tmp_path):
    """Text that names landscape elsewhere in a PDF (one that embeds our figure, as pdfTeX
    copies an included file's /Info) or a PDF changed after us (an incremental update) is
    not a figure of landscape."""
    (pdf,) = save_figure(_figure(), tmp_path / "fig", formats=("pdf",))
    data = pdf.read_bytes()
    assert b"/Creator (" + stamp().encode() + b")" in data and b"/CreationDate" not in data
    other_info = tmp_path / "embeds.pdf"
    other_info.write_bytes(re.sub(rb"/Info \d+ 0 R", b"/Info 1 0 R", data))
    updated = tmp_path / "annotated.pdf"
    tail = data[data.rindex(b"trailer") :].replace(b"startxref\n", b"startxref\n1")
    updated.write_bytes(data + b"9 0 obj\n<< /Annot 1 >>\nendobj\nxref\n0 1\n" + tail)
    for path in (other_info, updated):
        assert not stamped(path, "pdf") and kind_of(path) == FOREIGN_IMAGE, path.name
        with pytest.raises(ValueError, match="holds an image landscape did not draw"):
            check_output(path, "figure")


def test_a_text_file_that_mentions_svg_is_not_a_figure(tmp_path):
    page = tmp_path / "page.svg"
    page.write_text("<html><body><svg><title>landscape 1</title></svg></body></html>")
    assert kind_of(page) == FOREIGN_IMAGE


def test_an_unknown_format_has_no_stamp():
    with pytest.raises(ValueError, match="no stamp for figure format 'bmp'"):
        savefig_kwargs("bmp")
