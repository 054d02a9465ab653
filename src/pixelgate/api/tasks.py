"""The task APIs: reading and cancelling tasks, in the two shapes clients expect.

- ``GET /v1/images/generations/{task_id}``: the task-style gateway of seeds 000-002. Status is one of
  ``queued``, ``in_progress``, ``completed``, ``failed``, ``cancelled``; a completed task carries
  ``progress: 100``, ``completed_at``, ``expires_at``, ``result.data[].url`` and a top-level ``url``; a
  failed one ``error.code`` and ``error.message``.
- ``GET /v1/tasks/{task_id}``: seed 003's async mode. Status ``queued`` or ``processing`` while it runs;
  once done the body is the task plus exactly what the synchronous call would have returned
  (``created``, ``data``, ``usage``, ``size``).

Both read the same task; any task can be read at either address.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import LinksDep, ServiceDep
from pixelgate.api.errors import openai_dialect
from pixelgate.api.render import render_async_task, render_task_style
from pixelgate.api.responses import FastJSONResponse, ImageJSONResponse

router = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate)])


@router.get("/v1/images/generations/{task_id}")
async def get_task_style(
    task_id: str, request: Request, service: ServiceDep, links: LinksDep, caller: CallerDep
) -> Response:
    return FastJSONResponse(
        await render_task_style(request, links, await service.get(task_id, owner=caller.owner))
    )


@router.get("/v1/tasks/{task_id}")
async def get_async_task(
    task_id: str, request: Request, service: ServiceDep, links: LinksDep, caller: CallerDep
) -> Response:
    return ImageJSONResponse(
        await render_async_task(request, links, await service.get(task_id, owner=caller.owner))
    )


@router.post("/v1/tasks/{task_id}/cancel")
async def cancel_task(
    task_id: str, request: Request, service: ServiceDep, links: LinksDep, caller: CallerDep
) -> Response:
    return ImageJSONResponse(
        await render_async_task(request, links, await service.cancel(task_id, owner=caller.owner))
    )


@router.post("/v1/images/generations/{task_id}/cancel")
async def cancel_task_style(
    task_id: str, request: Request, service: ServiceDep, links: LinksDep, caller: CallerDep
) -> Response:
    return FastJSONResponse(
        await render_task_style(request, links, await service.cancel(task_id, owner=caller.owner))
    )
