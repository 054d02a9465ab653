"""A PNG's structure read without Pillow: its chunks (``png_chunks``), and whether it holds all of its
pixels (``missing_pixel_bytes``).

Pillow's ``verify()`` checks a PNG's chunks and their CRCs, not that its compressed image data inflates to
every row: a PNG cut short and given fresh CRCs passes it, and fails only when someone decodes it (a worker,
after the task was accepted and billed). Counting the inflated bytes tells, without holding them: they are
inflated a piece at a time and dropped."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type: grey, RGB, palette, grey+alpha, RGBA
# Adam7's passes: first column, first row, column step, row step.
_PASSES = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_PIECE = 1 << 20  # inflated bytes held at once


def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of the data of each chunk of ``data``, a PNG, in order up to its IEND; it stops
    early at a chunk cut short, so a PNG is whole when the last chunk given is its IEND. The CRCs are not
    computed."""
    position = len(PNG_SIGNATURE)
    while position + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        start, end = position + 8, position + 8 + length
        if end + 4 > len(data):
            return
        yield kind, start, end
        if kind == b"IEND":
            return
        position = end + 4


def _scanline_bytes(width: int, height: int, bits_per_pixel: int) -> int:
    """The filtered image data of ``height`` rows of ``width`` pixels: a filter byte, then the pixels."""
    if width <= 0 or height <= 0:
        return 0
    return height * (1 + (width * bits_per_pixel + 7) // 8)


def expected_bytes(width: int, height: int, bit_depth: int, color_type: int, interlaced: bool) -> int:
    bits = _CHANNELS[color_type] * bit_depth
    if not interlaced:
        return _scanline_bytes(width, height, bits)
    return sum(
        _scanline_bytes(-(-(width - x) // dx), -(-(height - y) // dy), bits) for x, y, dx, dy in _PASSES
    )


def missing_pixel_bytes(data: bytes) -> tuple[int, int]:
    """(bytes missing, bytes expected) of the image data of ``data``, a PNG whose chunks Pillow has
    verified; (0, expected) when it is whole. Raises ``ValueError`` when the data does not inflate."""
    view = memoryview(data)
    expected, inflated = None, 0
    inflater = zlib.decompressobj()
    for kind, start, end in png_chunks(data):
        body = view[start:end]
        if kind == b"IHDR" and len(body) >= 13:
            width, height, bit_depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", body[:13])
            if color_type not in _CHANNELS:
                raise ValueError(f"colour type {color_type}")
            expected = expected_bytes(width, height, bit_depth, color_type, interlace == 1)
        elif kind == b"IDAT" and expected is not None:
            try:
                inflated += len(inflater.decompress(body, _PIECE))
                while inflater.unconsumed_tail and inflated < expected:
                    inflated += len(inflater.decompress(inflater.unconsumed_tail, _PIECE))
            except zlib.error as exc:
                raise ValueError(str(exc)) from None
            if inflated >= expected:
                return 0, expected
    if expected is None:
        raise ValueError("no IHDR chunk")
    return expected - inflated, expected
