"""The Gemini API (generativelanguage.googleapis.com): generateContent, its SSE stream, and Interactions."""

from __future__ import annotations

import base64
import itertools
import json
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .base import Call, Rejected, Simulator
from .faults import Fault, image_b64
from .images import FORMATS, MIME_TO_FORMAT, size_for

API_VERSIONS = frozenset({"v1beta", "v1", "v1alpha"})
DEFAULT_MODELS = ("gemini-2.5-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-image")
GENERATE_METHODS = frozenset({"generateContent", "streamGenerateContent"})

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
BAD_KEY = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ],
    }
}

IMAGE_TOKENS = 1120  # what one generated image costs in candidatesTokenCount
INPUT_IMAGE_TOKENS = 258  # what one input image costs in promptTokenCount
THOUGHT_TOKENS = 40
IMAGE_TEXT = "Here is your image."
NO_IMAGE_TEXT = "I could not create an image for that request."
TEXT_ONLY = "A picture, described in words."
THOUGHT_TEXT = "thinking about it"


def pick(mapping: Any, camel: str, snake: str) -> Any:
    """A field in either spelling: the REST API accepts camelCase and snake_case alike."""
    if not isinstance(mapping, dict):
        return None
    return mapping[camel] if camel in mapping else mapping.get(snake)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class GeminiSimulator(Simulator):
    """Gemini API: ``POST /{v}/models/{model}:generateContent`` (and ``:streamGenerateContent``),
    ``POST /{v}/interactions``, ``GET /{v}/interactions/{id}``, ``GET /{v}/models[/{model}]``.

    Auth by ``x-goog-api-key`` header or ``?key=``.
    """

    name = "gemini"

    def __init__(
        self, *, api_key: str | None = None, delay: float = 0.0, models: Iterable[str] | None = None
    ) -> None:
        super().__init__(api_key=api_key, delay=delay)
        #: When set, other model names get Google's 404; when None every model name is served.
        self.models: set[str] | None = set(models) if models is not None else None
        #: Every thought signature handed out, in order (to check that clients send them back verbatim).
        self.issued_signatures: list[str] = []
        #: Stored interactions by id.
        self.interactions: dict[str, dict[str, Any]] = {}
        #: finishReason of an answer without an image (the "no_image" fault). Google mostly says STOP and
        #: explains in text; "NO_IMAGE" and "IMAGE_SAFETY" happen too.
        self.no_image_finish_reason = "STOP"
        self._signature_ids = itertools.count(1)
        self._interaction_ids = itertools.count(1)

    # -- vendor hooks ---------------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            self.route("/{version}/models", self._list_models),
            self.route("/{version}/models/{rest:path}", self._get_model),
            self.route("/{version}/models/{rest:path}", self._generate, methods=["POST"], generation=True),
            self.route(
                "/{version}/interactions", self._create_interaction, methods=["POST"], generation=True
            ),
            self.route("/{version}/interactions/{interaction_id}", self._get_interaction),
        ]

    def error(self, status: int, message: str | None = None, **fields: Any) -> Response:
        body: dict[str, Any] = {
            "code": status,
            "message": message or DEFAULT_MESSAGES.get(status, "Error"),
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
        body.update(fields)
        return JSONResponse({"error": body}, status_code=status)

    def authorized(self, request: Request) -> bool:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        return key == self.api_key

    def auth_error(self, request: Request) -> Response:
        return JSONResponse(BAD_KEY, status_code=400)

    # -- models ---------------------------------------------------------------------------------------

    def _check_version(self, call: Call) -> str:
        version: str = call.request.path_params["version"]
        if version not in API_VERSIONS:
            raise Rejected(404, f"API version {version} is not supported.")
        return version

    def _check_model(self, model: str, version: str, method: str) -> None:
        if not model or (self.models is not None and model not in self.models):
            raise Rejected(
                404,
                f"models/{model} is not found for API version {version}, or is not supported for {method}.",
            )

    @staticmethod
    def _model_info(model: str) -> dict[str, Any]:
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model,
            "description": "Simulated image model",
            "inputTokenLimit": 32768,
            "outputTokenLimit": 32768,
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        }

    async def _list_models(self, call: Call) -> Response:
        self._check_version(call)
        names = sorted(self.models) if self.models is not None else DEFAULT_MODELS
        return JSONResponse({"models": [self._model_info(name) for name in names]})

    async def _get_model(self, call: Call) -> Response:
        version = self._check_version(call)
        model: str = call.request.path_params["rest"]
        if ":" in model:
            raise Rejected(404, f"Method {model.partition(':')[2]} cannot be called with GET.")
        self._check_model(model, version, "get")
        return JSONResponse(self._model_info(model))

    # -- generateContent ------------------------------------------------------------------------------

    async def _generate(self, call: Call) -> Response:
        version = self._check_version(call)
        model, _, method = call.request.path_params["rest"].partition(":")
        if method not in GENERATE_METHODS:
            raise Rejected(404, f"Method not found: {method or '(none)'}.")
        self._check_model(model, version, method)
        answer = self._content_answer(model, call.json_object(), call.fault)
        if method == "generateContent":
            return JSONResponse(answer)
        chunks = self._stream_chunks(answer)
        if call.record.query.get("alt") != "sse":
            # Without alt=sse Google streams one JSON array; a client that forgot alt=sse gets that.
            return JSONResponse(chunks)

        async def events() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\r\n\r\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    def _content_answer(self, model: str, body: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise Rejected(400, "* GenerateContentRequest.contents: contents is not specified\n")
        config = pick(body, "generationConfig", "generation_config") or {}
        image_config = pick(config, "imageConfig", "image_config") or {}
        try:
            width, height = size_for(
                pick(image_config, "aspectRatio", "aspect_ratio"),
                pick(image_config, "imageSize", "image_size"),
            )
        except ValueError as exc:
            raise Rejected(400, f"* GenerateContentRequest.generation_config.image_config: {exc}\n") from exc
        modalities = [str(m).upper() for m in pick(config, "responseModalities", "response_modalities") or []]
        thinking = pick(config, "thinkingConfig", "thinking_config") or {}
        show_thoughts = bool(pick(thinking, "includeThoughts", "include_thoughts"))

        parts: list[dict[str, Any]] = []
        if show_thoughts:
            parts.append({"text": THOUGHT_TEXT, "thought": True})
        # An image model answers with an image unless the caller asked for text only.
        wants_image = not modalities or "IMAGE" in modalities
        data = image_b64(fault, width, height) if wants_image else None
        if data is not None:
            image_part = {"inlineData": {"mimeType": "image/png", "data": data}}
            parts.append({**image_part, "thoughtSignature": self._new_signature()})
            if "TEXT" in modalities:
                parts.append({"text": IMAGE_TEXT})
        else:
            parts.append({"text": NO_IMAGE_TEXT if wants_image else TEXT_ONLY})

        failed = wants_image and data is None
        candidate: dict[str, Any] = {
            "content": {"role": "model", "parts": parts},
            "finishReason": self.no_image_finish_reason if failed else "STOP",
            "index": 0,
        }
        grounding = self._grounding(body)
        if grounding is not None:
            candidate["groundingMetadata"] = grounding
        thought_tokens = THOUGHT_TOKENS if thinking else 0
        return {
            "candidates": [candidate],
            "usageMetadata": self._usage(
                contents, image_count=int(data is not None), thought_tokens=thought_tokens
            ),
            "modelVersion": model,
            "responseId": secrets.token_urlsafe(16),
        }

    def _new_signature(self) -> str:
        # Base64, as Gemini's are: google-genai parses thoughtSignature as bytes and refuses anything else.
        raw = f"sig-{next(self._signature_ids)}-".encode() + secrets.token_bytes(12)
        signature = base64.b64encode(raw).decode("ascii")
        self.issued_signatures.append(signature)
        return signature

    @staticmethod
    def _grounding(body: dict[str, Any]) -> dict[str, Any] | None:
        tools = body.get("tools")
        searches = [
            pick(tool, "googleSearch", "google_search") for tool in tools or [] if isinstance(tools, list)
        ]
        search = next((found for found in searches if found is not None), None)
        if search is None:
            return None
        query = _first_text(body.get("contents"))[:80] or "q"
        grounding: dict[str, Any] = {
            "webSearchQueries": [query],
            "searchEntryPoint": {"renderedContent": "<div>suggestions</div>"},
        }
        spelled = json.dumps(search)
        if "imageSearch" in spelled or "image_search" in spelled:
            grounding["imageSearchQueries"] = [query]
        return grounding

    @staticmethod
    def _usage(contents: list[Any], *, image_count: int, thought_tokens: int) -> dict[str, Any]:
        text_tokens, image_inputs = _count_inputs(contents)
        prompt_details = [{"modality": "TEXT", "tokenCount": text_tokens}]
        if image_inputs:
            prompt_details.append({"modality": "IMAGE", "tokenCount": image_inputs * INPUT_IMAGE_TOKENS})
        prompt_tokens = text_tokens + image_inputs * INPUT_IMAGE_TOKENS
        output_tokens = image_count * IMAGE_TOKENS if image_count else 10
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens + thought_tokens,
            "promptTokensDetails": prompt_details,
            "candidatesTokensDetails": [
                {"modality": "IMAGE" if image_count else "TEXT", "tokenCount": output_tokens}
            ],
        }
        if thought_tokens:
            usage["thoughtsTokenCount"] = thought_tokens
        return usage

    @staticmethod
    def _stream_chunks(answer: dict[str, Any]) -> list[dict[str, Any]]:
        """One chunk per part; the last one carries finishReason, grounding and usage, as Google's do."""
        candidate = answer["candidates"][0]
        parts = candidate["content"]["parts"]
        chunks = []
        for index, part in enumerate(parts):
            chunk_candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
            chunk: dict[str, Any] = {"candidates": [chunk_candidate]}
            if index == len(parts) - 1:
                chunk_candidate.update({k: v for k, v in candidate.items() if k not in ("content", "index")})
                chunk["usageMetadata"] = answer["usageMetadata"]
            chunk.update(modelVersion=answer["modelVersion"], responseId=answer["responseId"])
            chunks.append(chunk)
        return chunks

    # -- Interactions ---------------------------------------------------------------------------------

    async def _create_interaction(self, call: Call) -> Response:
        version = self._check_version(call)
        body = call.json_object()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Rejected(400, "model is required.")
        self._check_model(model, version, "interactions")
        if body.get("input") in (None, "", []):
            raise Rejected(400, "input is required.")
        previous = body.get("previous_interaction_id")
        if previous is not None and previous not in self.interactions:
            raise Rejected(404, f"Interaction {previous} not found.")

        width, height, mime_type = self._image_format(body.get("response_format"))
        generation_config = body.get("generation_config") or {}
        thinking = generation_config.get("thinking_level") not in (None, "minimal") or generation_config.get(
            "thinking_summaries"
        ) not in (None, "none")

        steps: list[dict[str, Any]] = []
        if thinking:
            summary = [{"type": "text", "text": THOUGHT_TEXT}]
            steps.append({"type": "thought", "signature": self._new_signature(), "summary": summary})
        data = image_b64(call.fault, width, height, MIME_TO_FORMAT[mime_type]) if mime_type else None
        output = (
            {"type": "image", "data": data, "mime_type": mime_type}
            if data is not None
            else {"type": "text", "text": NO_IMAGE_TEXT if mime_type else TEXT_ONLY}
        )
        steps.append({"type": "model_output", "content": [output]})

        input_tokens = max(1, len(json.dumps(body.get("input"))) // 4)
        output_tokens = IMAGE_TOKENS if data is not None else 10
        thought_tokens = THOUGHT_TOKENS if thinking else 0
        now = _now_iso()
        interaction: dict[str, Any] = {
            "id": f"int_{next(self._interaction_ids)}",
            "object": "interaction",
            "status": "completed",
            "model": model,
            "created": now,
            "updated": now,
            "steps": steps,
            "usage": {
                "total_input_tokens": input_tokens,
                "total_output_tokens": output_tokens,
                "total_thought_tokens": thought_tokens,
                "total_tokens": input_tokens + output_tokens + thought_tokens,
            },
        }
        if previous is not None:
            interaction["previous_interaction_id"] = previous
        if body.get("store", True) is not False:
            self.interactions[interaction["id"]] = interaction
        return JSONResponse(interaction)

    @staticmethod
    def _image_format(response_format: Any) -> tuple[int, int, str | None]:
        """Pixel size and MIME type asked for; a MIME type of None means no image was asked for."""
        formats = response_format if isinstance(response_format, list) else [response_format]
        wanted = next((f for f in formats if isinstance(f, dict) and f.get("type") == "image"), None)
        if wanted is None and response_format is not None:
            return 0, 0, None  # a response_format without an image entry: text only
        wanted = wanted or {}
        mime_type = wanted.get("mime_type") or "image/png"
        if mime_type not in MIME_TO_FORMAT:
            supported = ", ".join(mime for _, mime in FORMATS.values())
            raise Rejected(400, f"response_format.mime_type must be one of {supported}.")
        try:
            width, height = size_for(wanted.get("aspect_ratio"), wanted.get("image_size"))
        except ValueError as exc:
            raise Rejected(400, f"response_format: {exc}") from exc
        return width, height, mime_type

    async def _get_interaction(self, call: Call) -> Response:
        self._check_version(call)
        interaction_id = call.request.path_params["interaction_id"]
        interaction = self.interactions.get(interaction_id)
        if interaction is None:
            raise Rejected(404, f"Interaction {interaction_id} not found.")
        return JSONResponse(interaction)


def _first_text(contents: Any) -> str:
    for part in _parts(contents):
        if isinstance(part.get("text"), str):
            return str(part["text"])
    return ""


def _count_inputs(contents: list[Any]) -> tuple[int, int]:
    """(text tokens, input images) of a request, roughly: four characters to a token."""
    chars = 0
    images = 0
    for part in _parts(contents):
        if isinstance(part.get("text"), str):
            chars += len(part["text"])
        if any(key in part for key in ("inlineData", "inline_data", "fileData", "file_data")):
            images += 1
    return max(1, chars // 4), images


def _parts(contents: Any) -> Iterator[dict[str, Any]]:
    """Every part of every content, skipping whatever is not shaped like one (the client's bug to find)."""
    for content in contents if isinstance(contents, list) else []:
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict):
                yield part
