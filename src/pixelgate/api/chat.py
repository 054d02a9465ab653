"""Chat completions for image models (``POST /v1/chat/completions``), translation only, in the shape that
OpenRouter, LiteLLM and Vercel's AI Gateway give chat clients: the images of the answer in
``choices[i].message.images`` as ``image_url`` items with ``data:`` URIs, its text in ``content``, and
``delta.images`` when streamed.

The request is a chat: ``messages`` (``system``/``developer`` turns become the system instruction; the
last message is the ``user`` turn to answer, its ``image_url`` parts the reference images; the turns
before it, with the images of earlier ``assistant`` answers, are the conversation so far), plus
``modalities`` (``["image", "text"]`` or ``["image"]``), ``image_config`` (``aspect_ratio``,
``image_size``), ``n``, ``seed``, ``temperature``, ``top_p``, ``stream``.

Gemini 3 wants every earlier model turn sent back with its thought signature, and a chat message has
nowhere to carry one. So each assistant turn is marked for recovery: the submission looks its first
image up among the caller's own signed outputs by the bytes' SHA-256 and restores the signature; an image
pixelgate did not make (or a turn without one) is sent as Gemini allows for turns it did not sign.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.chat_render import choices_of, usage_of
from pixelgate.api.chat_stream import stream_chat
from pixelgate.api.deps import LinksDep, ServiceDep, SettingsDep
from pixelgate.api.errors import openai_dialect
from pixelgate.api.parsing import parse_model, read_json_object
from pixelgate.api.responses import ImageJSONResponse
from pixelgate.core.errors import InvalidRequest, NotFound, one_of
from pixelgate.core.references import ReferenceInput, TurnInput
from pixelgate.core.request import ImageRequest

router = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate)])

MODALITIES = ("image", "text")
ROLES = ("system", "developer", "user", "assistant")
PART_TYPES = ("text", "image_url")
# An image some relays write into an assistant's content as Markdown, which clients send back so.
_MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\((data:image/[^)\s]+)\)")


class ImageConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    aspect_ratio: str | None = None
    image_size: str | None = None


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    modalities: list[str] | None = None
    image_config: ImageConfig | None = None
    n: int = 1
    stream: bool | None = None
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None


class Conversation:
    """``messages`` taken apart: the system instruction, the turns so far, and the user turn to answer."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.system: list[str] = []
        self.history: list[TurnInput] = []
        self.prompt = ""
        self.prompt_field = "messages"
        self.references: list[ReferenceInput] = []
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
        if last_user is None:
            raise InvalidRequest(
                "messages has no user message: end the conversation with "
                '{"role": "user", "content": "<what to draw>"}',
                param="messages",
                code="missing_user_message",
            )
        if last_user != len(messages) - 1:
            raise InvalidRequest(
                f"messages ends with a {messages[-1].get('role')!r} message: the last message must be the "
                "user turn to answer",
                param=f"messages[{len(messages) - 1}].role",
                code="invalid_messages",
            )
        for i, message in enumerate(messages):
            self._add(i, message, is_last=i == last_user)

    def _add(self, index: int, message: dict[str, Any], *, is_last: bool) -> None:
        where = f"messages[{index}]"
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequest(
                f"{where}.role {role!r} is not served: image models take {one_of(ROLES)} messages",
                param=f"{where}.role",
                code="unsupported_role",
            )
        texts, images = _content(message.get("content"), f"{where}.content", markdown=role == "assistant")
        if role == "assistant":
            images += _assistant_images(message.get("images"), f"{where}.images")
        if role in ("system", "developer"):
            if images:
                raise InvalidRequest(
                    f"{where} is a {role} message with an image: give images in user messages",
                    param=f"{where}.content",
                    code="invalid_messages",
                )
            self.system += texts
        elif is_last:
            self.prompt = "\n".join(texts)
            self.prompt_field = f"{where}.content"
            self.references = images
        else:
            self.history.append(
                TurnInput(
                    role="model" if role == "assistant" else "user",
                    text="\n".join(texts),
                    images=tuple(images),
                    recover_signature=role == "assistant",
                )
            )


