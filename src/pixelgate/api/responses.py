"""JSON answers, rendered by orjson, with images sent as base64 straight from the blob store.

An answer carrying a 4K image as base64 is tens of megabytes of one string: the standard library's encoder
scans it character by character (about 40x slower than orjson), and even orjson needs the image, its base64
text and the rendered answer in memory at once. So an answer's images are ``Base64File`` values: the rest
of the answer is rendered around them, and each is read and encoded piece by piece while the answer is
sent, with the length known in advance (a client sees an ordinary ``Content-Length`` answer). A piece is
what the process holds of an image at a time, from a file or from a bucket alike.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
import pybase64
from fastapi.responses import JSONResponse
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from pixelgate.store.blobs import BlobReader

log = logging.getLogger("pixelgate")

# Read this much of a blob at a time: a multiple of 3, so that each piece encodes to base64 on its own.
PIECE_BYTES = 3 * 256 * 1024


class Base64File:
    """A JSON string value that is the base64 of a blob, opened beforehand: its size is known, and a task
    deleted meanwhile still has its images sent whole. (Not a dataclass: orjson would render those.)"""

    __slots__ = ("blob", "prefix")

    def __init__(self, blob: BlobReader, prefix: str = "") -> None:
        self.blob = blob
        self.prefix = prefix  # text before the base64, such as a data URI's "data:image/png;base64,"

    @property
    def encoded_size(self) -> int:
        return len(self.prefix) + (self.blob.size + 2) // 3 * 4

    async def encode(self) -> str:
        """The whole base64 text at once, for an answer that cannot be streamed (a server-sent event)."""
        data = await self.blob.read_all()
        return self.prefix + await asyncio.to_thread(pybase64.b64encode_as_string, data)

    async def pieces(self) -> AsyncIterator[bytes]:
        if self.prefix:
            yield self.prefix.encode()
        async for piece in self.blob.chunks(PIECE_BYTES):
            yield pybase64.b64encode(piece)


class FastJSONResponse(JSONResponse):
    """An answer without images (``Base64File`` values are refused): rendered at once."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ImageJSONResponse(StreamingResponse):
    """An answer that may carry images as ``Base64File`` values, sent as their files are read."""

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``then``: run once the answer is sent, or its client is gone (``store: false`` deletes the
        task's images so: a bucket's objects are read only as the answer is sent)."""
        pieces = _render_around_files(content)
        length = sum(len(p) if isinstance(p, bytes) else p.encoded_size for p in pieces)
        super().__init__(_send(pieces), status_code, headers, media_type="application/json")
        self.headers["content-length"] = str(length)
        self._then = then
        # An answer without images (a task still running, a URL answer) is sent in one message, without
        # the streaming machinery (a task group watching for the client to leave).
        self._whole = pieces[0] if len(pieces) == 1 and isinstance(pieces[0], bytes) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self._whole is None:
                await super().__call__(scope, receive, send)
            else:
                await send(
                    {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
                )
                await send({"type": "http.response.body", "body": self._whole})
        finally:
            if self._then is not None:
                try:
                    await asyncio.shield(self._then())
                except Exception:  # the answer is out: what is left to undo is logged, not raised
                    log.exception("cleaning up after an answer failed")


def _render_around_files(content: Any) -> list[bytes | Base64File]:
    """``content`` as JSON text, split around each ``Base64File`` (which stands where its quoted base64
    goes: the quotes are in the text)."""
    files: list[Base64File] = []
    marker = secrets.token_hex(16)

    def default(value: Any) -> str:
        if isinstance(value, Base64File):
            files.append(value)
            return f"{marker}{len(files) - 1}{marker}"
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    rendered = orjson.dumps(content, default=default)
    if not files:
        return [rendered]
    pieces: list[bytes | Base64File] = []
    for number, part in enumerate(rendered.split(marker.encode())):
        # The parts alternate: text, a file's number, text, …
        pieces.append(files[int(part)] if number % 2 else part)
    return pieces


async def _send(pieces: list[bytes | Base64File]) -> AsyncIterator[bytes]:
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
        else:
            async for encoded in piece.pieces():
                yield encoded


async def inline_files(content: Any) -> Any:
    """``content`` with each ``Base64File`` replaced by its base64 text (for server-sent events)."""
    if isinstance(content, dict):
        return {key: await inline_files(value) for key, value in content.items()}
    if isinstance(content, list):
        return [await inline_files(value) for value in content]
    if isinstance(content, Base64File):
        return await content.encode()
    return content


def list_page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's shape of a page of a list (``after`` the previous page's ``last_id`` gives the next)."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
