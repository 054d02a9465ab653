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
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            code="invalid_json",
        ) from None
    except UnicodeDecodeError:
        raise InvalidRequest(
            "the request body is not valid JSON (it is not UTF-8)", code="invalid_json"
        ) from None
    except RecursionError:
        raise InvalidRequest(
            "the request body is not valid JSON (it nests too deeply: flatten it)", code="invalid_json"
        ) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise InvalidRequest(f"the request body is not valid JSON ({exc})", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest(
            f"the request body must be a JSON object, got {_JSON_NAMES.get(type(data), 'something else')}",
            code="invalid_json",
        )
    if _nesting(data) > MAX_JSON_DEPTH:
        raise InvalidRequest(
            f"the request body nests more than {MAX_JSON_DEPTH} levels deep: at most {MAX_JSON_DEPTH} are "
            "accepted (flatten it)",
            code="invalid_json",
        )
    return data


# No API of pixelgate's nests past a dozen levels; a cap keeps every recursive walk of a body safe.
MAX_JSON_DEPTH = 64


def _nesting(data: Any) -> int:
    """How deep ``data`` nests (counted up to one past the cap), without recursion: the body is untrusted."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


_JSON_NAMES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _field_path(loc: tuple[int | str, ...], data: Any, *, missing: bool) -> str:
    """``reference_images[0]`` from pydantic's ``("reference_images", 0, "str")``: follow the location
    through the input and drop the steps that name a union member rather than a place in it."""
    path, node = "", data
    for i, part in enumerate(loc):
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            path, node = f"{path}[{part}]", node[part]
        elif (
            isinstance(part, str)
            and isinstance(node, dict)
            and (part in node or (missing and i == len(loc) - 1))
        ):
            path, node = f"{path}.{part}" if path else part, node.get(part)
    return path or ".".join(str(part) for part in loc)


def parse_model(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(tuple(first["loc"]), data, missing=first["type"] == "missing")
        if first["type"] == "missing":
            raise InvalidRequest(f"{field} is required", param=field, code="missing_field") from None
        message = first["msg"][0].lower() + first["msg"][1:]
        raise InvalidRequest(
            f"{field} {_shown(first.get('input'))} is not valid: {message}", param=field, code="invalid_field"
        ) from None
