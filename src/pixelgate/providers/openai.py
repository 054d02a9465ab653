"""Any OpenAI Images-compatible upstream: OpenAI itself, the gateway of seed 003, another pixelgate.

Text-to-image goes to ``POST {base_url}/images/generations``; with reference images, to
``POST {base_url}/images/edits`` as multipart (``image[]`` per reference, ``mask`` if given). The size is
the catalog's output pixels as ``WxH``; a channel whose upstream takes only a few sizes lists them in
``options.sizes`` and gets the nearest one (by aspect ratio, then area).

Seed 003's async mode (``options = { async = true }``): the create call answers a task, and
``GET {base_url}/tasks/{id}`` gives the same body as the synchronous call once it is done. An answer that
is a task is polled whether or not async was asked for; a task we stop wanting is cancelled upstream
(``POST /tasks/{id}/cancel``, where the upstream has it).
"""

from __future__ import annotations

import math
import re
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pixelgate.config import ChannelConfig
from pixelgate.core.request import OUTPUT_FORMATS
from pixelgate.core.task import Usage
from pixelgate.providers.base import (
    Generation,
    ProviderImage,
    ProviderResult,
    estimated_usage,
    idempotent,
)
from pixelgate.providers.http import UpstreamHttp, as_count, bearer
from pixelgate.providers.registry import ProviderKind

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RUNNING = frozenset({"queued", "pending", "processing", "in_progress", "running", "submitted"})
_WXH = re.compile(r"^(\d{2,5})x(\d{2,5})$")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    async_mode: bool = Field(False, alias="async")
    sizes: list[str] | None = None  # the WxH sizes the upstream takes; None: any
    # "omit" for upstreams that refuse the field (OpenAI's gpt-image models always answer base64).
    response_format: Literal["b64_json", "url", "omit"] = "b64_json"
    poll_interval: float = Field(1.0, gt=0)
    max_poll_interval: float = Field(10.0, gt=0)

    @field_validator("sizes")
    @classmethod
    def _sizes_are_wxh(cls, sizes: list[str] | None) -> list[str] | None:
        for size in sizes or []:
            if not _WXH.match(size):
                raise ValueError(f"size {size!r} is not WIDTHxHEIGHT, e.g. 1024x1024")
        return sizes


def build(config: ChannelConfig, api_key: str | None, options: Options) -> OpenAIProvider:
    http = UpstreamHttp.for_channel(config, config.base_url or DEFAULT_BASE_URL, bearer(api_key), api_key)
    return OpenAIProvider(http, options)


KIND = ProviderKind(
    name="openai",
    options=Options,
    build=build,
    description="Any OpenAI Images upstream: OpenAI, an OpenAI-compatible gateway, another pixelgate",
    default_base_url=DEFAULT_BASE_URL,
)


