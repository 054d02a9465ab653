"""Cheap but real images, and the size arithmetic the vendors' parameters imply.

The simulators answer with solid-colour pictures: Pillow encodes one in about a millisecond, a client can
decode it, and no test ever looks at the pixels. What matters is that the *dimensions* follow the request.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image

#: Nothing bigger is ever drawn: a 4K request would cost time and memory for no test value, so the
#: simulators scale such requests down, keeping the aspect ratio.
MAX_SIDE = 1536
#: The size used when a request names none.
DEFAULT_SIZE = (64, 64)
DEFAULT_COLOR = (30, 120, 200)

#: Output format name -> (Pillow format, MIME type).
FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}
MIME_TO_FORMAT = {mime: name for name, (_, mime) in FORMATS.items()}

#: Gemini's imageSize (and the task gateway's resolution) -> pixels on the long side.
LONG_SIDE = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}


def fit(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``width`` x ``height`` scaled down, aspect ratio kept, so that neither side exceeds ``max_side``."""
    if width < 1 or height < 1:
        raise ValueError(f"not a picture size: {width}x{height}")
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@lru_cache(maxsize=128)
def encode_image(
    width: int, height: int, fmt: str = "png", color: tuple[int, int, int] = DEFAULT_COLOR
) -> bytes:
    """A solid-colour image in ``fmt`` ("png", "jpeg" or "webp"), capped at :data:`MAX_SIDE`.

    Cached: the same few sizes come up again and again, and the bytes are immutable.
    """
    width, height = fit(width, height)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, FORMATS[fmt][0])
    return buffer.getvalue()


def png(width: int, height: int, color: tuple[int, int, int] = DEFAULT_COLOR) -> bytes:
    """A solid-colour PNG of ``width`` x ``height`` (capped at :data:`MAX_SIDE`)."""
    return encode_image(width, height, "png", color)


def parse_ratio(text: str) -> tuple[int, int]:
    """``"16:9"`` -> ``(16, 9)``; ValueError for anything else."""
    left, sep, right = text.partition(":")
    if not sep or not left.isdigit() or not right.isdigit() or int(left) == 0 or int(right) == 0:
        raise ValueError(f"not an aspect ratio: {text!r}")
    return int(left), int(right)


def parse_wxh(text: str) -> tuple[int, int]:
    """``"1024x1536"`` -> ``(1024, 1536)``; ValueError for anything else."""
    left, sep, right = text.partition("x")
    if not sep or not left.isdigit() or not right.isdigit() or int(left) == 0 or int(right) == 0:
        raise ValueError(f"not a WxH size: {text!r}")
    return int(left), int(right)


def size_for(aspect_ratio: str | None, image_size: str | None) -> tuple[int, int]:
    """Pixel size for an aspect ratio ("W:H", default "1:1") and an image size ("512"/"1K"/"2K"/"4K", default
    "1K" = 1024 on the long side), capped at :data:`MAX_SIDE`. ValueError for values the vendors reject."""
    ratio_w, ratio_h = parse_ratio(aspect_ratio or "1:1")
    long_side = LONG_SIDE.get(image_size or "1K")
    if long_side is None:
        raise ValueError(f"unsupported image size: {image_size!r}")
    if ratio_w >= ratio_h:
        width, height = long_side, max(1, round(long_side * ratio_h / ratio_w))
    else:
        width, height = max(1, round(long_side * ratio_w / ratio_h)), long_side
    return fit(width, height)