def _content(value: Any, where: str, *, markdown: bool) -> tuple[list[str], list[ReferenceInput]]:
    """A message's text pieces and images; ``markdown``: take ``![…](data:…)`` images out of its text."""
    if value is None:
        return [], []
    parts = [{"type": "text", "text": value}] if isinstance(value, str) else value
    if not isinstance(parts, list):
        raise InvalidRequest(
            f"{where} must be a string or a list of content parts, got {type(value).__name__}",
            param=where,
            code="invalid_content",
        )
    texts: list[str] = []
    images: list[ReferenceInput] = []
    for i, part in enumerate(parts):
        field = where if isinstance(value, str) else f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            text = part["text"]
            if markdown:
                for number, uri in enumerate(_MARKDOWN_IMAGE.findall(text)):
                    images.append(ReferenceInput(source=uri, field=f"{field} (image {number})"))
                text = _MARKDOWN_IMAGE.sub("", text).strip()
            if text:
                texts.append(text)
        elif kind == "image_url":
            images.append(ReferenceInput(source=_image_url(part.get("image_url"), field), field=field))
        elif kind == "text":
            raise InvalidRequest(
                f"{field}.text must be a string, got {type(part.get('text')).__name__}",
                param=f"{field}.text",
                code="invalid_content",
            )
        else:
            raise InvalidRequest(
                f"{field} has type {kind!r}: image models take {one_of(PART_TYPES)} parts",
                param=f"{field}.type",
                code="unsupported_content",
            )
    return texts, images


def _image_url(value: Any, field: str) -> str:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise InvalidRequest(
            f'{field}.image_url has no url: give {{"url": "data:image/png;base64,…"}} or an https URL',
            param=f"{field}.image_url",
            code="invalid_image",
        )
    return url


def _assistant_images(value: Any, where: str) -> list[ReferenceInput]:
    """An earlier answer's ``images``, as OpenRouter's and LiteLLM's clients send it back."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(
            f"{where} must be a list of image_url items, got {type(value).__name__}",
            param=where,
            code="invalid_content",
        )
    return [
        ReferenceInput(
            source=_image_url(item.get("image_url") if isinstance(item, dict) else None, f"{where}[{i}]"),
            field=f"{where}[{i}]",
        )
        for i, item in enumerate(value)
    ]


def _want_text(modalities: list[str] | None) -> bool:
    if modalities is None:
        return True
    for i, modality in enumerate(modalities):
        if modality not in MODALITIES:
            raise InvalidRequest(
                f"modalities[{i}] {modality!r} is not served: image models answer with {one_of(MODALITIES)}",
                param=f"modalities[{i}]",
                code="invalid_modalities",
            )
    if "image" not in modalities:
        raise InvalidRequest(
            f"modalities {modalities} asks for no image: image models make images; use "
            '["image", "text"] or ["image"]',
            param="modalities",
            code="invalid_modalities",
        )
    return "text" in modalities


def to_image_request(body: ChatBody, conversation: Conversation, default_model: str) -> ImageRequest:
    config = body.image_config or ImageConfig()
    return ImageRequest(
        model=body.model or default_model,
        prompt=conversation.prompt,
        n=body.n,
        aspect_ratio=config.aspect_ratio,
        image_size=config.image_size,
        seed=body.seed,
        temperature=body.temperature,
        top_p=body.top_p,
        user=body.user,
        system_instruction="\n".join(conversation.system) or None,
        want_text=_want_text(body.modalities),
        wire_names={
            "model": "model",
            "prompt": conversation.prompt_field,
            "aspect_ratio": "image_config.aspect_ratio",
            "image_size": "image_config.image_size",
            "references": "messages",
            "history": "messages",
            "seed": "seed",
            "temperature": "temperature",
            "top_p": "top_p",
        },
    )


async def create_chat_completion(
    request: Request, service: ServiceDep, links: LinksDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    body = parse_model(ChatBody, await read_json_object(request))
    conversation = Conversation(body.messages)
    try:
        task = await service.submit(
            to_image_request(body, conversation, settings.default_model),
            references=conversation.references,
            history=conversation.history,
            dialect="chat",
            caller_waits=True,
            response_format="b64_json",
            caller=caller,
            idempotency_key=request.headers.get("idempotency-key"),
        )
    except InvalidRequest as exc:
        if exc.code != "model_not_found":
            raise
        # OpenAI's chat API answers a model it does not have with a 404, and chat clients expect that.
        raise NotFound(exc.message, param=exc.param, code=exc.code) from None
    if body.stream:
        events = stream_chat(service, links, task, keepalive=settings.stream_keepalive_seconds)
        return StreamingResponse(events, media_type="text/event-stream")
    done = await service.wait_for_result(task.id)
    assert done.result is not None
    answer = {
        "id": done.id,
        "object": "chat.completion",
        "created": int(done.created_at),
        "model": done.request.model,
        "choices": await choices_of(links, done),
        "usage": usage_of(done.result.usage),
    }
    return ImageJSONResponse(answer)


async def no_text_completions(request: Request) -> None:
    raise NotFound(
        f"pixelgate serves image models and has no legacy text completions endpoint ({request.url.path}): "
        "ask for images with POST /v1/chat/completions, POST /v1/images/generations or the Gemini API",
        code="wrong_endpoint",
    )


router.add_api_route("/v1/chat/completions", create_chat_completion, methods=["POST"], response_model=None)
router.add_api_route("/chat/completions", create_chat_completion, methods=["POST"], response_model=None)
router.add_api_route("/v1/completions", no_text_completions, methods=["POST"])
