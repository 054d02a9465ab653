"""Reading requests: JSON bodies into pydantic models, with errors that name the field, the value and what is
allowed; and the one check of what a database can keep (:func:`check_storable` for every JSON value read,
:func:`stored_text` for a string bound for a text column), so that no request is saved and then failed."""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import Request
from pydantic import BaseModel, ValidationError

from pixelgate.core.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


async def read_json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        raise InvalidRequest("the request body is empty: send a JSON object", code="invalid_json")
    try:
        data = load_json(body)
    except NotJSON as exc:
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
    check_storable(data)
    return data


class NotJSON(ValueError):
    """Text that is not one JSON value; the message says why, in words that fit after "not valid JSON"."""


def load_json(text: bytes | str) -> Any:
    """One JSON value, as :func:`json.loads` reads it, with every way that can fail (a syntax error, bytes
    that are not UTF-8, nesting past the interpreter's stack, an integer of more than 4,300 digits) turned
    into :class:`NotJSON`: a request body and a batch file's line are read by this alone. The value can
    still hold what no database keeps: see :func:`check_storable`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise NotJSON("it is not UTF-8") from None
    except RecursionError:
        raise NotJSON("it nests too deeply: flatten it") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise NotJSON(str(exc)) from None


def load_json_line(text: str) -> Any:
    """One line of a batch file, read as a request body is: :class:`NotJSON` for what is no JSON (nesting
    past :data:`MAX_JSON_DEPTH` included), :class:`InvalidRequest` from :func:`check_storable` for what is
    JSON no database keeps, its ``param`` the path inside the line."""
    value = load_json(text)
    if _nesting(value) > MAX_JSON_DEPTH:
        raise NotJSON(f"it nests too deeply: at most {MAX_JSON_DEPTH} levels are accepted (flatten it)")
    check_storable(value, root="the line")
    return value


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


# What Python's JSON reader accepts but nothing downstream can hold: a lone surrogate (JSON's "\ud800"
# escape) is no Unicode text, so it cannot be encoded as UTF-8 for PostgreSQL nor for any answer; NaN and
# Infinity (and 1e999, read as Infinity) are no JSON at all, refused by PostgreSQL's json type; and an
# integer past 64 bits cannot be written back by orjson, which renders every answer.
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_RANGE = (-(2**63), 2**63 - 1)


def check_storable(value: Any, where: str = "", *, root: str = "the request body") -> None:
    """Refuse ``value`` (JSON as read) if any string in it, key or value, holds a lone surrogate, or any
    number in it is not finite or does not fit in 64 bits: a 400 that names the first such place (``where``
    is the path of ``value`` itself, ``root`` what names it when that is empty). Every request body passes
    here once, as it is read, so that nothing is saved from a request whose answer would then fail."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            _check_unicode(node, path or root, path or None)
        elif isinstance(node, float):
            if not math.isfinite(node):
                literal = "NaN" if node != node else "Infinity" if node > 0 else "-Infinity"
                raise InvalidRequest(
                    f"{path or root} is {literal}, which is not JSON: give a finite number",
                    param=path or None,
                    code="invalid_json",
                )
        elif isinstance(node, int) and not isinstance(node, bool):
            if not _INT_RANGE[0] <= node <= _INT_RANGE[1]:
                raise InvalidRequest(
                    f"{path or root} {shown(node)} does not fit in 64 bits: give an integer from "
                    f"{_INT_RANGE[0]:,} to {_INT_RANGE[1]:,}",
                    param=path or None,
                    code="number_out_of_range",
                )
        elif isinstance(node, dict):
            children = []
            for key, item in node.items():
                _check_unicode(key, path or root, path or None, key=True)
                children.append((item, f"{path}.{key}" if path else key))
            stack.extend(reversed(children))  # popped in the order they were written
        elif isinstance(node, list):
            stack.extend((node[i], f"{path}[{i}]") for i in reversed(range(len(node))))


def _check_unicode(text: str, field: str, param: str | None, *, key: bool = False) -> None:
    """Refuse ``text`` (the value of ``field``, or with ``key`` one of its keys) if it holds a lone
    surrogate: a 400 with ``param``."""
    if text.isascii():  # O(1) in CPython: the common case, and every base64 image
        return
    found = _SURROGATE.search(text)
    if found is None:
        return
    where = f"{field} has a key {shown(text)} that" if key else f"{field} {shown(text)}"
    raise InvalidRequest(
        f"{where} holds a lone UTF-16 surrogate at character {found.start()}: send valid Unicode text "
        "(a surrogate escape only as half of a pair)",
        param=param,
        code="invalid_unicode",
    )


def stored_text(value: str, field: str, column: sa.Column[Any]) -> str:
    """``value`` if ``column`` can hold it (see :func:`check_text`); the limit is read from the schema, so
    that it cannot drift from the column."""
    return check_text(value, field, max_chars=column_chars(column))


def check_text(value: str, field: str, *, max_chars: int | None = None, param: str | None = None) -> str:
    """``value`` if a text column can hold it: no NUL (PostgreSQL refuses it in text, SQLite keeps it), no
    lone surrogate, and at most ``max_chars`` (PostgreSQL refuses a longer one, SQLite keeps it). The error
    names ``field`` (``param``, where the caller's field is named otherwise)."""
    param = param or field
    _check_unicode(value, field, param)
    if "\x00" in value:
        raise InvalidRequest(
            f"{field} {shown(value)} holds a NUL character (U+0000) at character {value.index(chr(0))}: "
            "give text without NUL",
            param=param,
            code="invalid_text",
        )
    if max_chars is not None and len(value) > max_chars:
        raise InvalidRequest(
            f"{field} {shown(value)} is {len(value):,} characters long: at most {max_chars:,} are accepted",
            param=param,
            code="text_too_long",
        )
    return value


def column_chars(column: sa.Column[Any]) -> int:
    """How many characters ``column`` (a ``String(n)`` of :mod:`pixelgate.store.schema`) holds."""
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), column
    return length


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
            f"{field} {shown(first.get('input'))} is not valid: {message}", param=field, code="invalid_field"
        ) from None
