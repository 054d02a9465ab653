"""Small versions of images that may be very large, without holding their pixels decoded.

A thumbnail needs a few hundred pixels a side; decoding an 8000 x 8000 reference whole to make one takes
244 MiB (Pillow keeps an RGB pixel in 4 bytes), and as much again to convert it. So:

- a JPEG is decoded at 1/2 to 1/8 scale (``Image.draft``: libjpeg scales while it decodes);
- a PNG of more than 4 Mi pixels (not interlaced, 8 bits a sample: the common kind) is decoded a band of
  rows at a time, each band reduced (``Image.reduce``, a box filter) into a small canvas before the next
  is decoded. Its zlib stream is inflated here as far as each band needs, and Pillow's PNG decoder
  unfilters the band, given the row above it as the band's first row;
- anything else (WebP, GIF, a smaller, interlaced or 16-bit PNG) is decoded whole.

Every decode takes its pixels from the process's budget (``core/pixel_budget.py``) first, so that what a
server holds decoded at once is bounded whatever the number of requests.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from pixelgate.core.pixel_budget import DECODED_PIXELS, PixelBudget
from pixelgate.core.png import PNG_SIGNATURE, png_chunks

BAND_PIXELS = 512 * 1024  # about how many pixels one band of a PNG decodes at once
WHOLE_PNG_PIXELS = 4 * 1024 * 1024  # a PNG of at most this many is decoded whole: faster, and small anyway
_PNG_MODES = {0: ("L", 1), 2: ("RGB", 3), 3: ("P", 1), 4: ("LA", 2), 6: ("RGBA", 4)}  # colour type: mode


def thumbnail(data: bytes, side: int, *, budget: PixelBudget = DECODED_PIXELS) -> Image.Image:
    """``data`` as an RGB image that fits in ``side`` x ``side``, keeping its aspect ratio."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "PNG" and image.size[0] * image.size[1] > WHOLE_PNG_PIXELS:
            layout = _PngLayout.read(data)
            if layout is not None:
                return _png_thumbnail(data, layout, side, budget)
        if image.format == "JPEG":
            width, height = image.size
            # A progressive JPEG keeps every coefficient of the whole image while it decodes (2 bytes a
            # sample), whatever the scale it is drawn at.
            held = width * height * 2 if image.info.get("progressive") else 0
            image.draft("RGB", (side, side))
            held += image.size[0] * image.size[1]
        else:
            held = image.size[0] * image.size[1] * (1 if image.mode in ("RGB", "L") else 2)
        with budget.hold(held):
            image.load()
            small = image if image.mode in ("RGB", "L", "RGBA", "LA") else image.convert("RGB")
            small.thumbnail((side, side))
            return small.convert("RGB")


@dataclass(frozen=True)
class _PngLayout:
    width: int
    height: int
    colour_type: int
    palette: bytes | None
    data_chunks: tuple[tuple[int, int], ...]  # (start, end) of each IDAT chunk's data in the file

    @classmethod
    def read(cls, data: bytes) -> _PngLayout | None:
        """The layout of a PNG that can be decoded in bands, or None for one that cannot (interlaced,
        a bit depth other than 8, or chunks that do not parse)."""
        if not data.startswith(PNG_SIGNATURE):
            return None
        header: tuple[int, ...] | None = None
        palette: bytes | None = None
        chunks: list[tuple[int, int]] = []
        kind = b""
        for kind, start, end in png_chunks(data):
            if kind == b"IHDR" and end - start == 13:
                header = struct.unpack_from(">IIBBBBB", data, start)
            elif kind == b"PLTE":
                palette = data[start:end]
            elif kind == b"IDAT":
                chunks.append((start, end))
        if kind != b"IEND":
            return None  # cut short: Pillow decodes what is there
        if header is None or not chunks:
            return None
        width, height, depth, colour_type, compression, filtering, interlace = header
        if depth != 8 or colour_type not in _PNG_MODES or (compression, filtering, interlace) != (0, 0, 0):
            return None
        if colour_type == 3 and palette is None:
            return None
        return cls(width, height, colour_type, palette, tuple(chunks))

    @property
    def mode(self) -> str:
        return _PNG_MODES[self.colour_type][0]

    @property
    def row_bytes(self) -> int:
        return self.width * _PNG_MODES[self.colour_type][1]

    def band(self, previous: bytes | None, rows: bytearray, count: int) -> Image.Image:
        """The ``count`` filtered ``rows`` (each with its filter byte) unfiltered by Pillow's PNG decoder.
        Rows filtered against the row above need it: ``previous``, the row above the band (unfiltered),
        is then the band's first row."""
        packer = zlib.compressobj(0)  # stored: the decoder wants a zlib stream, not a small one
        stream = []
        if previous is not None:
            stream.append(packer.compress(b"\x00" + previous))
            count += 1
        stream += [packer.compress(rows), packer.flush()]
        band = Image.new(self.mode, (self.width, count), None)  # not filled: the decoder fills it
        band.frombytes(b"".join(stream), "zip", self.mode)
        if self.palette is not None:
            band.putpalette(self.palette)
        return band


def _png_thumbnail(data: bytes, layout: _PngLayout, side: int, budget: PixelBudget) -> Image.Image:
    width, height = layout.width, layout.height
    factor = max(1, max(width, height) // (2 * side))  # the canvas keeps twice the thumbnail's detail
    band_rows = max(1, BAND_PIXELS // width // factor) * factor
    canvas_size = (math.ceil(width / factor), math.ceil(height / factor))
    # The band's filtered bytes, their zlib stream, its decoded pixels and their RGB copy, and the canvas.
    held = 4 * min(band_rows, height) * width + canvas_size[0] * canvas_size[1]
    with budget.hold(held):
        canvas = Image.new("RGB", canvas_size)
        previous: bytes | None = None
        top = 0
        for rows, count in _filtered_rows(data, layout, band_rows):
            band = layout.band(previous, rows, count)
            skip = 0 if previous is None else 1
            previous = band.crop((0, band.height - 1, width, band.height)).tobytes()
            pixels = band if band.mode in ("RGB", "L") else band.convert("RGB")
            canvas.paste(pixels.reduce(factor, box=(0, skip, width, band.height)), (0, top // factor))
            top += count
        canvas.thumbnail((side, side))
        return canvas


def _filtered_rows(data: bytes, layout: _PngLayout, band_rows: int) -> Iterator[tuple[bytearray, int]]:
    """The image's filtered rows (each with its filter byte), ``band_rows`` at a time, inflated from the
    IDAT chunks as they are needed; raises ``OSError`` if the stream ends early, as Pillow does."""
    row = layout.row_bytes + 1
    inflater = zlib.decompressobj()
    chunks = (memoryview(data)[start:end] for start, end in layout.data_chunks)
    pending: bytes | memoryview = b""  # compressed bytes not yet inflated
    left = layout.height
    while left:
        count = min(band_rows, left)
        wanted = count * row
        out = bytearray()
        while len(out) < wanted:
            if not pending:
                pending = next(chunks, b"") if not inflater.eof else b""
                if not pending:
                    done = layout.height - left + len(out) // row
                    raise OSError(f"the PNG's pixel data ends after {done} of its {layout.height} rows")
            out += inflater.decompress(pending, wanted - len(out))
            pending = inflater.unconsumed_tail
        yield out, count
        left -= count
