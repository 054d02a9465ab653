"""The task-style gateway of seeds 000-002: create a task, poll it with backoff, download its images.

``POST {base_url}/images/generations`` with ``size`` as the aspect ratio and ``resolution`` as the image
size (the seeds' own fields), references as data URIs in ``reference_images``; it answers
``{"id": "task_img_…", "status": "queued", …}``. ``GET {base_url}/images/generations/{id}`` is polled
(every ``poll_interval`` seconds, growing by half each time up to ``max_poll_interval``) until the task
is ``completed`` or ``failed``. The result URLs expire, so the images are downloaded as soon as the task
completes, and checked before they are stored. A task we stop wanting is cancelled upstream.
"""

from __future__ import annotations

import asyncio
import base64
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pixelgate.config import ChannelConfig, ConfigError
from pixelgate.providers.base import (
    Generation,
    ProviderImage,
    ProviderResult,
    estimated_usage,
    idempotent,
)
from pixelgate.providers.http import UpstreamHttp, bearer
from pixelgate.providers.registry import ProviderKind

RUNNING = frozenset({"queued", "pending", "processing", "in_progress", "running", "submitted"})
SUCCEEDED = frozenset({"completed", "succeeded", "success"})


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval: float = Field(1.0, gt=0)
    max_poll_interval: float = Field(10.0, gt=0)
    create_path: str = "/images/generations"
    task_path: str = "/images/generations/{id}"
    cancel_path: str | None = "/images/generations/{id}/cancel"  # None: the upstream cannot cancel


def check_channel(config: ChannelConfig) -> None:
    if not config.base_url:
        raise ConfigError(f"channel {config.name!r}: a tasks channel needs a base_url (e.g. https://host/v1)")


def build(config: ChannelConfig, api_key: str | None, options: Options) -> TaskGatewayProvider:
    check_channel(config)
    assert config.base_url is not None
    http = UpstreamHttp.for_channel(config, config.base_url, bearer(api_key), api_key)
    return TaskGatewayProvider(http, options)


KIND = ProviderKind(
    name="tasks",
    options=Options,
    build=build,
    description="A task-style gateway: create a task, poll it, download its images",
    check_channel=check_channel,
)


class TaskGatewayProvider:
    def __init__(self, http: UpstreamHttp, options: Options) -> None:
        self.http = http
        self.options = options

    async def generate(self, generation: Generation) -> ProviderResult:
        resumed = (generation.resume or {}).get("task")
        if isinstance(resumed, str):
            task_id, saved = resumed, True
        else:
            task_id, saved = await self.http.started(
                generation, partial(self.create, generation), lambda made: made, self.cancel_path
            )
        answer = await self.http.follow(
            saved=saved,
            task_path=self.options.task_path.format(id=task_id),
            cancel_path=self.cancel_path(task_id),
            interval=self.options.poll_interval,
            max_interval=self.options.max_poll_interval,
            running=RUNNING,
        )
        if str(answer.get("status", "")).lower() not in SUCCEEDED:
            raise self.http.task_failed(answer)
        urls = _result_urls(answer)
        if not urls:
            raise self.http.malformed(f"task {task_id} completed with no result URL")
        datas = await asyncio.gather(*(self.http.download(url) for url in urls))
        images: tuple[ProviderImage, ...] = tuple(
            await asyncio.gather(
                *(
                    self.http.image(data, f"task {task_id} result {number}")
                    for number, data in enumerate(datas)
                )
            )
        )
        return ProviderResult(images=images, usage=estimated_usage(generation, images=len(images)))

    def cancel_path(self, task_id: str) -> str | None:
        return self.options.cancel_path.format(id=task_id) if self.options.cancel_path else None

    async def create(self, generation: Generation) -> str:
        made = await self.http.json(
            "POST", self.options.create_path, json=self.body(generation), headers=idempotent(generation)
        )
        task_id = made.get("id") if isinstance(made, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise self.http.malformed(f"a task without an id: {self.http.quote(str(made))}")
        return task_id

    def body(self, generation: Generation) -> dict[str, Any]:
        request = generation.request
        body: dict[str, Any] = {
            "model": generation.model,
            "prompt": request.prompt,
            "size": request.aspect_ratio,
            "resolution": request.image_size,
        }
        if generation.references:
            body["reference_images"] = [
                f"data:{ref.mime_type};base64,{base64.b64encode(data).decode('ascii')}"
                for ref, data in zip(request.references, generation.references, strict=True)
            ]
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["topP"] = request.top_p
        if request.seed is not None:
            body["seed"] = request.seed
        return body

    async def check(self) -> str:
        return await self.http.list_models("/models", "data")

    def abandon(self, state: dict[str, Any]) -> None:
        path = self.cancel_path(state["task"]) if isinstance(state.get("task"), str) else None
        if path is not None:
            self.http.cancel_quietly(path)

    async def close(self) -> None:
        await self.http.close()


def _result_urls(answer: dict[str, Any]) -> list[str]:
    """``result.data[].url`` (seed 000's shape), else ``data[].url``, else the top-level ``url``."""
    result = answer.get("result")
    for entries in ((result or {}).get("data") if isinstance(result, dict) else None, answer.get("data")):
        if isinstance(entries, list):
            urls = [e["url"] for e in entries if isinstance(e, dict) and isinstance(e.get("url"), str)]
            if urls:
                return urls
    return [answer["url"]] if isinstance(answer.get("url"), str) else []
