"""Reading requests: JSON bodies into pydantic models, with errors that name the field, the value and what is
allowed; and the one check of what a database can keep (:func:`check_storable` for every JSON value read,
:func:`stored_text` for a string bound for a text column), so that no request is saved and then failed."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from fastapi import Request
from pydantic import BaseModel, ValidationError

from pixelgate.core.errors import InvalidRequest
from pixelgate.store.schema import column_chars

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
    try:
        check_storable(data, max_depth=MAX_JSON_DEPTH)
    except TooDeep:
        raise InvalidRequest(
            f"the request body nests more than {MAX_JSON_DEPTH} levels deep: at most {MAX_JSON_DEPTH} are "
            "accepted (flatten it)",
            code="invalid_json",
        ) from None
    return data


class NotJSON(ValueError):
    """Text that is not one JSON value; the message says why, in words that fit after "not valid JSON"."""


class TooDeep(NotJSON):
    """JSON that nests past :data:`MAX_JSON_DEPTH` levels."""


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
    check_storable(value, root="the line", max_depth=MAX_JSON_DEPTH)
    return value


class NotAnObject(NotJSON):
    """A line of a JSONL file that is JSON, but not an object; the message is the type it is."""


def jsonl_objects(text: str) -> Iterator[tuple[int, dict[str, Any] | NotJSON | InvalidRequest]]:
    """Each non-blank line of a JSONL file, numbered from 1: its object, or what is wrong with it
    (:class:`NotJSON`, :class:`NotAnObject`, or an :class:`InvalidRequest` for JSON no database keeps).
    A bad line does not stop the reading: each dialect decides whether one bad line refuses the file."""
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = load_json_line(raw)
        except (NotJSON, InvalidRequest) as exc:
            yield number, exc
            continue
        yield number, value if isinstance(value, dict) else NotAnObject(type(value).__name__)


# No API of pixelgate's nests past a dozen levels; a cap keeps every recursive walk of a body safe.
MAX_JSON_DEPTH = 64

# What Python's JSON reader accepts but nothing downstream can hold: a lone surrogate (JSON's "\ud800"
# escape) is no Unicode text, so it cannot be encoded as UTF-8 for PostgreSQL nor for any answer; NaN and
# Infinity (and 1e999, read as Infinity) are no JSON at all, refused by PostgreSQL's json type; and an
# integer past 64 bits cannot be written back by orjson, which renders every answer.
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def check_storable(
    value: Any, where: str = "", *, root: str = "the request body", max_depth: int | None = None
) -> None:
    """Refuse ``value`` (JSON as read) if any string in it, key or value, holds a lone surrogate, or any
    number in it is not finite or does not fit in 64 bits: a 400 that names such a place (``where`` is the
    path of ``value`` itself, ``root`` what names it when that is empty); with ``max_depth``, raise
    :class:`TooDeep` if it nests deeper. Every request body and batch line passes here once, as it is read,
    so that nothing is saved from a request whose answer would then fail.

    One pass without recursion (the input is untrusted), that builds a path only for a container or a
    fault: a body of millions of values costs of the order of what reading it did."""
    _check_leaf(value, where, root)
    # Each entry: a container, its depth, and where it sits (its parent's entry and its key there), from
    # which its path is spelled only if something in it is refused.
    stack: list[tuple[Any, int, Any]] = [(value, 1, where)] if isinstance(value, (dict, list)) else []
    while stack:
        entry = stack.pop()
        node, depth, _ = entry
        if max_depth is not None and depth > max_depth:
            raise TooDeep(f"it nests too deeply: at most {max_depth} levels are accepted (flatten it)")
        items = node.items() if type(node) is dict else enumerate(node)
        for key, item in items:
            if type(key) is str and not key.isascii():
                path = _path(entry)
                _check_unicode(key, path or root, path or None, key=True)
            kind = type(item)
            if kind is str:
                if item.isascii() or _SURROGATE.search(item) is None:
                    continue
            elif kind is dict or kind is list:
                if item or (max_depth is not None and depth >= max_depth):
                    stack.append((item, depth + 1, (entry, key)))
                continue
            elif kind is int:
                if _INT_MIN <= item <= _INT_MAX:
                    continue
            elif kind is float:
                if item - item == 0:  # finite: inf - inf and nan - nan are nan
                    continue
            else:
                continue
            _check_leaf(item, _join(_path(entry), key), root)


def _path(entry: tuple[Any, int, Any]) -> str:
    """The path of a container ``check_storable`` reached (see its stack)."""
    keys: list[Any] = []
    where = entry[2]
    while isinstance(where, tuple):
        parent, key = where
        keys.append(key)
        where = parent[2]
    path = str(where)
    for key in reversed(keys):
        path = _join(path, key)
    return path


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _check_leaf(value: Any, path: str, root: str) -> None:
    """A string or a number at ``path`` (``root`` names an empty path): raise if nothing can keep it."""
    where = path or root
    if isinstance(value, str):
        _check_unicode(value, where, path or None)
    elif isinstance(value, float) and not math.isfinite(value):
        literal = "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"
        raise InvalidRequest(
            f"{where} is {literal}, which is not JSON: give a finite number",
            param=path or None,
            code="invalid_json",
        )
    elif type(value) is int and not _INT_MIN <= value <= _INT_MAX:
        raise InvalidRequest(
            f"{where} {shown(value)} does not fit in 64 bits: give an integer from {_INT_MIN:,} to {_INT_MAX:,}",
            param=path or None,
            code="number_out_of_range",
        )


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
