"""``/v1/files`` and ``/v1/batches``: paths that OpenAI's Files and Batch APIs and Google's (whose default
API version is ``v1``) share. As with ``/v1/models``, a Gemini client gives itself away by its key header
or ``x-goog-api-client`` and is answered by ``gemini_batches``; everyone else by ``openai_batches``.
Paths only one of them has (uploads, ``:cancel``, ``/content``) are served by that module alone.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pixelgate.api import gemini_batches, openai_batches
from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import BatchesDep, FilesDep, LinksDep
from pixelgate.api.errors import dialect_by_client, is_gemini

router = APIRouter(dependencies=[Depends(dialect_by_client), Depends(authenticate)])


@router.get("/v1/files")
async def list_files(request: Request, files: FilesDep, links: LinksDep, caller: CallerDep) -> Response:
    params = request.query_params
    if is_gemini(request):
        return await gemini_batches.list_files(
            request, files, links, caller, params.get("pageSize"), params.get("pageToken")
        )
    return await openai_batches.list_files(
        files, caller, params.get("purpose"), params.get("after"), params.get("limit")
    )


@router.get("/v1/files/{name}")
async def get_file(
    name: str, request: Request, files: FilesDep, links: LinksDep, caller: CallerDep
) -> Response:
    if is_gemini(request):
        return await gemini_batches.get_file(name, request, files, links, caller)
    return await openai_batches.get_file(name, files, caller)


@router.delete("/v1/files/{name}")
async def delete_file(name: str, request: Request, files: FilesDep, caller: CallerDep) -> Response:
    if is_gemini(request):
        return await gemini_batches.delete_file(name, files, caller)
    return await openai_batches.delete_file(name, files, caller)


@router.get("/v1/batches")
async def list_batches(request: Request, batches: BatchesDep, links: LinksDep, caller: CallerDep) -> Response:
    params = request.query_params
    if is_gemini(request):
        return await gemini_batches.list_batches(
            batches, links, caller, params.get("pageSize"), params.get("pageToken")
        )
    return await openai_batches.list_batches(batches, caller, params.get("after"), params.get("limit"))


@router.get("/v1/batches/{name}")
async def get_batch(
    name: str, request: Request, batches: BatchesDep, links: LinksDep, caller: CallerDep
) -> Response:
    if is_gemini(request):
        return await gemini_batches.get_batch(name, batches, links, caller)
    return await openai_batches.get_batch(name, batches, caller)
