"""What the two Gemini surfaces (``generateContent`` and Interactions) share: the proto-JSON key
convention, media blocks, usage by modality and the rule that tells a Gemini caller from an OpenAI one.

The proto JSON convention lets a field be spelled ``inlineData`` or ``inline_data``, and Google's own SDK
mixes the two in one body (``{"inlineData": {"mime_type": ...}}``). Bodies are read with every key turned
to snake_case first, so each model below has one spelling.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from pixelgate.api.parsing import parse_model
from pixelgate.core.errors import InvalidRequest, one_of
from pixelgate.core.references import ReferenceInput, VideoSource
from pixelgate.core.request import OUTPUT_FORMATS, SKIP_THOUGHT_SIGNATURE
from pixelgate.core.task import Usage

API_VERSIONS = ("v1beta", "v1")  # Google's SDKs default to v1 now; the guides still say v1beta

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
# Free-form objects whose keys are the caller's own (not field names): left as sent.
_FREE_FORM = frozenset({"labels", "metadata", "user_metadata", "response_schema", "schema", "parameters"})

IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif", "image/gif")
VIDEO_MIME_TYPES = (
    "video/mp4",
    "video/mpeg",
    "video/mpg",
    "video/mov",
    "video/quicktime",
    "video/avi",
    "video/x-flv",
    "video/webm",
    "video/wmv",
    "video/3gpp",
)


class WireBody(BaseModel):
    """A part of a Gemini request body: fields pixelgate has no use for are ignored, as Google's are."""

    model_config = ConfigDict(extra="ignore")


class ImageConfig(WireBody):
    aspect_ratio: str | None = None
    image_size: str | None = None
    output_mime_type: str | None = None
    output_compression_quality: int | None = None


_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _snake(name: str) -> str:
    return _CAMEL.sub(r"_\1", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


class Spelling:
    """Names a field the way the caller spelled it. Inside pixelgate a path is snake_case
    (``contents[0].parts[1].inline_data``); a key the caller sent comes back as sent (``inlineData``), one
    they did not send in the API's own spelling (camelCase for ``generateContent``, snake_case for
    Interactions)."""

    def __init__(self, body: Any, *, camel: bool) -> None:
        self.body = body
        self.camel = camel

    def __call__(self, path: str) -> str:
        node, spelled = self.body, ""
        for match in _SEGMENT.finditer(path):
            name, index = match.groups()
            if index is not None:
                spelled += f"[{index}]"
                position = int(index)
                node = node[position] if isinstance(node, list) and position < len(node) else None
                continue
            sent = None
            if isinstance(node, dict):
                sent = next((key for key in node if isinstance(key, str) and _snake(key) == name), None)
            part = sent if sent is not None else (_camel(name) if self.camel else name)
            spelled = f"{spelled}.{part}" if spelled else part
            node = node.get(sent) if isinstance(node, dict) and sent is not None else None
        return spelled

    def error(self, exc: InvalidRequest) -> InvalidRequest:
        """``exc`` (raised while reading the snake_case copy) with the field in the caller's spelling."""
        if exc.param is None:
            return exc
        spelled = self(exc.param)
        if spelled == exc.param:
            return exc
        return type(exc)(exc.message.replace(exc.param, spelled, 1), param=spelled, code=exc.code)


W = TypeVar("W", bound=BaseModel)


def parse_wire(model: type[W], data: dict[str, Any], *, camel: bool) -> tuple[W, Spelling]:
    """``data`` read into ``model`` from its snake_case copy; errors name fields as the caller wrote them."""
    spell = Spelling(data, camel=camel)
    try:
        return parse_model(model, snake_keys(data)), spell
    except InvalidRequest as exc:
        raise spell.error(exc) from None


def snake_keys(value: Any, *, parent: str = "") -> Any:
    """``{"inlineData": {"mimeType": ..}}`` -> ``{"inline_data": {"mime_type": ..}}``, recursively."""
    if isinstance(value, dict):
        if parent in _FREE_FORM:
            return value
        converted = {}
        for key, item in value.items():
            name = _snake(key) if isinstance(key, str) else key
            converted[name] = snake_keys(item, parent=name)
        return converted
    if isinstance(value, list):
        return [snake_keys(item, parent=parent) for item in value]
    return value


def media_input(
    *, data: str | None, uri: str | None, mime_type: str | None, field: str
) -> ReferenceInput | VideoSource:
    """An image or video given inline (base64) or by URI, checked for a MIME type we can take."""
    mime = (mime_type or "").lower().strip()
    if not data and not uri:
        raise InvalidRequest(
            f"{field} has neither data nor uri: give the base64 bytes in data, or a URI",
            param=field,
            code="invalid_media",
        )
    if data and data.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"{field} holds a URL in its inline data: give a URL as the uri, and base64 bytes as data",
            param=field,
            code="invalid_media",
        )
    if uri and not uri.startswith(("http://", "https://")):
        raise InvalidRequest(
            f"{field} {uri!r} is not an http(s) URI: give the media by an http(s) URL (a YouTube or Files "
            "API link for video), or inline as base64 data",
            param=field,
            code="invalid_uri",
        )
    if mime.startswith("video/"):
        if mime not in VIDEO_MIME_TYPES:
            raise InvalidRequest(
                f"{field} has mime_type {mime_type!r}: video must be {one_of(VIDEO_MIME_TYPES)}",
                param=field,
                code="invalid_mime_type",
            )
        if uri:
            return VideoSource(mime_type=mime, field=field, uri=uri)
        return VideoSource(mime_type=mime, field=field, data=decode_base64(data or "", field))
    if mime and not mime.startswith("image/"):
        raise InvalidRequest(
            f"{field} has mime_type {mime_type!r}: image models take images ({one_of(IMAGE_MIME_TYPES)}) "
            f"and, on some models, video ({one_of(VIDEO_MIME_TYPES)})",
            param=field,
            code="invalid_mime_type",
        )
    return ReferenceInput(source=data or uri or "", field=field)


