"""Serving stored images at signed, expiring URLs, streamed from the blob store (a folder or a bucket) as
they are sent, with single byte ranges (``Range: bytes=0-1023``) for clients that resume or seek."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from pixelgate.api.deps import LinksDep
from pixelgate.api.errors import error_response, set_dialect
from pixelgate.api.responses import PIECE_BYTES
from pixelgate.core.errors import Forbidden, RangeNotSatisfiable
from pixelgate.store.blobs import content_type

router = APIRouter()

_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})", re.ASCII)


@router.get("/blobs/{task_id}/{name}")
async def get_blob(
    task_id: str, name: str, request: Request, links: LinksDep, expires: str = "", signature: str = ""
) -> Response:
    set_dialect(request, "openai")
    key = f"{task_id}/{name}"
    if not signature or not links.signer.verify(key, expires, signature):
        raise Forbidden(
            "this image URL is not valid: its signature does not match, or it expired with its task's "
            f"result (results are kept for {links.result_ttl_seconds / 3600:g} h)",
            code="invalid_signature",
        )
    blob = await links.blobs.open(key)
    headers = {"Cache-Control": "private, max-age=3600", "Accept-Ranges": "bytes"}
    # With If-Range the client wants the range only of the version it has; without validators to compare,
    # the whole image is the safe answer (RFC 9110 14.2).
    wanted = request.headers.get("range") if "if-range" not in request.headers else None
    span = _span(wanted, blob.size) if wanted else None
    if span is None:
        headers["Content-Length"] = str(blob.size)
        return StreamingResponse(blob.chunks(PIECE_BYTES), media_type=content_type(key), headers=headers)
    start, stop = span
    if start >= stop:
        await blob.aclose()
        return error_response(
            request,
            RangeNotSatisfiable(
                f"Range {wanted!r} lies outside the image {key}, which has {blob.size} bytes: ask for bytes "
                f"0 to {blob.size - 1}",
                param="Range",
            ),
            {"Content-Range": f"bytes */{blob.size}"},
        )
    headers["Content-Length"] = str(stop - start)
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{blob.size}"
    return StreamingResponse(
        blob.chunks(PIECE_BYTES, start, stop), status_code=206, media_type=content_type(key), headers=headers
    )


def _span(header: str, size: int) -> tuple[int, int] | None:
    """The bytes ``[start, stop)`` one range asks for (``start >= stop``: none of them exist); None for a
    header to ignore: malformed, or several ranges (answered whole, as RFC 9110 allows)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        length = int(last)
        return (max(0, size - length), size) if length else (size, size)
    if last != "" and int(last) < int(first):
        return None
    stop = size if last == "" else min(size, int(last) + 1)
    return int(first), stop
