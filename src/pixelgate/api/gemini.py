"""The Gemini API's ``generateContent`` surface, translation only.

- ``POST /{v1beta|v1}/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``: ``contents``
  (the last one is this turn; earlier ones are the conversation, model turns with their thought
  signatures), ``generationConfig`` (``responseModalities``, ``imageConfig``, ``thinkingConfig``,
  ``candidateCount``, ``seed``, ``temperature``, ``topP``), ``systemInstruction`` and the
  ``googleSearch`` tool. The answer is a ``GenerateContentResponse`` with one candidate per image.
- ``GET /{v}/models`` and ``GET /{v}/models/{model}``: the catalog as Gemini ``Model`` resources (the
  ``/v1`` paths are shared with OpenAI's model list: see ``api/models.py``).

A stream cannot send anything before the image exists, so while the model works it sends blank lines,
which every SSE reader skips, to keep proxies from closing an idle connection on a two-minute 4K image.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ConfigDict

from pixelgate.api import imagen
from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import CatalogDep, ImageLinks, LinksDep, ServiceDep, SettingsDep
from pixelgate.api.errors import gemini_dialect, gemini_error
from pixelgate.api.gemini_common import (
    API_VERSIONS,
    ImageConfig,
    Spelling,
    WireBody,
    input_modalities,
    keepalive_until_done,
    media_input,
    normalize_signature,
    output_format_of,
    output_modalities,
    parse_wire,
)
from pixelgate.api.paging import PageSize, offset_token
from pixelgate.api.parsing import read_json_object
from pixelgate.api.responses import ImageJSONResponse, inline_files
from pixelgate.auth.keys import Caller
from pixelgate.catalog import Catalog, ModelSpec
from pixelgate.core.errors import InvalidRequest, NotFound, PixelgateError, one_of
from pixelgate.core.references import ReferenceInput, TurnInput, VideoSource
from pixelgate.core.request import ImageRequest
from pixelgate.core.task import Task
from pixelgate.tasks.service import TaskService

router = APIRouter(dependencies=[Depends(gemini_dialect), Depends(authenticate)])

PAGE_SIZE = PageSize("pageSize", default=50, most=1000)  # models, files and batches alike


class Blob(WireBody):
    data: str | None = None
    mime_type: str | None = None


class FileData(WireBody):
    file_uri: str | None = None
    mime_type: str | None = None


class Part(WireBody):
    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    thought: bool | None = None
    thought_signature: str | None = None


class Content(WireBody):
    role: str | None = None
    parts: list[Part] = []


class ThinkingConfig(WireBody):
    include_thoughts: bool | None = None
    thinking_level: str | None = None
    thinking_budget: int | None = None  # accepted for old clients; image models set no budget


class GenerationConfig(WireBody):
    response_modalities: list[str] | None = None
    image_config: ImageConfig | None = None
    thinking_config: ThinkingConfig | None = None
    candidate_count: int | None = None
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None


class GoogleSearch(WireBody):
    # A list, or the REST form: {"web_search": {}, "image_search": {}}.
    search_types: list[str] | dict[str, Any] | None = None


class Tool(WireBody):
    model_config = ConfigDict(extra="allow")
    google_search: GoogleSearch | None = None


class GenerateContentBody(WireBody):
    contents: list[Content] | Content
    generation_config: GenerationConfig | None = None
    system_instruction: Content | str | None = None
    tools: list[Tool] | None = None


def split_model_action(model_action: str) -> tuple[str, str]:
    model, sep, action = model_action.partition(":")
    if not sep or not model:
        raise NotFound(
            f"there is no endpoint POST models/{model_action}: use models/{{model}}:generateContent or "
            "models/{model}:streamGenerateContent",
            code="unknown_endpoint",
        )
    return model.removeprefix("models/"), action


def _turn_parts(
    content: Content, index: int, spell: Spelling
) -> tuple[str, list[ReferenceInput], list[VideoSource], str | None]:
    """The text, images, videos and thought signature of one content (thought parts are skipped)."""
    texts: list[str] = []
    images: list[ReferenceInput] = []
    videos: list[VideoSource] = []
    signature: str | None = None
    for j, part in enumerate(content.parts):
        where = f"contents[{index}].parts[{j}]"
        if part.thought_signature and (signature is None or part.inline_data is not None):
            signature = normalize_signature(part.thought_signature)  # the image part's own wins
        if part.thought:
            continue
        if part.text is not None:
            texts.append(part.text)
        blob, file = part.inline_data, part.file_data
        if blob is not None or file is not None:
            media = media_input(
                data=blob.data if blob else None,
                uri=file.file_uri if file else None,
                mime_type=(blob.mime_type if blob else None) or (file.mime_type if file else None),
                field=spell(f"{where}.{'inline_data' if blob else 'file_data'}"),
            )
            if isinstance(media, VideoSource):
                videos.append(media)
            else:
                images.append(media)
    return "\n".join(texts), images, videos, signature


def to_image_request(
    model: str, body: GenerateContentBody, spell: Spelling
) -> tuple[ImageRequest, list[ReferenceInput], list[VideoSource], list[TurnInput]]:
    contents = body.contents if isinstance(body.contents, list) else [body.contents]
    if not contents:
        raise InvalidRequest(
            "contents is empty: send at least one user turn", param="contents", code="missing_field"
        )
    history: list[TurnInput] = []
    for i, content in enumerate(contents[:-1]):
        role = _role(content, i, spell)
        text, images, videos, signature = _turn_parts(content, i, spell)
        if videos:
            raise InvalidRequest(
                f"contents[{i}] holds a video: give video context in the last user turn only",
                param=f"contents[{i}]",
                code="invalid_media",
            )
        history.append(TurnInput(role=role, text=text, images=tuple(images), signature=signature))
    last = len(contents) - 1
    if _role(contents[last], last, spell) == "model":
        raise InvalidRequest(
            f"contents[{last}] is a model turn: the last content must be the user's turn to answer",
            param=f"contents[{last}].role",
            code="invalid_contents",
        )
    prompt, references, videos, _ = _turn_parts(contents[last], last, spell)

    config = body.generation_config or GenerationConfig()
    image_config = config.image_config or ImageConfig()
    thinking = config.thinking_config or ThinkingConfig()
    modalities = [m.upper() for m in config.response_modalities or ["IMAGE"]]
    if "IMAGE" not in modalities:
        field = spell("generation_config.response_modalities")
        raise InvalidRequest(
            f"{field} {config.response_modalities} leaves out IMAGE: pixelgate serves image models; use "
            '["IMAGE"] or ["TEXT", "IMAGE"]',
            param=field,
            code="invalid_response_modalities",
        )
    search_types, search_field = _search_types(body.tools, spell)
    level = thinking.thinking_level
    request = ImageRequest(
        model=model,
        prompt=prompt,
        n=config.candidate_count or 1,
        aspect_ratio=image_config.aspect_ratio,
        image_size=image_config.image_size,
        output_format=output_format_of(
            image_config.output_mime_type, "generationConfig.imageConfig.outputMimeType"
        )
        or "png",
        output_compression=image_config.output_compression_quality,
        seed=config.seed,
        temperature=config.temperature,
        top_p=config.top_p,
        thinking_level=level.lower() if level and level.upper() != "THINKING_LEVEL_UNSPECIFIED" else None,
        system_instruction=_system_text(body.system_instruction),
        search_types=search_types,
        want_text="TEXT" in modalities,
        include_thoughts=bool(thinking.include_thoughts),
        wire_names={
            "model": "model",
            "prompt": spell(f"contents[{last}].parts"),
            "n": spell("generation_config.candidate_count"),
            "aspect_ratio": spell("generation_config.image_config.aspect_ratio"),
            "image_size": spell("generation_config.image_config.image_size"),
            "output_compression": spell("generation_config.image_config.output_compression_quality"),
            "seed": spell("generation_config.seed"),
            "temperature": spell("generation_config.temperature"),
            "top_p": spell("generation_config.top_p"),
            "thinking_level": spell("generation_config.thinking_config.thinking_level"),
            "references": spell(f"contents[{last}].parts"),
            "history": "contents",
            "videos": spell(f"contents[{last}].parts"),
            "search_types": search_field,
        },
    )
    return request, references, videos, history


def _system_text(instruction: Content | str | None) -> str | None:
    if instruction is None or isinstance(instruction, str):
        return instruction
    return "\n".join(part.text for part in instruction.parts if part.text) or None


def _role(content: Content, index: int, spell: Spelling) -> str:
    if content.role in (None, "user", "model"):
        return content.role or "user"
    field = spell(f"contents[{index}].role")
    raise InvalidRequest(
        f"{field} {content.role!r} is not valid: use user or model (a system prompt goes in "
        f"{spell('system_instruction')})",
        param=field,
        code="invalid_role",
    )


def _search_types(tools: list[Tool] | None, spell: Spelling) -> tuple[list[str] | None, str]:
    """The search types the googleSearch tool allows (None without the tool), and its field name."""
    search: list[str] | None = None
    field = spell("tools[0].google_search.search_types")
    for i, tool in enumerate(tools or []):
        if tool.google_search is not None:
            kinds = tool.google_search.search_types
            search = list(kinds) if kinds else []
            field = spell(f"tools[{i}].google_search.search_types")
            continue
        names = [spell(f"tools[{i}].{name}").rsplit(".", 1)[-1] for name in sorted(tool.model_extra or {})]
        raise InvalidRequest(
            f"tools[{i}] is {', '.join(names) or 'an empty tool'}: image models take only the "
            f"{spell(f'tools[{i}].google_search').rsplit('.', 1)[-1]} tool",
            param=f"tools[{i}]",
            code="unsupported_tool",
        )
    return search, field


async def _submit(
    model_action: str, request: Request, service: TaskService, caller: Caller
) -> tuple[Task, bool]:
    model, action = split_model_action(model_action)
    if action not in ("generateContent", "streamGenerateContent"):
        raise NotFound(
            f"models/{model}:{action} is not served: pixelgate serves :generateContent, "
            ":streamGenerateContent and :predict (and :batchGenerateContent for batch jobs)",
            code="unknown_endpoint",
        )
    service.catalog.named_by_url(model)
    task = await submit_request(
        service,
        model,
        await read_json_object(request),
        caller,
        caller_waits=True,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return task, action == "streamGenerateContent"


async def submit_request(
    service: TaskService, model: str, data: dict[str, Any], caller: Caller, **how: Any
) -> Task:
    """A ``GenerateContentRequest`` made a task (sent alone, or as a batch's line: ``how`` says which)."""
    body, spell = parse_wire(GenerateContentBody, data, camel=True)
    image_request, references, videos, history = to_image_request(model, body, spell)
    return await service.submit(
        image_request,
        references=references,
        videos=videos,
        history=history,
        dialect="gemini",
        caller=caller,
        **how,
    )


async def render_response(links: ImageLinks, task: Task) -> dict[str, Any]:
    """A ``GenerateContentResponse``: one candidate per image, thoughts first where asked for."""
    result = task.result
    assert result is not None
    request = task.request
    candidates = []
    for index, image in enumerate(result.images):
        parts: list[dict[str, Any]] = []
        if index == 0 and request.include_thoughts:
            for thought in result.thoughts:
                parts.append({"text": thought.text, "thought": True})
                for interim in thought.images:
                    data = await links.image_base64(interim)
                    parts.append(
                        {"inlineData": {"mimeType": interim.mime_type, "data": data}, "thought": True}
                    )
        signature = result.signature if index == 0 else None
        text = image.text or (result.text if index == 0 else None)
        if text:
            parts.append({"text": text, **({"thoughtSignature": signature} if signature else {})})
        image_part: dict[str, Any] = {
            "inlineData": {"mimeType": image.mime_type, "data": await links.image_base64(image)}
        }
        if signature:
            image_part["thoughtSignature"] = signature
        parts.append(image_part)
        candidate: dict[str, Any] = {
            "content": {"role": "model", "parts": parts},
            "finishReason": "STOP",
            "index": index,
        }
        if index == 0 and result.searches:
            grounding: dict[str, Any] = {
                "searchEntryPoint": {"renderedContent": "".join(s.suggestions for s in result.searches)}
            }
            for search_type, field in (
                ("web_search", "webSearchQueries"),
                ("image_search", "imageSearchQueries"),
            ):
                queries = [q for s in result.searches if s.search_type == search_type for q in s.queries]
                if queries:
                    grounding[field] = queries
            candidate["groundingMetadata"] = grounding
        candidates.append(candidate)
    return {
        "candidates": candidates,
        "usageMetadata": usage_metadata(task),
        "modelVersion": request.model,
        "responseId": task.id,
    }


def usage_metadata(task: Task) -> dict[str, Any]:
    assert task.result is not None
    usage = task.result.usage
    metadata: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.total_tokens,
        "promptTokensDetails": [
            {"modality": m, "tokenCount": n} for m, n in input_modalities(usage, upper=True)
        ],
        "candidatesTokensDetails": [
            {"modality": m, "tokenCount": n} for m, n in output_modalities(usage, upper=True)
        ],
    }
    if usage.thought_tokens:
        metadata["thoughtsTokenCount"] = usage.thought_tokens
    return metadata


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def _stream(
    service: TaskService, links: ImageLinks, task: Task, keepalive: float
) -> AsyncIterator[bytes]:
    """The answer as server-sent events: thoughts, then text, then the image with the usage."""
    waiter = asyncio.ensure_future(service.wait_for_result(task.id))
    try:
        # Blank lines: Google's SDK reads a comment line as a (broken) JSON chunk, but skips blank ones.
        async for beat in keepalive_until_done(waiter, keepalive, b"\n"):
            yield beat
        try:
            finished = waiter.result()
        except PixelgateError as error:
            yield _sse(gemini_error(error))
            return
        response = await inline_files(await render_response(links, finished))
        first = response["candidates"][0]
        parts = first["content"]["parts"]
        head = {k: v for k, v in response.items() if k in ("modelVersion", "responseId")}
        for part in parts[:-1]:
            yield _sse({"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}], **head})
        first["content"]["parts"] = parts[-1:]
        yield _sse(response)
    finally:
        waiter.cancel()


async def generate_content(
    model_action: str,
    request: Request,
    service: ServiceDep,
    links: LinksDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> Response:
    model, action = split_model_action(model_action)
    if action == "predict":  # the Imagen-style call (api/imagen.py)
        return await imagen.predict(model, request, service, links, caller)
    task, streaming = await _submit(model_action, request, service, caller)
    if streaming:
        events = _stream(service, links, task, settings.stream_keepalive_seconds)
        return StreamingResponse(events, media_type="text/event-stream")
    done = await service.wait_for_result(task.id)
    return ImageJSONResponse(await render_response(links, done))


for _version in API_VERSIONS:
    router.add_api_route(
        f"/{_version}/models/{{model_action:path}}", generate_content, methods=["POST"], response_model=None
    )


def model_resource(spec: ModelSpec) -> dict[str, Any]:
    """A catalog entry as a Gemini ``Model`` (with pixelgate's full capabilities beside it)."""
    thinks = bool(spec.thinking_levels) or spec.always_thinks
    return {
        "name": f"models/{spec.id}",
        "baseModelId": spec.upstream_id,
        "version": spec.upstream_id,
        "displayName": spec.name,
        "description": (
            f"{spec.name}: {one_of(list(spec.image_sizes))} images in {len(spec.aspect_ratios)} aspect "
            f"ratios, up to {spec.max_reference_images} reference images"
        ),
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "batchGenerateContent"],
        "thinking": thinks,
        "temperature": 1.0,
        "maxTemperature": 2.0,
        "topP": 0.95,
        "imageCapabilities": spec.describe(),
    }


def model_page(catalog: Catalog, page_size: str | None, page_token: str | None) -> dict[str, Any]:
    ids = catalog.ids
    size = PAGE_SIZE.read(page_size)
    start = offset_token(page_token, "pageToken", len(ids))
    page = ids[start : start + size]
    body: dict[str, Any] = {"models": [model_resource(catalog.get(m)) for m in page]}
    if start + size < len(ids):
        body["nextPageToken"] = str(start + size)
    return body


def model_by_name(catalog: Catalog, name: str) -> dict[str, Any]:
    return model_resource(catalog.named_by_url(name.removeprefix("models/")))


@router.get("/v1beta/models")
async def list_models(
    catalog: CatalogDep,
    pageSize: str | None = None,
    pageToken: str | None = None,
) -> dict[str, Any]:
    return model_page(catalog, pageSize, pageToken)


@router.get("/v1beta/models/{name:path}")
async def get_model(name: str, catalog: CatalogDep) -> dict[str, Any]:
    return model_by_name(catalog, name)
