"""The Gemini Interactions API, translation only: ``POST /{v}/interactions``, ``GET``, ``cancel`` and
``DELETE /{v}/interactions/{id}``, on ``v1beta`` and ``v1``.

An interaction is a task. Its id is the task's id, so any generation of the caller's, whichever dialect
made it, can be read here or continued with ``previous_interaction_id`` (the server keeps the inputs,
outputs and thought signatures of every turn and sends the whole conversation to the model).

``input`` may be a string, one content block, a list of blocks or a list of steps (``user_input``,
``model_output``, ``thought`` with its signature): steps before the last ``user_input`` are the
conversation so far. ``response_format`` is one object or a list (``image``, ``text``).
``background: true`` answers at once with the interaction ``queued`` or ``in_progress``; ``store: false``
forgets it once answered.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import ImageLinks, LinksDep, ServiceDep, SettingsDep
from pixelgate.api.errors import gemini_dialect, task_called
from pixelgate.api.gemini_common import (
    API_VERSIONS,
    ImageConfig,
    WireBody,
    input_modalities,
    iso_time,
    media_input,
    normalize_signature,
    output_format_of,
    output_modalities,
    parse_wire,
)
from pixelgate.api.interaction_stream import stream_interaction
from pixelgate.api.parsing import read_json_object
from pixelgate.api.responses import ImageJSONResponse
from pixelgate.core.errors import InvalidRequest, one_of
from pixelgate.core.references import ReferenceInput, TurnInput, VideoSource
from pixelgate.core.request import ImageRequest
from pixelgate.core.task import Callback, GeneratedImage, Status, Task
from pixelgate.tasks.webhooks import TaskEventNames

router = APIRouter(dependencies=[Depends(gemini_dialect), Depends(authenticate)])

STATUS = {
    Status.QUEUED: "queued",
    Status.RUNNING: "in_progress",
    Status.SUCCEEDED: "completed",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
}
# An interaction's end, in webhooks: Gemini's event names and the status words above.
WEBHOOK_EVENTS = TaskEventNames(
    types={
        Status.SUCCEEDED: "interaction.completed",
        Status.FAILED: "interaction.failed",
        Status.CANCELLED: "interaction.cancelled",
    },
    statuses={status: STATUS[status] for status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)},
)
MODEL_STEP_TYPES = ("model_output", "thought", "google_search_call", "google_search_result")
STEP_TYPES = ("user_input", *MODEL_STEP_TYPES)
DELIVERIES = ("inline", "uri")


class GenerationConfig(WireBody):
    thinking_level: str | None = None
    thinking_summaries: str | None = None
    image_config: ImageConfig | None = None
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None


class WebhookConfig(WireBody):
    """Where this interaction's events go (instead of the registered webhooks), and what they carry."""

    uris: list[str] | None = None
    user_metadata: dict[str, Any] | None = None

    def callback(self) -> Callback | None:
        if not self.uris and self.user_metadata is None:
            return None
        return Callback(
            urls=tuple(self.uris or ()), user_metadata=self.user_metadata, field="webhook_config.uris"
        )


class InteractionBody(WireBody):
    model: str | None = None
    agent: str | None = None
    input: str | dict[str, Any] | list[Any] | None = None
    response_format: dict[str, Any] | list[dict[str, Any]] | None = None
    response_modalities: list[str] | None = None
    generation_config: GenerationConfig | None = None
    tools: list[dict[str, Any]] | None = None
    system_instruction: str | None = None
    previous_interaction_id: str | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    webhook_config: WebhookConfig | None = None


