"""Serving stored images at signed, expiring URLs."""

from __future__ import annotations

from pathlib import PurePath

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from pixelgate.api.deps import LinksDep
from pixelgate.api.errors import set_dialect
from pixelgate.core.errors import Forbidden, NotFound
from pixelgate.store.blobs import CONTENT_TYPES

router = APIRouter()


@router.get("/blobs/{task_id}/{name}")
async def get_blob(
    task_id: str, name: str, request: Request, links: LinksDep, expires: str = "", signature: str = ""
) -> FileResponse:
    set_dialect(request, "openai")
    key = f"{task_id}/{name}"
    if not signature or not links.signer.verify(key, expires, signature):
        raise Forbidden(
            "this image URL is not valid: its signature does not match, or it expired with its task's "
            f"result (results are kept for {links.result_ttl_seconds / 3600:g} h)",
            code="invalid_signature",
        )
    path = links.blobs.path(key)
    if not path.is_file():
        raise NotFound(f"the stored image {key!r} no longer exists", code="image_not_found")
    return FileResponse(
        path,
        media_type=CONTENT_TYPES.get(PurePath(name).suffix, "application/octet-stream"),
        headers={"Cache-Control": "private, max-age=3600"},
    )
