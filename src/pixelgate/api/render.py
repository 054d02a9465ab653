"""Response bodies: the synchronous OpenAI Images answer and the two task shapes (see ``api/tasks.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from pixelgate.api.deps import ImageLinks
from pixelgate.core.task import Status, Task, Usage

TASK_STYLE_STATUS = {
    Status.QUEUED: "queued",
    Status.RUNNING: "in_progress",
    Status.SUCCEEDED: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
}
ASYNC_STATUS = {**TASK_STYLE_STATUS, Status.RUNNING: "processing"}
# An OpenAI Images request that names no response_format gets both: clients that read ``url`` (openai-python's
# default) and clients that read only ``b64_json`` (the AI SDK's edits, gpt-image-style code) each find theirs.
UNASKED_FORMAT = "url,b64_json"


def _task_head(task: Task, status: str) -> dict[str, Any]:
    return {
        "id": task.id,
        "object": "generation.task",
        "model": task.request.model,
        "status": status,
        "progress": task.progress,
        "created_at": int(task.created_at),
        "metadata": task.request.metadata,
    }


def _add_error(body: dict[str, Any], task: Task) -> None:
    """A failed task's error, or the note that a succeeded task's images are gone."""
    error = task.error
    if error is not None:
        body["error"] = {"code": error.code, "message": error.message, "type": error.kind}
    elif task.status is Status.SUCCEEDED and task.result_expired():
        body["expires_at"] = int(task.expires_at or 0)
        body["error"] = {
            "code": "result_expired",
            "type": "not_found_error",
            "message": f"the images of task {task.id} expired at {int(task.expires_at or 0)} and are no "
            "longer served: generate them again",
        }


def _has_live_result(task: Task) -> bool:
    return task.status is Status.SUCCEEDED and task.result is not None and not task.result_expired()


async def render_task_style(request: Request, links: ImageLinks, task: Task) -> dict[str, Any]:
    body = _task_head(task, TASK_STYLE_STATUS[task.status])
    if task.completed_at is not None:
        body["completed_at"] = int(task.completed_at)
    if _has_live_result(task):
        assert task.result is not None
        data = [
            {
                "url": await links.image_url(request, task, image),
                "width": image.width,
                "height": image.height,
                "mime_type": image.mime_type,
            }
            for image in task.result.images
        ]
        body["expires_at"] = int(task.expires_at) if task.expires_at else None
        body["url"] = data[0]["url"] if data else None
        body["result"] = {"data": data}
    _add_error(body, task)
    return body


async def render_async_task(request: Request, links: ImageLinks, task: Task) -> dict[str, Any]:
    body = _task_head(task, ASYNC_STATUS[task.status])
    if _has_live_result(task):
        body.update(await render_images_response(request, links, task))
        body["expires_at"] = int(task.expires_at) if task.expires_at else None
    if task.completed_at is not None:
        body["completed_at"] = int(task.completed_at)
    _add_error(body, task)
    return body


async def render_images_response(request: Request | str, links: ImageLinks, task: Task) -> dict[str, Any]:
    """The body of a synchronous OpenAI Images answer (also what ``GET /v1/tasks/{id}`` carries once done)."""
    assert task.result is not None
    data = []
    for image in task.result.images:
        entry: dict[str, Any] = {"revised_prompt": image.revised_prompt}
        # "b64_json" alone answers inline; UNASKED_FORMAT both; anything else (an Interactions task read
        # here, say) the URL.
        if task.response_format != "b64_json":
            entry["url"] = await links.image_url(request, task, image)
        if task.response_format in ("b64_json", UNASKED_FORMAT):
            entry["b64_json"] = await links.image_base64(image)
        data.append(entry)
    first = task.result.images[0] if task.result.images else None
    return {
        "created": int(task.completed_at or task.created_at),
        "data": data,
        "size": f"{first.width}x{first.height}" if first else None,
        "output_format": task.request.output_format,
        "usage": images_usage(task.result.usage),
    }


def images_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI Images' ``usage``: tokens in and out, each split into text and image tokens."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "text_tokens": usage.input_text_tokens,
            "image_tokens": usage.input_image_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {
            "text_tokens": usage.output_text_tokens,
            "image_tokens": usage.output_image_tokens,
        },
        "total_tokens": usage.total_tokens,
    }
