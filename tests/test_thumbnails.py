"""Reference thumbnails (``core/thumbnails.py``) and the process's budget of decoded pixels
(``core/pixel_budget.py``): a thumbnail is the one a whole decode would give, a large reference is never
held decoded whole to draw one, and decodes in many threads hold no more than the budget at once.

Memory is measured in a child process (its peak resident memory, ``ru_maxrss``, before and after): exact,
and untouched by what other tests did in this one or by the machine's load."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest
from PIL import Image, ImageChops

from pixelgate.config import Settings
from pixelgate.core import thumbnails
from pixelgate.core.pixel_budget import PixelBudget
from pixelgate.core.thumbnails import thumbnail

MIB = 1024 * 1024
# Pillow keeps an RGB pixel in 4 bytes: 8000 x 8000 decoded is 244 MiB, and converting it made a copy.
WHOLE_8000 = 8000 * 8000 * 4 // MIB


def picture(size: tuple[int, int] = (600, 400)) -> Image.Image:
    """Detail in every row (a fractal and noise), so that PNG's filters differ from row to row."""
    fractal = Image.effect_mandelbrot(size, (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")
    return Image.blend(fractal, Image.effect_noise(size, 50).convert("RGB"), 0.3)


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def whole(data: bytes, side: int) -> Image.Image:
    """The thumbnail as it was made before: the image decoded whole, then made small."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (side, side))
        small = image.convert("RGB")
    small.thumbnail((side, side))
    return small


def assert_same(made: Image.Image, expected: Image.Image, tolerance: int = 0) -> None:
    assert made.mode == "RGB" and made.size == expected.size, (made.mode, made.size, expected.size)
    extrema = ImageChops.difference(made, expected).getextrema()
    assert max(high for _, high in extrema) <= tolerance, extrema  # type: ignore[union-attr]


MODES = ["RGB", "RGBA", "L", "LA", "P"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("band_pixels", [512 * 1024, 1000], ids=["one-band", "many-bands"])
def test_a_png_thumbnail_is_the_one_a_whole_decode_gives(
    mode: str, band_pixels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thumbnails, "BAND_PIXELS", band_pixels)
    monkeypatch.setattr(thumbnails, "WHOLE_PNG_PIXELS", 0)  # in bands, however small
    image = picture()
    data = encoded(image.convert(mode) if mode != "P" else image.quantize(200), "PNG")
    for side in (37, 150, 600):
        assert_same(thumbnail(data, side), whole(data, side))


@pytest.mark.parametrize("size", [(2500, 40), (40, 2500), (3, 2)], ids=["wide", "tall", "tiny"])
def test_a_png_of_any_shape_keeps_its_aspect_ratio(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thumbnails, "WHOLE_PNG_PIXELS", 0)
    data = encoded(picture(size), "PNG")
    # Reduced in bands first, then resized: within a few levels of the whole decode's resize.
    assert_same(thumbnail(data, 100), whole(data, 100), tolerance=48)


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "WEBP"])
def test_other_formats_are_decoded_as_before(fmt: str) -> None:
    data = encoded(picture(), fmt)
    assert_same(thumbnail(data, 120), whole(data, 120))


def test_png_pixel_data_that_ends_early_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks that parse (lengths and CRCs right) around a zlib stream that holds half the rows."""
    rows = (b"\x00" + b"\x01\x02\x03" * 300) * 150
    ihdr = struct.pack(">IIBBBBB", 300, 300, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    monkeypatch.setattr(thumbnails, "WHOLE_PNG_PIXELS", 0)
    with pytest.raises(OSError, match="ends after 150 of its 300 rows"):
        thumbnail(data, 50)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# -- memory, in a child process --------------------------------------------------------------------------

CHILD = r"""
import io, resource, struct, sys, zlib
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from pixelgate.catalog import default_catalog
from pixelgate.catalog.validation import validate
from pixelgate.core.pixel_budget import DECODED_PIXELS, return_large_blocks
from pixelgate.core.request import ImageRequest, Limits, ReferenceImage
from pixelgate.core.thumbnails import thumbnail
from pixelgate.providers.base import Generation
from pixelgate.providers.emulator import render


def solid_png(side, color):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row, packer = b"\x00" + bytes(color) * side, zlib.compressobj(1)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def generation(references, side):
    described = [
        ReferenceImage(blob_key=f"t/ref-{i}", mime_type="image/png", width=side, height=side)
        for i in range(len(references))
    ]
    fields = {"model": "gemini-3.1-flash-image", "prompt": "x", "image_size": "512", "aspect_ratio": "1:1"}
    request, spec = validate(ImageRequest(references=described, **fields), default_catalog(), Limits())
    return Generation(request=request, spec=spec, references=tuple(references))


def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


case, threads = sys.argv[1], int(sys.argv[2])
assert return_large_blocks()  # as the server does at start
render(generation([solid_png(64, (0, 0, 0))], 64))  # imports, fonts
if case == "renders":  # the emulator's renders, an 8000 x 8000 reference each
    references = [solid_png(8000, (200, 30, 30))]
    work = [lambda: render(generation(references, 8000))] * threads
else:  # whole decodes (a GIF has no smaller way), within a budget of one of them
    buffer = io.BytesIO()
    Image.new("P", (4000, 4000), 7).save(buffer, "GIF")
    gif = buffer.getvalue()
    DECODED_PIXELS.resize(int(sys.argv[3]))
    work = [lambda: thumbnail(gif, 170)] * threads
start = peak()
with ThreadPoolExecutor(threads) as pool:
    for done in [pool.submit(job) for job in work]:
        done.result()
print(peak() - start, DECODED_PIXELS.peak, DECODED_PIXELS.capacity)
"""


def child(*args: str) -> tuple[int, int, int]:
    run = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    growth, peak, capacity = map(int, run.stdout.split())
    return growth, peak, capacity


def test_six_renders_with_8000x8000_references_hold_less_than_one_decoded_whole() -> None:
    """Before: each render decoded its reference whole and copied it converting (488 MiB); six at once
    took 2.6 GB. Now a reference is decoded a band of rows at a time: six at once hold less than half of
    what one reference decoded whole would."""
    growth, _, _ = child("renders", "6")
    assert growth < WHOLE_8000 * MIB // 2, (
        f"grew {growth // MIB} MiB (one reference decoded whole: {WHOLE_8000})"
    )


def test_whole_decodes_in_many_threads_hold_no_more_than_the_budget() -> None:
    one = (
        4000 * 4000 * 2
    )  # what a 4000 x 4000 GIF's decode takes from the budget (its pixels, their RGB copy)
    growth, peak, capacity = child("gifs", "6", str(one))
    assert peak == capacity == one  # one at a time
    # A decode holds 16 MB of palette indexes and 64 MB of RGB: six at once would be 480 MB.
    assert growth < 200 * MIB, f"grew {growth // MIB} MiB"


# -- the budget itself -----------------------------------------------------------------------------------


def test_a_budget_lets_in_what_fits_and_makes_the_rest_wait_in_turn() -> None:
    budget = PixelBudget(100)
    order: list[str] = []
    with budget.hold(60):
        waiting = [
            threading.Thread(target=take, args=(budget, name, pixels, order))
            for name, pixels in (("big", 90), ("small", 10))
        ]
        waiting[0].start()
        until(lambda: len(budget._turns) == 1)
        waiting[1].start()
        until(lambda: len(budget._turns) == 2)
        # "small" would fit beside what is held, but "big" came first: first come, first served.
        assert order == [] and budget.held == 60
    for thread in waiting:
        thread.join(10)
    assert sorted(order) == ["big", "small"] and budget.held == 0


def test_an_image_larger_than_the_budget_takes_all_of_it_alone() -> None:
    budget = PixelBudget(100)
    with budget.hold(1_000):
        assert budget.held == 100
    assert budget.held == 0


def test_the_setting_refuses_a_budget_too_small_for_any_image() -> None:
    with pytest.raises(ValueError, match="max_decoded_pixels"):
        Settings(max_decoded_pixels=1000)


def take(budget: PixelBudget, name: str, pixels: int, order: list[str]) -> None:
    with budget.hold(pixels):
        order.append(name)


def until(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the condition did not come about"
        time.sleep(0.01)
