"""What a simulator saw: each request, parsed just enough for a test to assert on it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

#: Multipart file parts: field name -> [(filename, content type, bytes)].
Files = dict[str, list[tuple[str | None, str | None, bytes]]]


@dataclass
class Recorded:
    """One request as received, in the order received."""

    method: str
    path: str
    query: dict[str, str]
    #: Lower-case names; a repeated header is joined with ", " as HTTP allows.
    headers: dict[str, str]
    body: bytes
    #: The parsed body when the content type is JSON (None when it is not, or does not parse).
    json: Any | None
    #: Text fields of a multipart/form-data (or urlencoded) body: name -> values.
    form: dict[str, list[str]] | None
    files: Files | None


async def record(request: Request) -> Recorded:
    # Reading the body here caches it on the request, so handlers can still call request.json()/form().
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    form, files = await _read_form(request, content_type)
    return Recorded(
        method=request.method,
        path=request.url.path,
        query=dict(request.query_params),
        headers=headers,
        body=body,
        json=_parse_json(body) if content_type.endswith("json") else None,
        form=form,
        files=files,
    )


def _parse_json(body: bytes) -> Any | None:
    try:
        return json.loads(body)
    except ValueError:
        # A broken body is for the vendor handler to reject in the vendor's words; the record says None.
        return None


async def _read_form(request: Request, content_type: str) -> tuple[dict[str, list[str]] | None, Files | None]:
    if content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return None, None
    try:
        parsed = await request.form()
    except HTTPException:  # Starlette's answer to a malformed multipart body
        return None, None
    form: dict[str, list[str]] = {}
    files: Files = {}
    for name, value in parsed.multi_items():
        if isinstance(value, UploadFile):
            files.setdefault(name, []).append((value.filename, value.content_type, await value.read()))
        else:
            form.setdefault(name, []).append(value)
    return form, files
