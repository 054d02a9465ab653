"""The Gemini API (generativelanguage.googleapis.com): ``generateContent``, or Interactions where a channel
asks for it (``options = { api = "interactions" }``).

Everything the catalog lets a caller choose reaches Google in Google's own fields: aspect ratio and image
size in ``generationConfig.imageConfig`` (the size only where the model offers more than one), thinking
level and ``includeThoughts`` in ``thinkingConfig``, references and video as inline parts, the search tool
with its search types, and earlier turns as ``contents`` whose model turns carry their thought signature
back (Gemini 3 refuses an edit of its own image without it).

The key goes in the ``x-goog-api-key`` header, never in the URL, so no error or log line can carry it.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pixelgate.catalog import ModelSpec
from pixelgate.config import ChannelConfig
from pixelgate.core.errors import UpstreamRejected
from pixelgate.core.request import SKIP_THOUGHT_SIGNATURE
from pixelgate.core.task import SearchStep, Usage
from pixelgate.providers.base import Generation, ProviderImage, ProviderResult, ProviderThought
from pixelgate.providers.http import UpstreamHttp, as_count
from pixelgate.providers.registry import ProviderKind

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
# Finish reasons that mean "refused", not "went wrong": another channel would refuse too.
BLOCKED = {
    "SAFETY",
    "IMAGE_SAFETY",
    "PROHIBITED_CONTENT",
    "IMAGE_PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "RECITATION",
    "IMAGE_RECITATION",
}


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_version: Literal["v1beta", "v1"] = "v1beta"
    api: Literal["generate_content", "interactions"] = "generate_content"


def build(config: ChannelConfig, api_key: str | None, options: Options) -> GoogleProvider:
    auth = {"x-goog-api-key": api_key} if api_key else {}
    http = UpstreamHttp.for_channel(config, config.base_url or DEFAULT_BASE_URL, auth, api_key)
    return GoogleProvider(http, options)


KIND = ProviderKind(
    name="google",
    options=Options,
    build=build,
    description="The Gemini API: generateContent, or Interactions with options.api",
    default_base_url=DEFAULT_BASE_URL,
    knows_vendor_ids=True,  # a gateway alias goes to Google by the model's own id
)


class GoogleProvider:
    def __init__(self, http: UpstreamHttp, options: Options) -> None:
        self.http = http
        self.options = options

    async def generate(self, generation: Generation) -> ProviderResult:
        version = self.options.api_version
        if self.options.api == "interactions":
            body = interaction_body(generation)
            return await self.read_interaction(
                await self.http.json("POST", f"/{version}/interactions", json=body)
            )
        path = f"/{version}/models/{generation.model}:generateContent"
        return await self.read_response(
            await self.http.json("POST", path, json=generate_content_body(generation))
        )

    async def check(self) -> str:
        return await self.http.list_models(f"/{self.options.api_version}/models", "models", pageSize=1000)

    def abandon(self, state: dict[str, Any]) -> None:
        return None  # generateContent and store-less Interactions leave no task behind

    async def close(self) -> None:
        await self.http.close()

    # -- generateContent answers ---------------------------------------------------------------------------

    async def read_response(self, answer: Any) -> ProviderResult:
        if not isinstance(answer, dict):
            raise self.http.malformed("an answer that is not a JSON object")
        candidates = answer.get("candidates") or []
        if not candidates:
            blocked = (answer.get("promptFeedback") or {}).get("blockReason")
            if blocked:
                raise UpstreamRejected(
                    f"the upstream refused the prompt (block reason {blocked}): rephrase it",
                    code="content_blocked",
                )
            raise self.http.malformed("an answer with no candidates")
        candidate = candidates[0]
        parts = (candidate.get("content") or {}).get("parts") or []
        images: list[ProviderImage] = []
        texts: list[str] = []
        thoughts: list[ProviderThought] = []
        signature: str | None = None
        for number, part in enumerate(parts):
            if not isinstance(part, dict):
                raise self.http.malformed(f"parts[{number}] that is not an object")
            image = await self._image(part, f"parts[{number}]")
            if part.get("thought"):
                thoughts = _add_thought(thoughts, part.get("text"), image)
                continue
            signature = signature or part.get("thoughtSignature")
            if image is not None:
                images.append(image)
            elif isinstance(part.get("text"), str):
                texts.append(part["text"])
        if not images:
            reason = candidate.get("finishReason", "unknown")
            detail = candidate.get("finishMessage") or " ".join(texts)[:200]
            if reason in BLOCKED:
                raise UpstreamRejected(
                    f"the upstream made no image (finish reason {reason}){': ' + detail if detail else ''}",
                    code="content_blocked",
                )
            raise self.http.malformed(
                f"an answer with no image (finish reason {reason}){': ' + detail if detail else ''}"
            )
        return ProviderResult(
            images=tuple(images),
            usage=_usage(answer.get("usageMetadata") or {}, images=len(images)),
            text="\n".join(texts) or None,
            thoughts=tuple(thoughts),
            searches=_searches(candidate.get("groundingMetadata") or {}),
            signature=signature,
        )

    async def _image(self, part: dict[str, Any], where: str) -> ProviderImage | None:
        inline = part.get("inlineData") or part.get("inline_data")
        if not inline:
            return None
        return await self.http.image(
            self.http.decode_base64(inline.get("data"), f"{where}.inlineData"), where
        )

    # -- Interactions answers ------------------------------------------------------------------------------

    async def read_interaction(self, answer: Any) -> ProviderResult:
        if not isinstance(answer, dict):
            raise self.http.malformed("an interaction that is not a JSON object")
        if answer.get("status") not in (None, "completed"):
            raise self.http.malformed(f"an interaction in state {answer.get('status')!r}, not completed")
        images: list[ProviderImage] = []
        texts: list[str] = []
        thoughts: list[ProviderThought] = []
        signature: str | None = None
        for number, step in enumerate(answer.get("steps") or answer.get("outputs") or []):
            kind = step.get("type") if isinstance(step, dict) else None
            if kind == "thought":
                signature = signature or step.get("signature")
                summary = " ".join(
                    b.get("text", "") for b in step.get("summary") or [] if isinstance(b, dict)
                )
                thoughts = _add_thought(thoughts, summary, None)
            elif kind == "model_output":
                for block_number, block in enumerate(step.get("content") or []):
                    where = f"steps[{number}].content[{block_number}]"
                    if block.get("type") == "image":
                        data = self.http.decode_base64(block.get("data"), where)
                        images.append(await self.http.image(data, where))
                    elif block.get("type") == "text":
                        texts.append(str(block.get("text", "")))
        if not images:
            raise self.http.malformed("an interaction with no image in its model_output")
        usage = answer.get("usage") or {}
        return ProviderResult(
            images=tuple(images),
            usage=Usage(
                input_text_tokens=as_count(usage.get("total_input_tokens")),
                output_image_tokens=as_count(usage.get("total_output_tokens")),
                thought_tokens=as_count(usage.get("total_thought_tokens")),
                images=len(images),
            ),
            text="\n".join(texts) or None,
            thoughts=tuple(thoughts),
            signature=signature,
        )


# -- request bodies ----------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _inline(mime_type: str, data: bytes) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime_type, "data": _b64(data)}}


def generate_content_body(generation: Generation) -> dict[str, Any]:
    request = generation.request
    spec = generation.spec
    contents: list[dict[str, Any]] = []
    for past in generation.history:
        parts: list[dict[str, Any]] = [{"text": past.turn.text}] if past.turn.text else []
        parts += [
            _inline(image.mime_type, data) for image, data in zip(past.turn.images, past.images, strict=True)
        ]
        if past.turn.role == "model" and parts:
            # Gemini 3 wants each model turn's signature back where it came: for an image model, on the
            # image. History made elsewhere has none that Google would accept, and says so.
            images = [part for part in parts if "inlineData" in part]
            signed = images[0] if images else parts[0]
            signed["thoughtSignature"] = past.turn.signature or SKIP_THOUGHT_SIGNATURE
            for later in images[1:]:  # one signature is kept per turn; Gemini wants one on every image
                later["thoughtSignature"] = SKIP_THOUGHT_SIGNATURE
        contents.append({"role": past.turn.role, "parts": parts})
    user_parts: list[dict[str, Any]] = [{"text": request.prompt}]
    user_parts += [
        _inline(ref.mime_type, data)
        for ref, data in zip(request.references, generation.references, strict=True)
    ]
    for video, data in zip(request.videos, generation.videos, strict=True):
        if data is not None:
            user_parts.append(_inline(video.mime_type, data))
        else:
            user_parts.append({"fileData": {"mimeType": video.mime_type, "fileUri": video.uri}})
    contents.append({"role": "user", "parts": user_parts})

    image_config: dict[str, Any] = {"aspectRatio": request.aspect_ratio}
    if sends_image_size(spec):
        image_config["imageSize"] = request.image_size
    config: dict[str, Any] = {
        "responseModalities": ["TEXT", "IMAGE"] if request.want_text else ["IMAGE"],
        "imageConfig": image_config,
    }
    thinking: dict[str, Any] = {}
    if request.thinking_level is not None:
        thinking["thinkingLevel"] = request.thinking_level.upper()
    if request.include_thoughts and (spec.thinking_levels or spec.always_thinks):
        thinking["includeThoughts"] = True
    if thinking:
        config["thinkingConfig"] = thinking
    for name, value in (
        ("seed", request.seed),
        ("temperature", request.temperature),
        ("topP", request.top_p),
    ):
        if value is not None:
            config[name] = value

    body: dict[str, Any] = {"contents": contents, "generationConfig": config}
    if request.system_instruction:
        body["systemInstruction"] = {"parts": [{"text": request.system_instruction}]}
    if request.search_types is not None:
        body["tools"] = [{"googleSearch": _search_tool(request.search_types)}]
    return body


def sends_image_size(spec: ModelSpec) -> bool:
    """Whether Google gets an image size: always but for the models that make 1K only (Google's own
    default, and a field those models don't take). An alias restricted to 4K sends its 4K."""
    return spec.image_sizes != ("1K",)


def _search_tool(search_types: list[str]) -> dict[str, Any]:
    # Web search alone is Google's default; naming the types is needed only to add image search.
    if "image_search" not in search_types:
        return {}
    return {"searchTypes": {_camel(kind): {} for kind in search_types}}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def interaction_body(generation: Generation) -> dict[str, Any]:
    """The same request as an Interactions call: earlier turns as steps, the new one as ``user_input``."""
    request = generation.request

    def image_block(mime_type: str, data: bytes) -> dict[str, Any]:
        return {"type": "image", "mime_type": mime_type, "data": _b64(data)}

    steps: list[dict[str, Any]] = []
    for past in generation.history:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": past.turn.text}] if past.turn.text else []
        blocks += [image_block(i.mime_type, d) for i, d in zip(past.turn.images, past.images, strict=True)]
        if past.turn.role == "user":
            steps.append({"type": "user_input", "content": blocks})
        else:
            signature = past.turn.signature or SKIP_THOUGHT_SIGNATURE
            steps.append({"type": "thought", "signature": signature})
            steps.append({"type": "model_output", "content": blocks})
    blocks = [{"type": "text", "text": request.prompt}]
    blocks += [
        image_block(r.mime_type, d) for r, d in zip(request.references, generation.references, strict=True)
    ]
    steps.append({"type": "user_input", "content": blocks})

    image_format: dict[str, Any] = {"type": "image", "aspect_ratio": request.aspect_ratio}
    if sends_image_size(generation.spec):
        image_format["image_size"] = request.image_size
    formats: list[dict[str, Any]] = [image_format]
    if request.want_text:
        formats.append({"type": "text"})
    body: dict[str, Any] = {
        "model": generation.model,
        "input": steps,
        "response_format": formats,
        "store": False,
    }
    config: dict[str, Any] = {}
    if request.thinking_level is not None:
        config["thinking_level"] = request.thinking_level
    if request.include_thoughts and (generation.spec.thinking_levels or generation.spec.always_thinks):
        config["thinking_summaries"] = "auto"
    for name, value in (
        ("seed", request.seed),
        ("temperature", request.temperature),
        ("top_p", request.top_p),
    ):
        if value is not None:
            config[name] = value
    if config:
        body["generation_config"] = config
    if request.system_instruction:
        body["system_instruction"] = request.system_instruction
    if request.search_types is not None:
        body["tools"] = [{"type": "google_search", "search_types": request.search_types or ["web_search"]}]
    return body


# -- pieces of answers -------------------------------------------------------------------------------------


def _add_thought(
    thoughts: list[ProviderThought], text: object, image: ProviderImage | None
) -> list[ProviderThought]:
    """A thought's text starts a thought; an interim image belongs to the thought before it."""
    if isinstance(text, str) and text:
        return [*thoughts, ProviderThought(text=text, images=(image,) if image else ())]
    if image is None:
        return thoughts
    if not thoughts:
        return [ProviderThought(text="", images=(image,))]
    last = thoughts[-1]
    return [*thoughts[:-1], ProviderThought(text=last.text, images=(*last.images, image))]


def _modality_tokens(details: Any, modality: str) -> int:
    return sum(
        as_count(d.get("tokenCount"))
        for d in details or []
        if isinstance(d, dict) and d.get("modality") == modality
    )


def _usage(meta: dict[str, Any], *, images: int) -> Usage:
    prompt = as_count(meta.get("promptTokenCount"))
    prompt_images = _modality_tokens(meta.get("promptTokensDetails"), "IMAGE")
    output = as_count(meta.get("candidatesTokenCount"))
    output_text = _modality_tokens(meta.get("candidatesTokensDetails"), "TEXT")
    return Usage(
        input_text_tokens=max(0, prompt - prompt_images),
        input_image_tokens=prompt_images,
        output_image_tokens=max(0, output - output_text),
        output_text_tokens=output_text,
        thought_tokens=as_count(meta.get("thoughtsTokenCount")),
        images=images,
    )


def _searches(grounding: dict[str, Any]) -> tuple[SearchStep, ...]:
    suggestions = str((grounding.get("searchEntryPoint") or {}).get("renderedContent", ""))
    steps: list[SearchStep] = []
    for search_type, field in (("web_search", "webSearchQueries"), ("image_search", "imageSearchQueries")):
        queries = grounding.get(field)
        if queries:
            # One entry point for the whole answer: it goes with the first search, not with each.
            steps.append(
                SearchStep(search_type, tuple(str(q) for q in queries), "" if steps else suggestions)
            )
    return tuple(steps)
