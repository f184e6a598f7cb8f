"""JPEG 2000 completeness: a placeholder or a cut download is refused before any pixel is decoded."""

from __future__ import annotations

from cloudmask_cli.errors import InputError
from cloudmask_cli.products.archive import Archive

_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_J2K_START = b"\xff\x4f\xff\x51"  # SOC + SIZ: a raw codestream
_J2K_END = b"\xff\xd9"  # EOC


# -- JPEG 2000 completeness --------------------------------------------------------------------
def check_jp2(files: Archive, rel: str) -> None:
    """Refuse placeholders and truncated JPEG 2000 files before any pixel is decoded.

    GDAL decodes a truncated codestream without raising (it only logs), so a cut file would give
    silently wrong pixels. A complete JP2 is a chain of boxes whose lengths add up to the file
    size, and its codestream ends with the EOC marker (FFD9).
    """
    where = files.display(rel)
    size = files.size(rel)
    if size < len(_JP2_SIGNATURE) + 8:
        raise InputError(
            where, f"is {size} byte(s): not a JPEG 2000 image (placeholder or cut download)"
        )
    head = files.read_at(rel, 0, len(_JP2_SIGNATURE))
    if head.startswith(_J2K_START):
        _check_codestream_end(files, rel, size, where)
    elif head == _JP2_SIGNATURE:
        _check_boxes(files, rel, size, where)
    # Anything else (some trimmed test products carry GeoTIFFs named .jp2) is left to GDAL,
    # whose other drivers raise on truncated files.


def _check_boxes(files: Archive, rel: str, size: int, where: str) -> None:
    offset, codestream = 0, False
    while offset < size:
        header = files.read_at(rel, offset, 16)
        if len(header) < 8:
            raise InputError(where, f"is truncated: a JP2 box header at byte {offset} is cut")
        length, box = int.from_bytes(header[:4], "big"), header[4:8]
        if length == 1:  # a 64-bit length follows
            length = int.from_bytes(header[8:16], "big")
        elif length == 0:  # the last box runs to the end of the file
            length = size - offset
        if length < 8 or offset + length > size:
            raise InputError(
                where,
                f"is truncated: its '{box.decode('latin-1')}' box needs {offset + length} bytes "
                f"but the file has {size}",
            )
        if box == b"jp2c":
            codestream = True
            _check_codestream_end(files, rel, offset + length, where)
        offset += length
    if not codestream:
        raise InputError(where, "is truncated: no JPEG 2000 codestream (jp2c box)")


def _check_codestream_end(files: Archive, rel: str, end: int, where: str) -> None:
    if files.read_at(rel, end - 2, 2) != _J2K_END:
        raise InputError(where, "is truncated: its JPEG 2000 codestream has no end marker")
