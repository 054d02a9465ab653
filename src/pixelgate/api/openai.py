"""The OpenAI Images dialect (and the task-style gateways that share its endpoint), translation only.

One endpoint, ``POST /v1/images/generations``, serves three kinds of client. How it tells them apart:

1. ``"async": true`` (seed 003) or ``Prefer: respond-async``: answered at once with the task object;
   ``"async": false`` or ``Prefer: wait``: answered synchronously.
2. Otherwise a request that names a ``response_format``, or comes from an official OpenAI SDK (they all
   send ``X-Stainless-*`` headers), is an OpenAI Images call: answered synchronously.
3. Otherwise a request in the task-style shape of seeds 000-002 (an aspect-ratio ``size`` such as
   ``16:9``, ``resolution``, ``metadata.resolution``, ``reference_images`` or ``image_urls``) is answered
   with the task, as those gateways do; anything else synchronously.

Every generation is a task either way; the synchronous answer just waits for it.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import ImageLinks, LinksDep, ServiceDep, SettingsDep
from pixelgate.api.errors import openai_dialect
from pixelgate.api.openai_stream import MAX_PARTIAL_IMAGES, Kind, stream_images
from pixelgate.api.parsing import check_storable, parse_model, read_json_object
from pixelgate.api.render import UNASKED_FORMAT, render_images_response, render_task_style
from pixelgate.api.responses import FastJSONResponse, ImageJSONResponse
from pixelgate.auth.keys import Caller
from pixelgate.catalog import Catalog
from pixelgate.config import Settings
from pixelgate.core.errors import InvalidRequest, one_of
from pixelgate.core.references import ReferenceInput
from pixelgate.core.request import ImageRequest
from pixelgate.core.task import Callback
from pixelgate.tasks.service import TaskService

BACKGROUNDS = ("auto", "opaque", "transparent")
QUALITIES = ("auto", "standard", "hd", "low", "medium", "high", "xhigh", "max")
_WXH = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_RATIO = re.compile(r"^(\d{1,2}):(\d{1,2})$")


router = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate)])


class ReferenceObject(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str | None = None
    image_url: str | dict[str, str] | None = None
    data: str | None = None
    b64_json: str | None = None
    kind: str | None = None

    def source(self) -> str | None:
        if isinstance(self.image_url, dict):
            return self.image_url.get("url")
        return self.url or self.image_url or self.data or self.b64_json


class ImageBody(BaseModel):
    """The generation fields of OpenAI Images plus the gateway fields of seeds 000 and 003."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    model: str | None = None
    prompt: str
    n: int = 1
    size: str | None = None
    quality: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "jpeg", "jpg", "webp"] | None = None
    output_compression: int | None = None
    user: str | None = None
    resolution: str | None = None
    image_size: str | None = None
    aspect_ratio: str | None = None
    metadata: dict[str, Any] | None = None
    reference_images: list[str | ReferenceObject] | None = None
    image_urls: list[str] | None = None
    images: list[str | ReferenceObject] | None = None  # JSON edits: [{"image_url": ...}]
    temperature: float | None = None
    top_p: float | None = None
    topP: float | None = None
    seed: int | None = None
    thinking_level: str | None = None
    run_async: bool | None = Field(None, alias="async")
    callback_url: str | None = None  # a webhook for this task's end (see tasks/webhooks.py)
    stream: bool | None = None  # server-sent events (api/openai_stream.py)
    partial_images: int | None = None
    background: str | None = None

    def looks_task_style(self) -> bool:
        return bool(
            (self.size and _RATIO.match(self.size))
            or self.resolution
            or (self.metadata and "resolution" in self.metadata)
            or self.reference_images
            or self.image_urls
        )


def wants_task(body: ImageBody, request: Request) -> bool:
    if body.run_async is not None:
        return body.run_async
    prefer = request.headers.get("prefer", "").lower()
    if "respond-async" in prefer:
        return True
    if "wait" in prefer or body.response_format is not None:
        return False
    if any(name.startswith("x-stainless-") for name in request.headers):
        return False
    return body.looks_task_style()


