"""Looking at input images without trusting them: format, pixel count and integrity, decoded at most once.

Pillow parses only the header on ``Image.open``; the pixel count is checked before any decoding, so a
50,000 x 50,000 "decompression bomb" is refused after reading a few bytes.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from pixelgate.core.errors import InvalidRequest, PayloadTooLarge
from pixelgate.core.pixel_budget import DECODED_PIXELS
from pixelgate.core.png import missing_pixel_bytes, png_chunks

# Every untrusted image enters through inspect_image, which checks width x height against pixelgate's own
# (configurable) limit before anything is decoded; Pillow's global guard would only refuse earlier with a
# message that cannot name the size received.
Image.MAX_IMAGE_PIXELS = None

ACCEPTED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}

_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I
)


@dataclass(frozen=True)
class ImageInfo:
    mime_type: str
    width: int
    height: int


def inspect_image(data: bytes, *, field: str, max_pixels: int, structure_only: bool = False) -> ImageInfo:
    """Check that ``data`` is a whole image of an accepted format and of at most ``max_pixels``.

    ``structure_only`` checks a PNG by its structure alone (every chunk whole, IEND last), without its
    CRCs or inflating its pixels, which cost more than the rest of the check together (the CRCs 0.5 ms
    and the inflation 6 ms of a 1K image). That is enough for what an upstream made: it came through TCP's
    checksums (and TLS's), base64 that decoded and HTTP's framing, so what a transfer can do to it is cut
    it short, which loses the IEND. A caller's upload may be crafted instead, and is checked whole."""
    if not data:
        raise InvalidRequest(
            f"{field} is empty: send a PNG, JPEG, WebP or GIF image", param=field, code="invalid_image"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                width, height = image.size
                if fmt not in ACCEPTED_FORMATS:
                    raise InvalidRequest(
                        f"{field} is a {fmt or 'unknown'} image: send PNG, JPEG, WebP or GIF",
                        param=field,
                        code="unsupported_image_format",
                    )
                if width * height > max_pixels:
                    raise _too_many_pixels(field, width, height, max_pixels)
                if fmt == "PNG" and structure_only:
                    _check_png_chunks(data, field)
                else:
                    image.verify()
            if fmt == "PNG" and not structure_only:
                _check_png_pixels(data, field)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidRequest(
            f"{field} declares more pixels than the limit of {max_pixels:,}: send a smaller image",
            param=field,
            code="image_too_large",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InvalidRequest(
            f"{field} is not a readable image ({len(data):,} bytes that Pillow cannot decode): "
            "send a PNG, JPEG, WebP or GIF image",
            param=field,
            code="invalid_image",
        ) from None
    return ImageInfo(ACCEPTED_FORMATS[fmt], width, height)


def _check_png_chunks(data: bytes, field: str) -> None:
    """Every chunk of a PNG there in full, up to its IEND (the CRCs are not computed)."""
    if not any(kind == b"IEND" for kind, _, _ in png_chunks(data)):
        raise InvalidRequest(
            f"{field} is a PNG cut short: its {len(data):,} bytes end before its IEND chunk: send the whole "
            "image",
            param=field,
            code="invalid_image",
        )


def _check_png_pixels(data: bytes, field: str) -> None:
    """A PNG's compressed pixel data must inflate to every row (``verify()`` checks only its chunks)."""
    missing, expected = missing_pixel_bytes(data)  # ValueError: it does not inflate at all
    if missing:
        raise InvalidRequest(
            f"{field} is a PNG whose pixel data stops short ({expected - missing:,} of its {expected:,} bytes "
            "are there): send the whole image",
            param=field,
            code="invalid_image",
        )


def _too_many_pixels(field: str, width: int, height: int, max_pixels: int) -> InvalidRequest:
    return InvalidRequest(
        f"{field} is {width}x{height} = {width * height:,} pixels: at most {max_pixels:,} are allowed",
        param=field,
        code="image_too_large",
    )


_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def decode_inline_image(value: str, *, field: str, max_bytes: int) -> bytes:
    """Bytes of an image given inline, as a ``data:`` URI or as bare base64."""
    payload = value
    match = _DATA_URI.match(value)
    if match:
        if not match.group("b64"):
            raise InvalidRequest(
                f"{field} is a data URI without ;base64: encode the image as base64",
                param=field,
                code="invalid_image",
            )
        payload = value[match.end() :]
    # Base64 grows by 4/3; refuse before decoding what would exceed the limit anyway.
    decoded_size = len(payload.rstrip("= \r\n")) * 3 // 4
    if decoded_size > max_bytes:
        raise PayloadTooLarge(
            f"{field} is about {decoded_size:,} bytes: at most {max_bytes:,} bytes per image",
            param=field,
        )
    try:
        # Either alphabet: pydantic (and so Google's SDK) writes bytes in the URL-safe one.
        payload = payload.strip().translate(_URLSAFE_TO_STANDARD)
        return base64.b64decode(payload + "=" * (-len(payload.rstrip("=")) % 4), validate=False)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            f"{field} is neither an http(s) URL nor valid base64 (starts with {value[:24]!r})",
            param=field,
            code="invalid_image",
        ) from None


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def encode_image(image: Image.Image, output_format: str, compression: int | None = None) -> bytes:
    """``image`` as PNG, JPEG or WebP bytes (``compression``: the JPEG/WebP quality, 90 by default)."""
    buffer = io.BytesIO()
    if output_format == "png":
        # Level 1: a 4K image encodes several times faster, and generated pictures compress well anyway.
        image.save(buffer, "PNG", compress_level=1)
    else:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(buffer, output_format.upper(), quality=compression if compression is not None else 90)
    return buffer.getvalue()


def convert_image(data: bytes, output_format: str, compression: int | None = None) -> bytes:
    """Re-encode an upstream's image in the format the caller asked for (Gemini answers PNG whatever
    was asked; an OpenAI-style upstream may ignore output_format)."""
    with Image.open(io.BytesIO(data)) as image, DECODED_PIXELS.hold(image.size[0] * image.size[1]):
        image.load()
        return encode_image(image, output_format, compression)