class _Input:
    """``input`` taken apart: this turn's text, images and videos, and the turns before it."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.images: list[ReferenceInput] = []
        self.videos: list[VideoSource] = []
        self.history: list[TurnInput] = []

    def add_blocks(self, blocks: list[Any], where: str) -> None:
        for i, block in enumerate(blocks):
            field = f"{where}[{i}]"
            if not isinstance(block, dict):
                raise InvalidRequest(
                    f'{field} is not a content block: use {{"type": "text", "text": ...}} or '
                    '{"type": "image", "data": ..., "mime_type": ...}',
                    param=field,
                    code="invalid_input",
                )
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise InvalidRequest(
                        f"{field}.text {text!r:.60} is not valid: it must be a string",
                        param=f"{field}.text",
                        code="invalid_input",
                    )
                self.texts.append(text)
            elif kind in ("image", "video"):
                media = media_input(
                    data=_str(block.get("data"), f"{field}.data"),
                    uri=_str(block.get("uri"), f"{field}.uri"),
                    mime_type=_str(block.get("mime_type"), f"{field}.mime_type")
                    or ("video/mp4" if kind == "video" else None),
                    field=field,
                )
                if isinstance(media, VideoSource):
                    self.videos.append(media)
                else:
                    self.images.append(media)
            else:
                raise InvalidRequest(
                    f"{field} has type {kind!r}: image models take {one_of(['text', 'image', 'video'])} blocks",
                    param=f"{field}.type",
                    code="unsupported_content",
                )

    def take_turn(self, role: str, signature: str | None, where: str) -> None:
        if self.videos:
            raise InvalidRequest(
                f"{where} holds a video: give video context in the last user_input step only",
                param=where,
                code="invalid_media",
            )
        self.history.append(
            TurnInput(role=role, text="\n".join(self.texts), images=tuple(self.images), signature=signature)
        )
        self.texts, self.images = [], []


def _str(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(
        f"{field} must be a string, got {type(value).__name__}", param=field, code="invalid_input"
    )


def parse_input(value: str | dict[str, Any] | list[Any] | None) -> _Input:
    parsed = _Input()
    if value is None:
        raise InvalidRequest(
            "input is required: describe the image to generate", param="input", code="missing_field"
        )
    if isinstance(value, str):
        parsed.texts.append(value)
        return parsed
    items = [value] if isinstance(value, dict) else value
    if not any(isinstance(item, dict) and item.get("type") in STEP_TYPES for item in items):
        parsed.add_blocks(items, "input")
        return parsed
    # A list of steps: everything before the last user_input is the conversation so far.
    last_user = max(
        (i for i, s in enumerate(items) if isinstance(s, dict) and s.get("type") == "user_input"), default=-1
    )
    if last_user != len(items) - 1:
        raise InvalidRequest(
            "input ends with a model step: the last step must be the user_input to answer",
            param=f"input[{len(items) - 1}]",
            code="invalid_input",
        )
    # A user_input step is a user turn; the steps between two user_inputs are one model turn: its
    # model_output content, and the signature of its thought step wherever that step sits.
    model_turn: str | None = None  # where the open model turn began
    signature: str | None = None
    for i, step in enumerate(items):
        where = f"input[{i}]"
        kind = step.get("type") if isinstance(step, dict) else None
        if kind == "user_input":
            if model_turn is not None:
                parsed.take_turn("model", signature, model_turn)
                model_turn, signature = None, None
            content = step.get("content") or []
            parsed.add_blocks(content if isinstance(content, list) else [content], f"{where}.content")
            if i < last_user:
                parsed.take_turn("user", None, where)
            continue
        if kind not in MODEL_STEP_TYPES:
            raise InvalidRequest(
                f"{where} has type {kind!r}: a step of input is {one_of(['user_input', *MODEL_STEP_TYPES])}",
                param=f"{where}.type",
                code="invalid_input",
            )
        model_turn = model_turn or where
        if kind == "thought":
            given = _str(step.get("signature"), f"{where}.signature")
            signature = normalize_signature(given) if given else signature
        elif kind == "model_output":
            content = step.get("content") or []
            parsed.add_blocks(content if isinstance(content, list) else [content], f"{where}.content")
        # Search steps are the model's own record of what it looked up: nothing to send back.
    return parsed


class _Format:
    def __init__(self) -> None:
        self.aspect_ratio: str | None = None
        self.image_size: str | None = None
        self.output_format: str | None = None
        self.delivery = "inline"
        self.want_text = False


def parse_response_format(value: dict[str, Any] | list[dict[str, Any]] | None) -> _Format:
    parsed = _Format()
    entries = [] if value is None else [value] if isinstance(value, dict) else value
    seen_image = False
    for i, entry in enumerate(entries):
        field = "response_format" if isinstance(value, dict) else f"response_format[{i}]"
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind == "text":
            parsed.want_text = True
        elif kind == "image":
            if seen_image:
                raise InvalidRequest(
                    f"{field} is a second image format: give one", param=field, code="invalid_response_format"
                )
            seen_image = True
            parsed.aspect_ratio = _str(entry.get("aspect_ratio"), f"{field}.aspect_ratio")
            parsed.image_size = _str(entry.get("image_size"), f"{field}.image_size")
            parsed.output_format = output_format_of(
                _str(entry.get("mime_type"), f"{field}.mime_type"), f"{field}.mime_type"
            )
            delivery = entry.get("delivery")
            delivery = "inline" if delivery is None else delivery
            if delivery not in DELIVERIES:
                raise InvalidRequest(
                    f"{field}.delivery {delivery!r} is not valid: use {one_of(DELIVERIES)}",
                    param=f"{field}.delivery",
                    code="invalid_response_format",
                )
            parsed.delivery = delivery
        else:
            raise InvalidRequest(
                f"{field} has type {kind!r}: image models answer with {one_of(['image', 'text'])}",
                param=f"{field}.type",
                code="invalid_response_format",
            )
    if entries and not seen_image:
        raise InvalidRequest(
            'response_format asks for no image: pixelgate serves image models; add {"type": "image"}',
            param="response_format",
            code="invalid_response_format",
        )
    return parsed


def _search_types(tools: list[dict[str, Any]] | None) -> tuple[list[str] | None, str]:
    """The search types the google_search tool allows (None without the tool), and its field name."""
    search: list[str] | None = None
    field = "tools[0].search_types"
    for i, tool in enumerate(tools or []):
        kind = tool.get("type")
        if kind != "google_search":
            raise InvalidRequest(
                f"tools[{i}] has type {kind!r}: image models take only the google_search tool",
                param=f"tools[{i}].type",
                code="unsupported_tool",
            )
        types = tool.get("search_types")
        if types is not None and not (isinstance(types, list) and all(isinstance(t, str) for t in types)):
            raise InvalidRequest(
                f'tools[{i}].search_types must be a list of strings such as ["web_search", "image_search"]',
                param=f"tools[{i}].search_types",
                code="invalid_tool",
            )
        search = list(types or [])
        field = f"tools[{i}].search_types"
    return search, field


def to_image_request(body: InteractionBody, default_model: str, parsed: _Input, fmt: _Format) -> ImageRequest:
    config = body.generation_config or GenerationConfig()
    image_config = config.image_config or ImageConfig()
    summaries = (config.thinking_summaries or "auto").lower()
    modalities = [m.lower() for m in body.response_modalities or []]
    search_types, search_field = _search_types(body.tools)
    return ImageRequest(
        model=body.model or default_model,
        prompt="\n".join(parsed.texts),
        aspect_ratio=fmt.aspect_ratio or image_config.aspect_ratio,
        image_size=fmt.image_size or image_config.image_size,
        output_format=fmt.output_format or "png",
        seed=config.seed,
        temperature=config.temperature,
        top_p=config.top_p,
        thinking_level=config.thinking_level,
        system_instruction=body.system_instruction,
        search_types=search_types,
        want_text=fmt.want_text or "text" in modalities,
        include_thoughts=summaries != "none",
        wire_names={
            "model": "model",
            "prompt": "input",
            "aspect_ratio": "response_format.aspect_ratio"
            if fmt.aspect_ratio
            else "generation_config.image_config.aspect_ratio",
            "image_size": "response_format.image_size"
            if fmt.image_size
            else "generation_config.image_config.image_size",
            "seed": "generation_config.seed",
            "temperature": "generation_config.temperature",
            "top_p": "generation_config.top_p",
            "thinking_level": "generation_config.thinking_level",
            "references": "input",
            "history": "previous_interaction_id" if body.previous_interaction_id else "input",
            "previous_interaction_id": "previous_interaction_id",
            "videos": "input",
            "search_types": search_field,
        },
    )


def _check_flags(body: InteractionBody, fmt: _Format) -> None:
    if body.agent is not None:
        raise InvalidRequest(
            f"agent {body.agent!r} is not served: pixelgate runs image models; give model instead",
            param="agent",
            code="unsupported_agent",
        )
    if body.stream and body.background:
        raise InvalidRequest(
            "stream: true and background: true exclude each other: stream the answer, or poll for it",
            param="stream",
            code="invalid_stream",
        )
    if body.store is False and body.background:
        raise InvalidRequest(
            "background: true needs store: true (a background interaction is read back later)",
            param="store",
            code="invalid_store",
        )
    if body.store is False and fmt.delivery == "uri":
        raise InvalidRequest(
            'response_format.delivery "uri" needs store: true (the URI serves the stored image)',
            param="store",
            code="invalid_store",
        )


async def _image_block(
    links: ImageLinks, request: Request, task: Task, image: GeneratedImage
) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "image", "mime_type": image.mime_type}
    if task.response_format == "uri":
        block["uri"] = await links.image_url(request, task, image)
    else:
        block["data"] = await links.image_base64(image)
    return block


async def render_interaction(
    links: ImageLinks, request: Request, task: Task, *, include_input: bool = False
) -> dict[str, Any]:
    ask = task.request
    body: dict[str, Any] = {
        "id": task.id,
        "status": STATUS[task.status],
        "model": ask.model,
        "created": iso_time(task.created_at),
        "updated": iso_time(task.completed_at or task.started_at or task.created_at),
    }
    if ask.continues:
        body["previous_interaction_id"] = ask.continues
    steps: list[dict[str, Any]] = []
    if include_input:
        content: list[dict[str, Any]] = [{"type": "text", "text": ask.prompt}]
        for ref in ask.references:
            content.append(
                {"type": "image", "mime_type": ref.mime_type, "data": await links.blob_base64(ref.blob_key)}
            )
        steps.append({"type": "user_input", "content": content})
    result = task.result
    if task.status is Status.SUCCEEDED and result is not None and not task.result_expired():
        thoughts = result.thoughts if ask.include_thoughts else ()
        for i, thought in enumerate(thoughts):
            summary = [{"type": "text", "text": thought.text}]
            summary += [await _image_block(links, request, task, image) for image in thought.images]
            step: dict[str, Any] = {"type": "thought", "summary": summary}
            if result.signature and i == len(thoughts) - 1:
                step["signature"] = result.signature
            steps.append(step)
        if result.signature and not thoughts:
            steps.append({"type": "thought", "signature": result.signature})
        for i, search in enumerate(result.searches):
            call_id = f"{task.id}-search-{i}"
            steps.append(
                {
                    "type": "google_search_call",
                    "id": call_id,
                    "search_type": search.search_type,
                    "arguments": {"queries": list(search.queries)},
                }
            )
            steps.append(
                {
                    "type": "google_search_result",
                    "call_id": call_id,
                    "result": [{"search_suggestions": search.suggestions}],
                }
            )
        output: list[dict[str, Any]] = []
        if result.text:
            output.append({"type": "text", "text": result.text})
        output += [await _image_block(links, request, task, image) for image in result.images]
        steps.append({"type": "model_output", "content": output})
        body["usage"] = _usage(task)
    elif task.status is Status.SUCCEEDED:
        body["errors"] = [
            {"code": "result_expired", "message": f"the images of interaction {task.id} expired and are gone"}
        ]
    error = task.error
    if error is not None:
        body["errors"] = [{"code": error.code, "message": error.message}]
    body["steps"] = steps
    return body


def _usage(task: Task) -> dict[str, Any]:
    assert task.result is not None
    usage = task.result.usage
    return {
        "total_input_tokens": usage.input_tokens,
        "total_output_tokens": usage.output_tokens,
        "total_thought_tokens": usage.thought_tokens,
        "total_tokens": usage.total_tokens,
        "input_tokens_by_modality": [
            {"modality": m, "tokens": n} for m, n in input_modalities(usage, upper=False)
        ],
        "output_tokens_by_modality": [
            {"modality": m, "tokens": n} for m, n in output_modalities(usage, upper=False)
        ],
    }


async def create_interaction(
    request: Request, service: ServiceDep, links: LinksDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    body, _ = parse_wire(InteractionBody, await read_json_object(request), camel=False)
    fmt = parse_response_format(body.response_format)
    _check_flags(body, fmt)
    parsed = parse_input(body.input)
    image_request = to_image_request(body, settings.default_model, parsed, fmt)
    task = await service.submit(
        image_request,
        references=parsed.images,
        videos=parsed.videos,
        history=parsed.history,
        continue_from=body.previous_interaction_id,
        dialect="interactions",
        caller_waits=not body.background,
        response_format=fmt.delivery,
        caller=caller,
        idempotency_key=request.headers.get("idempotency-key"),
        callback=body.webhook_config.callback() if body.webhook_config else None,
    )
    if body.background:
        return ImageJSONResponse(await render_interaction(links, request, task))
    if body.stream:
        events = stream_interaction(
            service,
            request,
            task,
            partial(render_interaction, links),
            keepalive=settings.stream_keepalive_seconds,
            forget=body.store is False,
        )
        return StreamingResponse(events, media_type="text/event-stream")
    done = await service.wait_for_result(task.id)
    answer = await render_interaction(links, request, done)
    if body.store is False:
        # Forgotten now; its images once the answer, which reads them as it is sent, is out.
        await service.delete(task.id, keep_images=True)
        return ImageJSONResponse(answer, then=partial(service.delete_images, task.id))
    return ImageJSONResponse(answer)


async def get_interaction(
    interaction_id: str, request: Request, service: ServiceDep, links: LinksDep, caller: CallerDep
) -> Response:
    include_input = request.query_params.get("include_input", "").lower() == "true"
    with task_called("interaction", interaction_id, param="id"):
        task = await service.get(interaction_id, owner=caller.owner)
    return ImageJSONResponse(await render_interaction(links, request, task, include_input=include_input))


async def cancel_interaction(
    interaction_id: str, request: Request, service: ServiceDep, links: LinksDep, caller: CallerDep
) -> Response:
    with task_called("interaction", interaction_id, param="id"):
        task = await service.cancel(interaction_id, owner=caller.owner)
    return ImageJSONResponse(await render_interaction(links, request, task))


async def delete_interaction(interaction_id: str, service: ServiceDep, caller: CallerDep) -> dict[str, Any]:
    with task_called("interaction", interaction_id, param="id"):
        await service.delete(interaction_id, owner=caller.owner)
    return {}


for _version in API_VERSIONS:
    router.add_api_route(
        f"/{_version}/interactions", create_interaction, methods=["POST"], response_model=None
    )
    router.add_api_route(f"/{_version}/interactions/{{interaction_id}}", get_interaction, methods=["GET"])
    router.add_api_route(
        f"/{_version}/interactions/{{interaction_id}}/cancel", cancel_interaction, methods=["POST"]
    )
    router.add_api_route(
        f"/{_version}/interactions/{{interaction_id}}", delete_interaction, methods=["DELETE"]
    )
