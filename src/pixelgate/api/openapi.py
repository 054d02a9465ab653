"""``GET /openapi.json``: every public endpoint, with the bodies it takes.

The dialect routes read their bodies themselves (so that a refusal is worded in the caller's dialect and
names the field as the caller spelled it), which leaves FastAPI nothing to document. The body models are
the same ones the routes validate with; this module puts them in the document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from pixelgate.api.admin import KeyChanges, NewKey
from pixelgate.api.admin_channels import Disabling
from pixelgate.api.chat import ChatBody
from pixelgate.api.gemini import GenerateContentBody
from pixelgate.api.interactions import InteractionBody
from pixelgate.api.openai import ImageBody
from pixelgate.api.openai_batches import BatchBody
from pixelgate.api.openai_responses import ResponseBody
from pixelgate.api.webhooks import Rotation, WebhookInput

REF = "#/components/schemas/{model}"
# (method, path suffix) -> the model of its JSON body. Suffixes, so that each API version's copy matches.
JSON_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("post", "/images/generations"): ImageBody,
    ("post", "/images/edits"): ImageBody,
    ("post", "/models/{model_action}"): GenerateContentBody,
    ("post", "/interactions"): InteractionBody,
    ("post", "/chat/completions"): ChatBody,
    ("post", "/responses"): ResponseBody,
    ("post", "/v1/batches"): BatchBody,
    ("post", "/admin/keys"): NewKey,
    ("patch", "/admin/keys/{key_id}"): KeyChanges,
    ("post", "/admin/channels/{name}/disable"): Disabling,
    ("post", "/webhooks"): WebhookInput,
    ("patch", "/webhooks/{webhook_id}"): WebhookInput,
    ("post", "/webhooks/{webhook_id}:rotateSigningSecret"): Rotation,
}
OPTIONAL_BODIES = {Disabling, Rotation}  # a bare POST is fine too
EDIT_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string"},
        "model": {"type": "string"},
        "n": {"type": "integer", "minimum": 1},
        "size": {"type": "string"},
        "response_format": {"type": "string", "enum": ["url", "b64_json"]},
        "image": {"type": "string", "format": "binary"},
        "image[]": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "mask": {"type": "string", "format": "binary"},
    },
}


def install_openapi(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    models = sorted(set(JSON_BODIES.values()), key=lambda m: m.__name__)
    names, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template=REF, by_alias=True
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions.get("$defs", {}))
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            model = next(
                (m for (verb, end), m in JSON_BODIES.items() if verb == method and path.endswith(end)), None
            )
            if model is None:
                continue
            content: dict[str, Any] = {"application/json": {"schema": names[(model, "validation")]}}
            if path.endswith("/images/edits"):
                content["multipart/form-data"] = {"schema": EDIT_FORM}
            operation["requestBody"] = {"required": model not in OPTIONAL_BODIES, "content": content}
    return schema
