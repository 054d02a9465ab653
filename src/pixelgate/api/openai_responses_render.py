"""A Responses API answer (``Response``, its ``image_generation_call`` and ``message`` items, usage and
errors) and its stream of openai-python's ``ResponseStreamEvent``s: the rendering half of
``openai_responses.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from itertools import count
from typing import Any

import orjson

from pixelgate.api.deps import ImageLinks
from pixelgate.api.gemini_common import keepalive_until_done
from pixelgate.api.interactions import STATUS as INTERACTION_STATUS
from pixelgate.api.openai_stream import KEEPALIVE
from pixelgate.api.responses import inline_files
from pixelgate.core.errors import PixelgateError, TaskCancelled
from pixelgate.core.task import Status, Task, Usage
from pixelgate.tasks.service import TaskService

STATUS = INTERACTION_STATUS  # the Responses API's words for a task's states are the Interactions API's

# --- rendering ------------------------------------------------------------------------------------------


def image_item_id(task: Task, index: int) -> str:
    return f"ig_{task.id}" + (f"_{index}" if index else "")


def message_item_id(task: Task) -> str:
    return f"msg_{task.id}"


def _quality(task: Task) -> str:
    return task.request.quality or "auto"


def _tool_echo(task: Task) -> dict[str, Any]:
    """The image_generation tool as the response used it."""
    ask = task.request
    tool: dict[str, Any] = {
        "type": "image_generation",
        "model": ask.model,
        "size": ask.requested_size or "auto",
        "quality": _quality(task),
        "output_format": ask.output_format,
        "background": "opaque",
    }
    if ask.output_compression is not None:
        tool["output_compression"] = ask.output_compression
    return tool


def usage_of(usage: Usage) -> dict[str, Any]:
    """``usage`` as the Responses API counts it: thought tokens are output tokens (Gemini bills them so),
    shown as ``reasoning_tokens``."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens + usage.thought_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.thought_tokens},
        "total_tokens": usage.total_tokens,
    }


def _tool_usage(usage: Usage, searches: int) -> dict[str, Any]:
    return {
        "image_gen": {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {
                "image_tokens": usage.input_image_tokens,
                "text_tokens": usage.input_text_tokens,
            },
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {
                "image_tokens": usage.output_image_tokens,
                "text_tokens": usage.output_text_tokens,
            },
            "total_tokens": usage.input_tokens + usage.output_tokens,
        },
        "web_search": {"num_requests": searches},
    }


def response_error(error: PixelgateError) -> dict[str, Any]:
    """A failed response's ``error``, its ``code`` one of the few that openai-python's ``ResponseError``
    allows; pixelgate's own code is in the failed image call's ``error`` (see :func:`call_error`)."""
    if error.status == 429:
        code = "rate_limit_exceeded"
    elif error.status >= 500 or error.status == 499:
        code = "server_error"
    elif error.code in ("content_blocked", "moderation_blocked"):
        code = "image_content_policy_violation"
    elif "image" in error.code:
        code = "invalid_image"
    else:
        code = "invalid_prompt"
    return {"code": code, "message": error.message, "param": error.param, "type": error.kind}


def call_error(error: PixelgateError) -> dict[str, Any]:
    """A failed image call's ``error`` (openai-python's ``ImageGenerationCallError``): pixelgate's code."""
    return {"code": error.code, "message": error.message, "param": error.param, "type": error.kind}