class OpenAIProvider:
    def __init__(self, http: UpstreamHttp, options: Options) -> None:
        self.http = http
        self.options = options

    async def generate(self, generation: Generation) -> ProviderResult:
        resumed = (generation.resume or {}).get("task")
        if isinstance(resumed, str):
            return await self.read_images(await self._wait(resumed, saved=True), generation)
        answer, saved = await self.http.started(
            generation, partial(self._create, generation), _task_of, lambda task: f"/tasks/{task}/cancel"
        )
        task_id = _task_of(answer)
        if task_id is not None:
            answer = await self._wait(task_id, saved=saved)
        return await self.read_images(answer, generation)

    async def _create(self, generation: Generation) -> dict[str, Any]:
        """The create call's answer: the images, or (async) a task that makes them."""
        fields, headers = self.fields(generation), idempotent(generation)
        if generation.references:
            answer = await self.http.json(
                "POST", "/images/edits", data=_form(fields), files=_files(generation), headers=headers
            )
        else:
            answer = await self.http.json("POST", "/images/generations", json=fields, headers=headers)
        if not isinstance(answer, dict):
            raise self.http.malformed("an answer that is not a JSON object")
        return answer

    def fields(self, generation: Generation) -> dict[str, Any]:
        request = generation.request
        assert request.width is not None and request.height is not None
        fields: dict[str, Any] = {
            "model": generation.model,
            "prompt": request.prompt,
            "n": 1,
            "size": self.size_for(request.width, request.height),
        }
        if self.options.response_format != "omit":
            fields["response_format"] = self.options.response_format
        if request.output_format != "png":
            fields["output_format"] = request.output_format
            if request.output_compression is not None:
                fields["output_compression"] = request.output_compression
        if request.quality is not None:
            fields["quality"] = request.quality
        if self.options.async_mode:
            fields["async"] = True
        return fields

    def size_for(self, width: int, height: int) -> str:
        """``WxH`` for the upstream: the exact pixels, or the nearest size it takes."""
        if not self.options.sizes:
            return f"{width}x{height}"

        def distance(size: str) -> tuple[float, float]:
            w, h = (int(side) for side in size.split("x"))
            return abs(math.log(w / h) - math.log(width / height)), abs(math.log(w * h / (width * height)))

        return min(self.options.sizes, key=distance)

    async def _wait(self, task_id: str, *, saved: bool) -> dict[str, Any]:
        answer = await self.http.follow(
            saved=saved,
            task_path=f"/tasks/{task_id}",
            cancel_path=f"/tasks/{task_id}/cancel",
            interval=self.options.poll_interval,
            max_interval=self.options.max_poll_interval,
            running=RUNNING,
        )
        if str(answer.get("status", "")).lower() not in ("completed", "succeeded", "success"):
            raise self.http.task_failed(answer)
        return answer

    async def read_images(self, answer: dict[str, Any], generation: Generation) -> ProviderResult:
        data = answer.get("data")
        if not isinstance(data, list) or not data:
            raise self.http.malformed("an answer with no images in data")
        images: list[ProviderImage] = []
        for number, entry in enumerate(data):
            where = f"data[{number}]"
            if not isinstance(entry, dict):
                raise self.http.malformed(f"{where} that is not an object")
            if entry.get("b64_json"):
                raw = self.http.decode_base64(entry["b64_json"], f"{where}.b64_json")
            elif isinstance(entry.get("url"), str):
                raw = await self.http.download(entry["url"])
            else:
                raise self.http.malformed(f"{where} with neither b64_json nor url")
            images.append(await self.http.image(raw, where))
        return ProviderResult(
            images=tuple(images), usage=_usage(answer.get("usage"), generation, len(images))
        )

    async def check(self) -> str:
        return await self.http.list_models("/models", "data")

    def abandon(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("task"), str):
            self.http.cancel_quietly(f"/tasks/{state['task']}/cancel")

    async def close(self) -> None:
        await self.http.close()


def _task_of(answer: dict[str, Any]) -> str | None:
    """The upstream task an answer is (seed 003's async mode, or a gateway that always answers so), if it
    is one rather than the images."""
    if "data" not in answer and "id" in answer and "status" in answer:
        return str(answer["id"])
    return None


def _form(fields: dict[str, Any]) -> dict[str, str]:
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in fields.items()
    }


def _files(generation: Generation) -> list[tuple[str, tuple[str, bytes, str]]]:
    request = generation.request
    files = [
        ("image[]", (f"reference-{number}{_extension(ref.mime_type)}", data, ref.mime_type))
        for number, (ref, data) in enumerate(zip(request.references, generation.references, strict=True))
    ]
    if request.mask is not None and generation.mask is not None:
        files.append(
            ("mask", ("mask" + _extension(request.mask.mime_type), generation.mask, request.mask.mime_type))
        )
    return files


def _extension(mime_type: str) -> str:
    kind = mime_type.partition("/")[2]
    return "." + ("jpg" if kind == "jpeg" else kind if kind in OUTPUT_FORMATS else "png")


def _usage(reported: Any, generation: Generation, images: int) -> Usage:
    """The upstream's own count where it gives one (OpenAI's gpt-image models do), else the catalog's."""
    if not isinstance(reported, dict) or "output_tokens" not in reported:
        return estimated_usage(generation, images=images)
    inputs = reported.get("input_tokens_details") or {}
    outputs = reported.get("output_tokens_details") or {}
    output = as_count(reported.get("output_tokens"))
    output_text = as_count(outputs.get("text_tokens"))
    return Usage(
        input_text_tokens=as_count(inputs.get("text_tokens", reported.get("input_tokens"))),
        input_image_tokens=as_count(inputs.get("image_tokens")),
        output_image_tokens=as_count(outputs.get("image_tokens", output - output_text)),
        output_text_tokens=output_text,
        images=images,
    )