def standard_base64(data: str) -> str:
    """Proto JSON writes bytes in either base64 alphabet, padded or not (Google's SDK re-encodes what it
    received in the URL-safe one): one canonical spelling, so an opaque signature compares equal."""
    data = data.strip().translate(_URLSAFE_TO_STANDARD).rstrip("=")
    return data + "=" * (-len(data) % 4)


_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def normalize_signature(signature: str) -> str:
    """A thought signature in one canonical spelling; Gemini's "skip the check" value is left as it is
    (it happens to be valid URL-safe base64, which would otherwise be rewritten)."""
    return signature if signature == SKIP_THOUGHT_SIGNATURE else standard_base64(signature)


def decode_base64(data: str, field: str) -> bytes:
    try:
        return base64.b64decode(standard_base64(data), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            f"{field} is not valid base64: send the bytes base64-encoded", param=field, code="invalid_base64"
        ) from None


def output_format_of(mime_type: str | None, field: str) -> str | None:
    """``image/jpeg`` -> ``jpeg``, for the output MIME type a caller asks for."""
    if mime_type is None:
        return None
    fmt = mime_type.lower().removeprefix("image/").replace("jpg", "jpeg")
    if fmt not in OUTPUT_FORMATS:
        allowed = [f"image/{f}" for f in OUTPUT_FORMATS]
        raise InvalidRequest(
            f"{field} {mime_type!r} is not an output format pixelgate makes: use {one_of(allowed)}",
            param=field,
            code="invalid_mime_type",
        )
    return fmt


def tokens_by_modality(text: int, image: int, *, upper: bool) -> list[tuple[str, int]]:
    """The non-zero token counts by modality (Gemini omits empty ones)."""
    names = ("TEXT", "IMAGE") if upper else ("text", "image")
    return [(name, count) for name, count in zip(names, (text, image), strict=True) if count]


def input_modalities(usage: Usage, *, upper: bool) -> list[tuple[str, int]]:
    return tokens_by_modality(usage.input_text_tokens, usage.input_image_tokens, upper=upper)


def output_modalities(usage: Usage, *, upper: bool) -> list[tuple[str, int]]:
    return tokens_by_modality(usage.output_text_tokens, usage.output_image_tokens, upper=upper)


def iso_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def keepalive_until_done(
    waiter: asyncio.Future[Any], interval: float, beat: bytes
) -> AsyncIterator[bytes]:
    """Yield ``beat`` every ``interval`` seconds until ``waiter`` is done: a stream that waits for a
    two-minute image must not look idle to the proxies between the caller and pixelgate."""
    while not waiter.done():
        done, _ = await asyncio.wait({waiter}, timeout=interval)
        if not done:
            yield beat
