"""The stamp on every figure landscape draws, and how the output guard recognises it.

A figure is replaced (``landscape plot`` run again) or removed (``train --overwrite``) only
when landscape drew it; any other image is never touched, also one drawn with matplotlib.
So :func:`landscape.render.save_figure` writes the text ``landscape <version>``
(:func:`stamp`) where each format keeps the name of the program that made the file, and
:func:`stamped` looks for it there, and only there:

======== =========================================== ===================================
format   where the stamp is written                   what :func:`stamped` checks
======== =========================================== ===================================
PNG      ``tEXt`` chunk ``Software``                 that chunk, before the image data
PDF      ``/Creator`` of the document's ``/Info``    the one trailer's ``/Info`` object
                                                     (a PDF that embeds one of ours, or
                                                     was edited after us, is not ours)
SVG      ``<dc:creator>`` of the root ``<metadata>`` the root element's first child
EPS, PS  the ``%%Creator:`` header comment           the header comments
JPEG     a ``COM`` (comment) segment                 segments before the image data
TIFF     tag 305 (``Software``) of the first IFD     that tag
======== =========================================== ===================================

Figures drawn before landscape stamped them (0.1.0 before the output guard's review) carry
no stamp: they are refused like any other image, and removed by hand.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any

from landscape.store.provenance import package_version

__all__ = ["STAMP_PREFIX", "image_format", "savefig_kwargs", "stamp", "stamped"]

#: What every stamp begins with (a version follows): any version's figures are recognised.
STAMP_PREFIX = "landscape "
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"%PDF-", "pdf"),
    (b"%!PS", "ps"),  # PostScript and EPS
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),  # little- and big-endian
    (b"MM\x00*", "tiff"),
)
_TIFF_SOFTWARE = 305
_PDF_TAIL = 16384  # matplotlib writes the /Info object and the trailer last
_SVG_ROOT_CREATOR = re.compile(
    rb"\A\s*(<\?xml[^>]*>\s*)?(<!DOCTYPE[^>]*>\s*)?<svg\b[^>]*>\s*<metadata>"
    rb"(?:(?!</metadata>).)*?<dc:creator>\s*<cc:Agent>\s*<dc:title>landscape ",
    re.DOTALL,
)


def stamp() -> str:
    """The stamp of this version: ``landscape <version>``."""
    return STAMP_PREFIX + package_version()


def savefig_kwargs(fmt: str) -> dict[str, Any]:
    """Keyword arguments of ``Figure.savefig`` that stamp a figure of format ``fmt``; a PDF
    also gets no creation date, so that identical figures give identical files.

    Raises:
        ValueError: ``fmt`` is not a format save_figure writes.
    """
    text = stamp()
    fmt = fmt.lower()
    if fmt == "png":
        return {"metadata": {"Software": text}}
    if fmt == "pdf":
        return {"metadata": {"Creator": text, "CreationDate": None}}
    if fmt in ("svg", "eps", "ps"):
        return {"metadata": {"Creator": text}}
    if fmt in ("jpg", "jpeg"):
        return {"pil_kwargs": {"comment": text.encode()}}
    if fmt in ("tif", "tiff"):
        return {"pil_kwargs": {"tiffinfo": {_TIFF_SOFTWARE: text}}}
    raise ValueError(f"no stamp for figure format {fmt!r}: use png, pdf, svg, eps, ps, jpg or tif")


def image_format(head: bytes) -> str | None:
    """The image format of a file beginning with ``head`` (its first 512 bytes), or None."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if b"<svg" in head:
        return "svg"
    return None


def stamped(path: str | Path, fmt: str) -> bool:
    """Whether the image at ``path`` (a regular file of format ``fmt``, as
    :func:`image_format` says) carries landscape's stamp where its format keeps it."""
    try:
        with open(path, "rb") as f:
            return bool(_CHECKS[fmt](f))
    except (OSError, ValueError, struct.error):
        return False


def _png(f: Any) -> bool:
    f.seek(8)
    while header := f.read(8):
        length, kind = struct.unpack(">I4s", header)
        if kind in (b"IDAT", b"IEND"):
            return False
        data = f.read(length)
        f.seek(4, os.SEEK_CUR)  # the CRC
        if kind == b"tEXt" and data.startswith(b"Software\x00" + STAMP_PREFIX.encode()):
            return True
    return False


def _pdf(f: Any) -> bool:
    """The /Creator of the /Info object named by the file's only trailer (a PDF changed by
    an incremental update has a second one; one that embeds ours names its own /Info)."""
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - _PDF_TAIL))
    tail = f.read()
    m = re.search(rb"trailer\s*<<[^>]*?/Info (\d+) 0 R[^>]*>>\s*startxref\s+\d+\s+%%EOF\s*\Z", tail)
    if m is None or tail.count(b"startxref") != 1:
        return False
    info = re.search(rb"(?:\A|\n)" + m.group(1) + rb" 0 obj\s*<<(.*?)>>\s*endobj", tail, re.DOTALL)
    if info is None or b"/Creator (" + STAMP_PREFIX.encode() not in info.group(1):
        return False
    f.seek(0)
    return _count(f, b"startxref") == 1  # no earlier revision before the tail


def _count(f: Any, needle: bytes) -> int:
    n, carry = 0, b""
    while chunk := f.read(1 << 20):
        block = carry + chunk
        n += block.count(needle) - carry.count(needle)
        carry = block[-(len(needle) - 1) :]
    return n


def _svg(f: Any) -> bool:
    return _SVG_ROOT_CREATOR.match(f.read(8192)) is not None


def _ps(f: Any) -> bool:
    for line in f.read(4096).splitlines():
        if line.startswith(b"%%Creator: " + STAMP_PREFIX.encode()):
            return True
        if not line.startswith(b"%") or line.startswith(b"%%EndComments"):
            return False
    return False


def _jpeg(f: Any) -> bool:
    f.seek(2)
    while (marker := f.read(4))[:1] == b"\xff" and len(marker) == 4:
        kind, length = marker[1], struct.unpack(">H", marker[2:])[0]
        if kind == 0xDA:  # start of scan: the image data follows
            return False
        data = f.read(length - 2)
        if kind == 0xFE and data.startswith(STAMP_PREFIX.encode()):
            return True
    return False


def _tiff(f: Any) -> bool:
    order = "<" if f.read(2) == b"II" else ">"
    f.seek(4)
    (ifd,) = struct.unpack(order + "I", f.read(4))
    f.seek(ifd)
    (count,) = struct.unpack(order + "H", f.read(2))
    for _ in range(count):
        tag, kind, n, value = struct.unpack(order + "HHI4s", f.read(12))
        if tag == _TIFF_SOFTWARE and kind == 2:  # ASCII
            if n > 4:
                f.seek(struct.unpack(order + "I", value)[0])
                value = f.read(n)
            return value.startswith(STAMP_PREFIX.encode())
    return False


_CHECKS = {"png": _png, "pdf": _pdf, "svg": _svg, "ps": _ps, "jpeg": _jpeg, "tiff": _tiff}
