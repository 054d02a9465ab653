"""Reading request bodies into pydantic models, with errors that name the field, the value and what is
allowed."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from pixelgate.core.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


async def read_json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        raise InvalidRequest("the request body is empty: send a JSON object", code="invalid_json")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "it is not UTF-8"
        raise InvalidRequest(
            f"the request body is not valid JSON ({reason}{where})", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest(
            f"the request body must be a JSON object, got a JSON {type(data).__name__}", code="invalid_json"
        )
    return data


def parse_model(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if not str(part).startswith("function-"))
        if first["type"] == "missing":
            raise InvalidRequest(f"{field} is required", param=field, code="missing_field") from None
        message = first["msg"][0].lower() + first["msg"][1:]
        raise InvalidRequest(
            f"{field} {_shown(first.get('input'))} is not valid: {message}", param=field, code="invalid_field"
        ) from None
