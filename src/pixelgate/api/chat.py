"""The chat-endpoint mistake (seed 000's FAQ): an image model called through a chat API.

Other gateways answer it with an opaque ``invalid apitype: -1``, and some bill it. pixelgate answers
with a 400 that names the endpoints that do make images, and creates no task, so nothing is charged.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request

from pixelgate.api.auth import authenticate
from pixelgate.api.deps import CatalogDep
from pixelgate.api.errors import openai_dialect
from pixelgate.core.errors import InvalidRequest, NotFound

router = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate)])

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions", "/v1/completions", "/v1/responses")


def _image_endpoints(model: str) -> str:
    return (
        f"POST /v1/images/generations (OpenAI Images and task-style clients), POST /v1/images/edits, "
        f"POST /v1beta/models/{model}:generateContent or POST /v1beta/interactions (Gemini API)"
    )


async def chat_mistake(request: Request, catalog: CatalogDep) -> None:
    body = await request.body()
    try:
        parsed = json.loads(body) if body.strip() else {}
    except (ValueError, RecursionError):
        parsed = {}
    model = parsed.get("model") if isinstance(parsed, dict) else None
    if isinstance(model, str) and model in catalog.ids:
        raise InvalidRequest(
            f"{model} is an image model and {request.url.path} is a chat endpoint: image models are not "
            f"called through chat. Send the request to {_image_endpoints(model)}. Nothing was charged.",
            param="model",
            code="wrong_endpoint",
        )
    shown = f"model {model!r}" if isinstance(model, str) else "a chat request"
    raise NotFound(
        f"pixelgate serves image models only and has no chat endpoint ({shown} sent to "
        f"{request.url.path}): generate images with {_image_endpoints('{model}')}. Nothing was charged.",
        code="wrong_endpoint",
    )


for _path in CHAT_PATHS:
    router.add_api_route(_path, chat_mistake, methods=["POST"])
