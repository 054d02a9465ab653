"""``stream: true`` on chat completions: ``chat.completion.chunk`` events as OpenRouter sends them for image
models. The first chunk opens the assistant's turn at once; SSE comments keep the connection alive while
the image renders; then each choice's reasoning, text and ``delta.images``, a closing chunk per choice
with its ``finish_reason`` (the last one carries ``usage``), and ``data: [DONE]``. An error after the
stream began is one ``data: {"error": …}`` line, which openai-python raises as an ``APIError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from pixelgate.api.chat_render import choices_of, usage_of
from pixelgate.api.deps import ImageLinks
from pixelgate.api.errors import openai_error
from pixelgate.api.gemini_common import keepalive_until_done
from pixelgate.api.responses import inline_files
from pixelgate.core.errors import PixelgateError
from pixelgate.core.task import Task
from pixelgate.tasks.service import TaskService

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def stream_chat(
    service: TaskService, links: ImageLinks, task: Task, *, keepalive: float
) -> AsyncIterator[bytes]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        head = {"id": task.id, "object": "chat.completion.chunk", "created": int(task.created_at)}
        return _data({**head, "model": task.request.model, "choices": choices, **extra})

    waiter = asyncio.ensure_future(service.wait_for_result(task.id))
    try:
        yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        async for beat in keepalive_until_done(waiter, keepalive, KEEPALIVE):
            yield beat
        try:
            done = waiter.result()
        except PixelgateError as error:
            yield _data(openai_error(error))
            return
        assert done.result is not None
        choices = await choices_of(links, done)
        for choice in choices:
            message = await inline_files(choice["message"])
            if message.get("reasoning"):
                delta = {"role": "assistant", "content": "", "reasoning": message["reasoning"]}
                yield chunk([{"index": choice["index"], "delta": delta, "finish_reason": None}])
            delta = {"role": "assistant", "content": message["content"], "images": message["images"]}
            yield chunk([{"index": choice["index"], "delta": delta, "finish_reason": None}])
        for number, choice in enumerate(choices):
            closing = [{"index": choice["index"], "delta": {}, "finish_reason": "stop"}]
            last = number == len(choices) - 1
            yield chunk(closing, usage=usage_of(done.result.usage)) if last else chunk(closing)
        yield DONE
    finally:
        waiter.cancel()
