"""OpenAI's Responses API with an image model, translation only: ``POST /v1/responses`` (and
``/responses``), ``GET``, ``DELETE`` and ``POST …/cancel`` on ``/v1/responses/{id}``.

A response is a task, and its id is the task's id (no ``resp_`` prefix), so any generation of the caller's,
whichever dialect made it, can be read here or continued with ``previous_response_id``.

Which model draws. ``model`` may be a catalog image model (``client.responses.create(model=
"gemini-3.1-flash-image", input=…)``), or, in OpenAI's own shape, a text model with ``tools: [{"type":
"image_generation", "model": <catalog image model>, …}]``. The tool's ``model`` wins when it names a catalog
model (ids, operators' aliases and Google's ``-preview`` ids alike), else ``model``; when neither does, a
404 names them and the models served. Neither given: the server's default model. The answer's ``model`` is
the image model that drew.

``input`` is a string or a list of user messages (``content`` a string or ``input_text`` and
``input_image`` parts; an image by ``image_url``, a ``data:`` URL or an http(s) URL) whose images are
references; ``system``/``developer`` messages and ``instructions`` are the system instruction. Earlier
outputs in ``input`` (assistant messages, ``image_generation_call`` items) are refused with a 400: a
conversation continues with ``previous_response_id``, which sends the earlier turns back to the model with
their images and the upstream's thought signatures (Gemini 3 refuses a multi-turn edit without them).

The image_generation tool's options: ``size`` (``WxH`` → the model's nearest aspect ratio and size, as
``/v1/images/generations`` maps it; ``auto``), ``quality``, ``output_format`` (``png``, ``jpeg``,
``webp``), ``output_compression``, ``background`` (``auto``/``opaque``; ``transparent`` is a 400: these
models make opaque images), ``partial_images`` 0 to 3 and ``input_image_mask.image_url``. Gateway fields, as
on the Images endpoint: ``thinking_level`` and ``seed``. ``text: {"format": {"type": "text"}}`` asks for a
short text part beside the image, answered as a ``message`` output item (one is also added whenever the
model returns text).

The answer is a ``Response`` whose ``output`` is an ``image_generation_call`` (``result``: the base64 image)
and, with text, a ``message``. ``stream: true`` sends openai-python's ``ResponseStreamEvent``s (see
:func:`stream_response`). ``background: true`` answers at once with the response ``queued``; poll
``GET /v1/responses/{id}`` until it is ``completed``. ``store: false`` forgets the response once answered
(so it cannot be continued). Every generation is a task, billed only when it succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import LinksDep, ServiceDep, SettingsDep
from pixelgate.api.errors import openai_dialect, task_called
from pixelgate.api.openai import ImageBody
from pixelgate.api.openai import to_image_request as images_request
from pixelgate.api.openai_responses_render import render_response, stream_response
from pixelgate.api.parsing import parse_model, read_json_object, shown
from pixelgate.api.responses import ImageJSONResponse
from pixelgate.catalog import Catalog
from pixelgate.core.errors import InvalidRequest, NotFound, one_of
from pixelgate.core.references import ReferenceInput
from pixelgate.core.request import OUTPUT_FORMATS, ImageRequest

router = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate)])

TOOL_FIELDS = ("size", "quality", "output_format", "output_compression", "partial_images", "background")
# The conversation's error codes (see tasks/submission.py) in this API's words.
PREVIOUS_CODES = {
    "interaction_not_found": "previous_response_not_found",
    "interaction_expired": "previous_response_expired",
    "previous_interaction_not_completed": "previous_response_not_completed",
}
EARLIER_OUTPUTS = ("image_generation_call", "item_reference", "reasoning", "function_call")


class ImageTool(BaseModel):
    """The ``image_generation`` tool (openai-python's ``ImageGeneration``): the fields these models use."""

    model_config = ConfigDict(extra="ignore")

    type: str
    model: str | None = None
    size: str | None = None
    quality: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    partial_images: int | None = None
    background: str | None = None
    input_image_mask: dict[str, Any] | None = None


class ResponseBody(BaseModel):
    """``POST /v1/responses``: the fields of openai-python's ``ResponseCreateParams`` an image model uses,
    plus the gateway fields ``thinking_level`` and ``seed``. Others are ignored, as OpenAI's unused ones are."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: str | list[Any] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    stream: bool | None = None
    background: bool | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    text: dict[str, Any] | None = None
    thinking_level: str | None = None
    seed: int | None = None


class _Input:
    """``input`` taken apart: the prompt's text, its images and the system instruction."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.images: list[ReferenceInput] = []
        self.system: list[str] = []


def _text_of(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(
            f"{field} {shown(value)} is not valid: it must be a string", param=field, code="invalid_input"
        )
    return value


def _add_part(parsed: _Input, part: Any, field: str, *, system: bool) -> None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "input_text":
        text = _text_of(part.get("text"), f"{field}.text")
        (parsed.system if system else parsed.texts).append(text)
        return
    if kind == "input_image" and not system:
        url = part.get("image_url")
        if url is None:
            why = "a file_id is not served here" if part.get("file_id") is not None else "it has no image_url"
            raise InvalidRequest(
                f"{field} gives no image ({why}): give image_url, a data: URL (data:image/png;base64,…) or "
                "an http(s) URL",
                param=f"{field}.image_url",
                code="invalid_image",
            )
        parsed.images.append(
            ReferenceInput(source=_text_of(url, f"{field}.image_url"), field=f"{field}.image_url")
        )
        return
    allowed = ["input_text"] if system else ["input_text", "input_image"]
    raise InvalidRequest(
        f"{field} has type {kind!r}: {'a system message takes' if system else 'image models take'} "
        f"{one_of(allowed)} parts",
        param=f"{field}.type",
        code="unsupported_content",
    )


def parse_input(value: str | list[Any] | None) -> _Input:
    parsed = _Input()
    if value is None:
        raise InvalidRequest(
            "input is required: describe the image to generate (a string, or a list of user messages)",
            param="input",
            code="missing_field",
        )
    if isinstance(value, str):
        parsed.texts.append(value)
        return parsed
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(
                f"{where} {shown(item)} is not an input item: use a message such as "
                '{"role": "user", "content": "…"}',
                param=where,
                code="invalid_input",
            )
        role, kind = item.get("role"), item.get("type")
        if kind in ("input_text", "input_image") and role is None:
            _add_part(parsed, item, where, system=False)  # a bare content part: this turn's user content
            continue
        if role == "assistant" or (role is None and kind in EARLIER_OUTPUTS):
            what = "an assistant message" if role == "assistant" else f"an item of type {kind!r}"
            raise InvalidRequest(
                f"{where} is {what}, an earlier output: continue a conversation with previous_response_id "
                "(the server keeps each turn's images and the model's thought signatures, which a "
                "multi-turn edit needs) and send only this turn's user input",
                param=where,
                code="unsupported_input",
            )
        if role not in ("user", "system", "developer") or kind not in (None, "message"):
            raise InvalidRequest(
                f"{where} has role {role!r} and type {kind!r}: input takes messages with role "
                f"{one_of(['user', 'system', 'developer'])}",
                param=f"{where}.role" if kind in (None, "message") else f"{where}.type",
                code="invalid_input",
            )
        system = role != "user"
        content = item.get("content")
        if isinstance(content, str):
            (parsed.system if system else parsed.texts).append(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                _add_part(parsed, part, f"{where}.content[{j}]", system=system)
        else:
            raise InvalidRequest(
                f"{where}.content {shown(content)} is not valid: give a string or a list of content parts",
                param=f"{where}.content",
                code="invalid_input",
            )
    return parsed


def image_tool(tools: list[dict[str, Any]] | None) -> tuple[ImageTool | None, str]:
    """The request's image_generation tool (None without one) and where it sits in ``tools``."""
    found: tuple[ImageTool | None, str] = (None, "tools[0]")
    for i, tool in enumerate(tools or []):
        where = f"tools[{i}]"
        kind = tool.get("type")
        if kind != "image_generation":
            raise InvalidRequest(
                f"{where} has type {kind!r}: pixelgate's image models take only the image_generation tool",
                param=f"{where}.type",
                code="unsupported_tool",
            )
        if found[0] is not None:
            raise InvalidRequest(
                f"{where} is a second image_generation tool: give one", param=where, code="invalid_tool"
            )
        try:
            found = (parse_model(ImageTool, tool), where)
        except InvalidRequest as exc:
            raise _respelled(exc, where, exc.param) from None
    return found


def _respelled(exc: InvalidRequest, tool_at: str, field: str | None) -> InvalidRequest:
    """``exc`` about the tool's ``field`` (as ``/v1/images/generations`` names it) with the field named where
    it sits in this request (``tools[0].size``)."""
    if field is None or exc.param != field:
        return exc
    spelled = f"{tool_at}.{field}"
    return type(exc)(exc.message.replace(field, spelled, 1), param=spelled, code=exc.code)


def pick_model(
    body: ResponseBody, tool: ImageTool | None, tool_at: str, catalog: Catalog, default_model: str
) -> tuple[str, str]:
    """The image model that draws, and the field that named it (see the module docstring)."""
    tool_model = tool.model if tool is not None else None
    if tool_model is not None and tool_model in catalog:
        return tool_model, f"{tool_at}.model"
    if body.model is not None and body.model in catalog:
        return body.model, "model"
    if body.model is None and tool_model is None:
        return default_model, "model"
    served = (
        f"name one of {one_of(catalog.ids)} as model, or as the image_generation tool's model (the "
        "gateway's operator can map other names to these with [aliases] in pixelgate.toml)"
    )
    if body.model is not None and tool_model is not None:
        message = (
            f"neither model {body.model!r} nor {tool_at}.model {tool_model!r} is an image model this "
            f"gateway serves: {served}"
        )
    else:
        field = "model" if tool_model is None else f"{tool_at}.model"
        message = f"{field} {body.model or tool_model!r} is not an image model this gateway serves: {served}"
    raise NotFound(
        message, param="model" if tool_model is None else f"{tool_at}.model", code="model_not_found"
    )


def _want_text(text: dict[str, Any] | None) -> bool:
    fmt = text.get("format") if text else None
    return isinstance(fmt, dict) and fmt.get("type") == "text"


def to_image_request(
    body: ResponseBody,
    tool: ImageTool | None,
    tool_at: str,
    model: tuple[str, str],
    parsed: _Input,
    catalog: Catalog,
) -> ImageRequest:
    """The request in pixelgate's terms; the tool's options are read by ``/v1/images/generations``'s own
    code (``size`` → aspect ratio and size, the checks of ``quality``, ``partial_images``, ``background``)."""
    tool = tool or ImageTool(type="image_generation")
    if tool.output_format is not None and tool.output_format.lower() not in (*OUTPUT_FORMATS, "jpg"):
        raise InvalidRequest(
            f"{tool_at}.output_format {tool.output_format!r} is not made by these models: use "
            f"{one_of(OUTPUT_FORMATS)}",
            param=f"{tool_at}.output_format",
            code="invalid_output_format",
        )
    as_images = ImageBody(
        model=model[0],
        prompt="\n".join(parsed.texts),
        size=tool.size,
        quality=tool.quality,
        output_format=tool.output_format.lower() if tool.output_format else None,
        output_compression=tool.output_compression,
        partial_images=tool.partial_images,
        background=tool.background,
        seed=body.seed,
        temperature=body.temperature,
        top_p=body.top_p,
        thinking_level=body.thinking_level,
        user=body.user,
    )
    try:
        request = images_request(as_images, catalog, model[0])
    except InvalidRequest as exc:
        raise _respelled(exc, tool_at, exc.param if exc.param in TOOL_FIELDS else None) from None
    system = [*([body.instructions] if body.instructions else []), *parsed.system]
    history = "previous_response_id" if body.previous_response_id else "input"
    return request.model_copy(
        update={
            "system_instruction": "\n".join(system) or None,
            "want_text": _want_text(body.text),
            # The real upstream sends its interim images only with its thoughts.
            "include_thoughts": bool(body.stream and tool.partial_images),
            "metadata": dict(body.metadata or {}),
            "wire_names": {
                "model": model[1],
                "prompt": "input",
                "references": "input",
                "aspect_ratio": f"{tool_at}.size",
                "image_size": f"{tool_at}.size",
                "output_compression": f"{tool_at}.output_compression",
                "seed": "seed",
                "temperature": "temperature",
                "top_p": "top_p",
                "thinking_level": "thinking_level",
                "history": history,
                "previous_interaction_id": "previous_response_id",
            },
        }
    )


def _mask(tool: ImageTool | None, tool_at: str) -> ReferenceInput | None:
    if tool is None or tool.input_image_mask is None:
        return None
    field = f"{tool_at}.input_image_mask.image_url"
    url = tool.input_image_mask.get("image_url")
    if not isinstance(url, str) or not url:
        raise InvalidRequest(
            f"{tool_at}.input_image_mask gives no image_url: give the mask as a data: URL or an http(s) URL "
            "(a file_id is not served here)",
            param=field,
            code="invalid_image",
        )
    return ReferenceInput(source=url, field=field)


def _check_flags(body: ResponseBody) -> None:
    if body.conversation is not None:
        raise InvalidRequest(
            "conversation is not served: continue a conversation with previous_response_id",
            param="conversation",
            code="unsupported_conversation",
        )
    if body.store is False and body.background:
        raise InvalidRequest(
            "background: true needs store: true (a background response is read back later)",
            param="store",
            code="invalid_store",
        )


# --- routes ---------------------------------------------------------------------------------------------


@contextmanager
def _previous_named() -> Iterator[None]:
    """The conversation's errors (worded for Interactions' ``previous_interaction_id``) in this API's words."""
    try:
        yield
    except (NotFound, InvalidRequest) as exc:
        if exc.param != "previous_response_id":
            raise
        raise type(exc)(
            exc.message.replace("interaction", "response"),
            param=exc.param,
            code=PREVIOUS_CODES.get(exc.code, exc.code),
        ) from None


async def create_response(
    request: Request, service: ServiceDep, links: LinksDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    data = await read_json_object(request)
    if isinstance(data.get("background"), str):
        raise InvalidRequest(
            f"background {shown(data['background'])} is not valid: the response's background is true (answer at "
            "once, then poll) or false; the image's background goes in the image_generation tool's background "
            "(auto or opaque; transparent is not served: these models make opaque images)",
            param="background",
            code="invalid_background",
        )
    body = parse_model(ResponseBody, data)
    _check_flags(body)
    tool, tool_at = image_tool(body.tools)
    model = pick_model(body, tool, tool_at, service.catalog, settings.default_model)
    parsed = parse_input(body.input)
    image_request = to_image_request(body, tool, tool_at, model, parsed, service.catalog)
    with _previous_named():
        task = await service.submit(
            image_request,
            references=parsed.images,
            mask=_mask(tool, tool_at),
            continue_from=body.previous_response_id,
            dialect="openai",
            caller_waits=not body.background,
            response_format="b64_json",
            caller=caller,
            idempotency_key=request.headers.get("idempotency-key"),
        )
    if body.stream:
        events = stream_response(
            service,
            links,
            task,
            partial_images=(tool.partial_images or 0) if tool else 0,
            keepalive=settings.stream_keepalive_seconds,
            forget=body.store is False,
        )
        return StreamingResponse(events, media_type="text/event-stream")
    if body.background:
        return ImageJSONResponse(await render_response(links, task))
    done = await service.wait_for_result(task.id)
    answer = await render_response(links, done)
    if body.store is False:
        # Forgotten now; its images once the answer, which reads them as it is sent, is out.
        await service.delete(task.id, keep_images=True)
        return ImageJSONResponse(answer, then=partial(service.delete_images, task.id))
    return ImageJSONResponse(answer)


async def get_response(response_id: str, service: ServiceDep, links: LinksDep, caller: CallerDep) -> Response:
    with task_called("response", response_id, param="response_id"):
        task = await service.get(response_id, owner=caller.owner)
    return ImageJSONResponse(await render_response(links, task))


async def cancel_response(
    response_id: str, service: ServiceDep, links: LinksDep, caller: CallerDep
) -> Response:
    with task_called("response", response_id, param="response_id"):
        task = await service.cancel(response_id, owner=caller.owner)
    return ImageJSONResponse(await render_response(links, task))


async def delete_response(response_id: str, service: ServiceDep, caller: CallerDep) -> dict[str, Any]:
    with task_called("response", response_id, param="response_id"):
        await service.delete(response_id, owner=caller.owner)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


for _prefix in ("/v1", ""):
    router.add_api_route(f"{_prefix}/responses", create_response, methods=["POST"], response_model=None)
    router.add_api_route(f"{_prefix}/responses/{{response_id}}", get_response, methods=["GET"])
    router.add_api_route(f"{_prefix}/responses/{{response_id}}", delete_response, methods=["DELETE"])
    router.add_api_route(f"{_prefix}/responses/{{response_id}}/cancel", cancel_response, methods=["POST"])