def to_image_request(body: ImageBody, catalog: Catalog, default_model: str) -> ImageRequest:
    model = body.model or default_model
    wire = {"model": "model", "prompt": "prompt", "references": "reference_images", "top_p": "top_p"}
    # An empty string is a value to refuse by name, not a missing one.
    image_size = body.resolution if body.resolution is not None else body.image_size
    wire["image_size"] = "resolution" if body.resolution is not None else "image_size"
    if image_size is None and body.metadata and body.metadata.get("resolution") is not None:
        image_size = str(body.metadata["resolution"])
        wire["image_size"] = "metadata.resolution"

    aspect_ratio = body.aspect_ratio
    wire["aspect_ratio"] = "aspect_ratio"
    requested_size = None
    size = (body.size or "").strip()
    if size and size != "auto":
        wire["aspect_ratio"] = "size"
        if ratio := _RATIO.match(size):
            aspect_ratio = f"{int(ratio.group(1))}:{int(ratio.group(2))}"
        elif pixels := _WXH.match(size):
            width, height = int(pixels.group(1)), int(pixels.group(2))
            if not width or not height:
                raise InvalidRequest(
                    f"size {size!r} has a zero side: use WxH with both sides above 0",
                    param="size",
                    code="invalid_size",
                )
            spec = catalog.get(model)
            aspect_ratio = spec.nearest_aspect_ratio(width, height)
            if image_size is None:
                image_size = spec.nearest_image_size(aspect_ratio, width, height)
            requested_size = size
        else:
            raise InvalidRequest(
                f"size {size!r} is not valid: use WxH (e.g. 1024x1024), an aspect ratio (e.g. 16:9) or auto",
                param="size",
                code="invalid_size",
            )

    _check_stream_fields(body)
    if body.quality is not None and body.quality not in QUALITIES:
        raise InvalidRequest(
            f"quality {body.quality!r} is not valid: use {one_of(QUALITIES)}",
            param="quality",
            code="invalid_quality",
        )
    top_p = body.top_p if body.top_p is not None else body.topP
    if body.top_p is None and body.topP is not None:
        wire["top_p"] = "topP"
    output_format = "jpeg" if body.output_format == "jpg" else (body.output_format or "png")
    metadata = {k: v for k, v in (body.metadata or {}).items() if k != "resolution"}
    return ImageRequest(
        model=model,
        prompt=body.prompt,
        n=body.n,
        aspect_ratio=aspect_ratio,
        image_size=image_size,
        output_format=output_format,
        output_compression=body.output_compression,
        seed=body.seed,
        temperature=body.temperature,
        top_p=top_p,
        thinking_level=body.thinking_level,
        quality=body.quality,
        user=body.user,
        requested_size=requested_size,
        metadata=metadata,
        wire_names=wire,
    )


def reference_inputs(body: ImageBody) -> list[ReferenceInput]:
    refs: list[ReferenceInput] = []
    for field, items in (
        ("reference_images", body.reference_images),
        ("image_urls", body.image_urls),
        ("images", body.images),
    ):
        for i, item in enumerate(items or []):
            name = f"{field}[{i}]"
            if isinstance(item, str):
                refs.append(ReferenceInput(source=item, field=name))
                continue
            source = item.source()
            if not source:
                raise InvalidRequest(
                    f"{name} has no image: give url, image_url, data or b64_json",
                    param=name,
                    code="invalid_image",
                )
            refs.append(ReferenceInput(source=source, field=name, kind=item.kind))
    return refs


def edit_references(body: ImageBody) -> list[ReferenceInput]:
    """The images of a JSON edit, which needs at least one."""
    refs = reference_inputs(body)
    if not refs:
        raise InvalidRequest(
            "images is required for an edit: give at least one image",
            param="images",
            code="missing_image",
        )
    return refs


