"""``stream: true`` on Interactions: the interaction as server-sent events.

``interaction.created`` first; then, once the model has finished, each step as ``step.start``, its content
as ``step.delta`` events (``thought_summary`` and ``thought_signature`` for a thought, ``text`` and
``image`` for the model output; a search step comes whole in its ``step.start``) and ``step.stop``; last
``interaction.completed`` with the usage, or an ``error`` event. While the model works, SSE comment lines
keep the connection from looking idle.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import count
from typing import Any

from fastapi import Request

from pixelgate.api.gemini_common import keepalive_until_done
from pixelgate.api.responses import inline_files
from pixelgate.core.errors import PixelgateError
from pixelgate.core.task import Task
from pixelgate.tasks.service import TaskService

Renderer = Callable[[Request, Task], Awaitable[dict[str, Any]]]
_HEAD = ("id", "status", "model", "created", "updated", "previous_interaction_id")


def _step_events(index: int, step: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    kind = step["type"]
    if kind == "thought":
        deltas = [{"type": "thought_summary", "content": block} for block in step.get("summary", [])]
        if step.get("signature"):
            deltas.append({"type": "thought_signature", "signature": step["signature"]})
        start: dict[str, Any] = {"type": "thought"}
    elif kind == "model_output":
        deltas = list(step.get("content", []))  # text and image blocks are their own deltas
        start = {"type": "model_output"}
    else:
        deltas, start = [], step
    return [
        ("step.start", {"index": index, "step": start}),
        *(("step.delta", {"index": index, "delta": delta}) for delta in deltas),
        ("step.stop", {"index": index}),
    ]


async def stream_interaction(
    service: TaskService, request: Request, task: Task, render: Renderer, *, keepalive: float, forget: bool
) -> AsyncIterator[bytes]:
    ids = count(1)

    def event(kind: str, data: dict[str, Any]) -> bytes:
        number = next(ids)
        payload = json.dumps({"event_type": kind, "event_id": str(number), **data}, separators=(",", ":"))
        return f"event: {kind}\nid: {number}\ndata: {payload}\n\n".encode()

    created = await render(request, task)
    yield event("interaction.created", {"interaction": {k: created[k] for k in _HEAD if k in created}})
    waiter = asyncio.ensure_future(service.wait_for_result(task.id))
    try:
        async for beat in keepalive_until_done(waiter, keepalive, b": keep-alive\n\n"):
            yield beat
        try:
            done = waiter.result()
        except PixelgateError as error:
            yield event("error", {"error": {"code": error.code, "message": error.message}})
            return
        finished = await inline_files(await render(request, done))
        for index, step in enumerate(finished["steps"]):
            for kind, data in _step_events(index, step):
                yield event(kind, data)
        summary = {k: finished[k] for k in (*_HEAD, "usage") if k in finished}
        yield event("interaction.completed", {"interaction": summary})
        if forget:
            await service.delete(task.id)
    finally:
        waiter.cancel()
