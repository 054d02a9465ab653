"""``stream: true`` on OpenAI Images: the answer as server-sent events, in the shapes of openai-python's
``ImageGenStreamEvent`` (``image_generation.partial_image``, ``image_generation.completed``) and
``ImageEditStreamEvent`` (``image_edit.*``).

While the image renders, SSE comment lines keep the connection from looking idle (the SDK skips them).
Then, for a thinking model, up to ``partial_images`` of its interim images (the drafts it shows while
thinking, oldest first) go out as partials; every image of the request then arrives as a ``completed``
event with the usage. An error after the stream began is one event whose data holds ``error``, which
the SDK raises as an ``APIError``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pixelgate.api.deps import ImageLinks
from pixelgate.api.errors import openai_error
from pixelgate.api.gemini_common import keepalive_until_done
from pixelgate.api.render import images_usage
from pixelgate.api.responses import inline_files
from pixelgate.core.errors import PixelgateError
from pixelgate.core.task import GeneratedImage, Task
from pixelgate.tasks.service import TaskService

MAX_PARTIAL_IMAGES = 3  # OpenAI's range for partial_images is 0 to 3
KEEPALIVE = b": keep-alive\n\n"

Kind = Literal["image_generation", "image_edit"]


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream_images(
    service: TaskService,
    links: ImageLinks,
    task: Task,
    *,
    kind: Kind,
    partial_images: int,
    settings: dict[str, str],
    keepalive: float,
) -> AsyncIterator[bytes]:
    """``settings``: the request's ``quality`` and ``background``, echoed in every event as OpenAI does."""
    waiter = asyncio.ensure_future(service.wait_for_result(task.id))
    try:
        async for beat in keepalive_until_done(waiter, keepalive, KEEPALIVE):
            yield beat
        try:
            done = waiter.result()
        except PixelgateError as error:
            yield _event("error", {"type": "error", **openai_error(error)})
            return
        assert done.result is not None
        output_format = done.request.output_format or "png"

        async def described(image: GeneratedImage) -> dict[str, Any]:
            return {
                "b64_json": await inline_files(await links.image_base64(image)),
                "size": f"{image.width}x{image.height}",
                "output_format": output_format,
                "created_at": int(time.time()),
                **settings,
            }

        interim = [image for thought in done.result.thoughts for image in thought.images]
        for index, image in enumerate(interim[:partial_images]):
            data = {"type": f"{kind}.partial_image", "partial_image_index": index, **await described(image)}
            yield _event(f"{kind}.partial_image", data)
        usage = images_usage(done.result.usage)
        for image in done.result.images:
            yield _event(
                f"{kind}.completed", {"type": f"{kind}.completed", **await described(image), "usage": usage}
            )
    finally:
        waiter.cancel()