def _check_stream_fields(body: ImageBody) -> None:
    """``partial_images`` and ``background`` as OpenAI takes them, and what these models can do."""
    if body.partial_images is not None and not 0 <= body.partial_images <= MAX_PARTIAL_IMAGES:
        raise InvalidRequest(
            f"partial_images {body.partial_images} is not valid: use 0 to {MAX_PARTIAL_IMAGES}",
            param="partial_images",
            code="invalid_partial_images",
        )
    if body.background == "transparent":
        raise InvalidRequest(
            "background 'transparent' is not served: these models make opaque images; use opaque or auto",
            param="background",
            code="unsupported_background",
        )
    if body.background is not None and body.background not in BACKGROUNDS:
        raise InvalidRequest(
            f"background {body.background!r} is not valid: use {one_of(BACKGROUNDS)}",
            param="background",
            code="invalid_background",
        )


async def _create(
    request: Request,
    service: TaskService,
    links: ImageLinks,
    settings: Settings,
    caller: Caller,
    body: ImageBody,
    refs: list[ReferenceInput],
    mask: ReferenceInput | None = None,
    *,
    kind: Kind = "image_generation",
) -> Response:
    image_request = to_image_request(body, service.catalog, settings.default_model)
    as_task = not body.stream and wants_task(body, request)  # a stream is answered as the image renders
    task_style = as_task and body.run_async is None
    task = await service.submit(
        image_request,
        references=refs,
        mask=mask,
        dialect="tasks" if task_style else "openai",
        caller_waits=not as_task,
        response_format="b64_json" if body.stream else body.response_format or UNASKED_FORMAT,
        caller=caller,
        idempotency_key=request.headers.get("idempotency-key"),
        callback=Callback(urls=(body.callback_url,)) if body.callback_url is not None else None,
    )
    if body.stream:
        events = stream_images(
            service,
            links,
            task,
            kind=kind,
            partial_images=body.partial_images or 0,
            settings={"quality": body.quality or "auto", "background": body.background or "auto"},
            keepalive=settings.stream_keepalive_seconds,
        )
        return StreamingResponse(events, media_type="text/event-stream")
    if as_task:
        return FastJSONResponse(await render_task_style(request, links, task))
    done = await service.wait_for_result(task.id)
    return ImageJSONResponse(await render_images_response(request, links, done))


@router.post("/v1/images/generations")
async def create_image(
    request: Request, service: ServiceDep, links: LinksDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    body = parse_model(ImageBody, await read_json_object(request))
    return await _create(request, service, links, settings, caller, body, reference_inputs(body))


@router.post("/v1/images/edits")
async def edit_image(
    request: Request, service: ServiceDep, links: LinksDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = parse_model(ImageBody, await read_json_object(request))
        return await _create(
            request, service, links, settings, caller, body, edit_references(body), kind="image_edit"
        )
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            f"an edit is sent as multipart/form-data (or JSON), not {content_type or 'no content type'}",
            code="invalid_content_type",
        )
    limit = settings.max_body_bytes
    form = await request.form(max_files=64, max_fields=256, max_part_size=limit)
    fields: dict[str, Any] = {}
    refs: list[ReferenceInput] = []
    mask: ReferenceInput | None = None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            if name in ("image", "image[]"):
                refs.append(ReferenceInput(source=data, field=f"image[{len(refs)}]"))
            elif name == "mask":
                mask = ReferenceInput(source=data, field="mask")
        elif name.endswith("[]"):
            fields.setdefault(name[:-2], []).append(value)
        else:
            fields[name] = value
    if not refs:
        raise InvalidRequest(
            "image is required for an edit: upload at least one image file",
            param="image",
            code="missing_image",
        )
    check_storable(fields, root="the form")  # a charset=utf-7 form can spell lone surrogates
    body = parse_model(ImageBody, fields)
    references = refs + reference_inputs(body)
    return await _create(request, service, links, settings, caller, body, references, mask, kind="image_edit")


def model_entry(catalog: Catalog, model_id: str) -> dict[str, Any]:
    """A catalog entry as an OpenAI model object, with every capability under ``capabilities``."""
    spec = catalog.named_by_url(model_id)
    return {
        "id": spec.id,
        "object": "model",
        "created": 0,
        "owned_by": spec.owned_by,
        "capabilities": spec.describe(),
    }


def model_list(catalog: Catalog) -> dict[str, Any]:
    return {"object": "list", "data": [model_entry(catalog, model_id) for model_id in catalog.ids]}