def message_item(task: Task, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": message_item_id(task),
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


async def render_response(links: ImageLinks, task: Task) -> dict[str, Any]:
    """A task as openai-python's ``Response``; each image is a ``Base64File`` (see ``api/responses.py``)."""
    ask = task.request
    body: dict[str, Any] = {
        "id": task.id,
        "object": "response",
        "created_at": int(task.created_at),
        "status": STATUS[task.status],
        "completed_at": int(task.completed_at) if task.completed_at is not None else None,
        "error": None,
        "incomplete_details": None,
        "instructions": ask.system_instruction,
        "metadata": ask.metadata,
        "model": ask.model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": ask.continues,
        "temperature": ask.temperature,
        "top_p": ask.top_p,
        "tool_choice": "auto",
        "tools": [_tool_echo(task)],
        "usage": None,
        "user": ask.user,
    }
    result = task.result
    if task.status is Status.SUCCEEDED and result is not None and not task.result_expired():
        output: list[dict[str, Any]] = []
        for index, image in enumerate(result.images):
            output.append(
                {
                    "type": "image_generation_call",
                    "id": image_item_id(task, index),
                    "status": "completed",
                    "action": "edit" if ask.references or ask.history else "generate",
                    "result": await links.image_base64(image),
                    "background": "opaque",
                    "output_format": ask.output_format,
                    "quality": _quality(task),
                    "size": f"{image.width}x{image.height}",
                    "revised_prompt": image.revised_prompt,
                }
            )
        if result.text:
            output.append(message_item(task, result.text))
        body["output"] = output
        body["usage"] = usage_of(result.usage)
        body["tool_usage"] = _tool_usage(result.usage, len(result.searches))
    elif task.status is Status.SUCCEEDED:
        body["error"] = {
            "code": "image_file_not_found",
            "message": f"the images of response {task.id} expired and are gone: generate them again",
            "type": "not_found_error",
        }
    error = task.error
    if error is not None:
        body["error"] = response_error(error)
        body["output"] = [
            {
                "type": "image_generation_call",
                "id": image_item_id(task, 0),
                "status": "failed",
                "result": None,
                "error": call_error(error),
            }
        ]
    return body


# --- streaming ------------------------------------------------------------------------------------------


async def stream_response(
    service: TaskService,
    links: ImageLinks,
    task: Task,
    *,
    partial_images: int,
    keepalive: float,
    forget: bool,
) -> AsyncIterator[bytes]:
    """openai-python's ``ResponseStreamEvent``s, each with its ``sequence_number``: ``response.created``,
    ``response.in_progress``, ``response.output_item.added``, ``response.image_generation_call.in_progress``
    and ``.generating`` at once; SSE comment lines while the image renders; then up to ``partial_images``
    ``response.image_generation_call.partial_image`` (a thinking model's interim images, oldest first),
    ``.completed``, ``response.output_item.done`` (a text answer follows as a ``message`` item with its
    content and text events) and ``response.completed``. A failure after the stream began is
    ``response.output_item.done`` with the call ``failed``, then ``response.failed`` with the error."""
    numbers = count()

    def event(kind: str, **data: Any) -> bytes:
        payload = orjson.dumps({"type": kind, "sequence_number": next(numbers), **data})
        return b"event: " + kind.encode() + b"\ndata: " + payload + b"\n\n"

    head = {**await render_response(links, task), "status": "in_progress"}
    yield event("response.created", response=head)
    yield event("response.in_progress", response=head)
    item_id = image_item_id(task, 0)
    pending = {"type": "image_generation_call", "id": item_id, "status": "in_progress", "result": None}
    yield event("response.output_item.added", output_index=0, item=pending)
    yield event("response.image_generation_call.in_progress", output_index=0, item_id=item_id)
    yield event("response.image_generation_call.generating", output_index=0, item_id=item_id)
    waiter = asyncio.ensure_future(service.wait_for_result(task.id))
    try:
        async for beat in keepalive_until_done(waiter, keepalive, KEEPALIVE):
            yield beat
        try:
            done = waiter.result()
        except PixelgateError as error:
            failed = {**pending, "status": "failed", "error": call_error(error)}
            yield event("response.output_item.done", output_index=0, item=failed)
            status = "cancelled" if isinstance(error, TaskCancelled) else "failed"
            ended = {**head, "status": status, "output": [failed]}
            ended["error"] = response_error(error)
            yield event("response.failed", response=ended)
            return
        final = await inline_files(await render_response(links, done))
        assert done.result is not None
        interim = [image for thought in done.result.thoughts for image in thought.images]
        for index, item in enumerate(final["output"]):
            if item["type"] == "message":
                for kind, data in _message_events(item, index):
                    yield event(kind, **data)
                continue
            if index:  # a task of several images (made elsewhere): each call announced in turn
                announced = {**item, "status": "in_progress", "result": None}
                yield event("response.output_item.added", output_index=index, item=announced)
                for step in ("in_progress", "generating"):
                    yield event(
                        f"response.image_generation_call.{step}", output_index=index, item_id=item["id"]
                    )
            else:
                for number, image in enumerate(interim[:partial_images]):
                    yield event(
                        "response.image_generation_call.partial_image",
                        output_index=0,
                        item_id=item["id"],
                        partial_image_index=number,
                        partial_image_b64=await inline_files(await links.image_base64(image)),
                        size=f"{image.width}x{image.height}",
                        output_format=item["output_format"],
                        quality=item["quality"],
                        background=item["background"],
                    )
            yield event("response.image_generation_call.completed", output_index=index, item_id=item["id"])
            yield event("response.output_item.done", output_index=index, item=item)
        yield event("response.completed", response=final)
        if forget:
            await service.delete(task.id)
    finally:
        waiter.cancel()


def _message_events(item: dict[str, Any], index: int) -> list[tuple[str, dict[str, Any]]]:
    part = item["content"][0]
    text = part["text"]
    at = {"output_index": index, "item_id": item["id"], "content_index": 0}
    empty = {**part, "text": ""}
    return [
        (
            "response.output_item.added",
            {"output_index": index, "item": {**item, "status": "in_progress", "content": []}},
        ),
        ("response.content_part.added", {**at, "part": empty}),
        ("response.output_text.delta", {**at, "delta": text, "logprobs": []}),
        ("response.output_text.done", {**at, "text": text, "logprobs": []}),
        ("response.content_part.done", {**at, "part": part}),
        ("response.output_item.done", {"output_index": index, "item": item}),
    ]
