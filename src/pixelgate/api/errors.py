"""Errors in the caller's own wire shape. A router marks its dialect on ``request.state.dialect``;
every exception of :mod:`pixelgate.core.errors` is rendered by that dialect's renderer. Where no router
ran (an unknown path, a body refused by middleware) the dialect is guessed from the path and headers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from pixelgate.core.errors import (
    Conflict,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PixelgateError,
)

log = logging.getLogger("pixelgate.api")

Renderer = Callable[[PixelgateError], dict[str, Any]]


def openai_error(error: PixelgateError) -> dict[str, Any]:
    """OpenAI's shape, which the task-style gateways of seeds 000-003 share."""
    return {"error": {"message": error.message, "type": error.kind, "param": error.param, "code": error.code}}


# google.rpc.Code names by HTTP status, as the Gemini API pairs them.
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_error(error: PixelgateError) -> dict[str, Any]:
    """Google's shape: ``{"error": {"code", "message", "status", "details"}}``; pixelgate's own code and
    the field at fault travel in a ``google.rpc.ErrorInfo``, a retry delay in a ``RetryInfo``."""
    info: dict[str, Any] = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": error.code.upper(),
        "domain": "pixelgate",
    }
    if error.param is not None:
        info["metadata"] = {"param": error.param}
    details = [info]
    if error.retry_after is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{max(1, round(error.retry_after))}s",
            }
        )
    return {
        "error": {
            "code": error.status,
            "message": error.message,
            "status": GOOGLE_STATUS.get(error.status, "UNKNOWN"),
            "details": details,
        }
    }


RENDERERS: dict[str, Renderer] = {"openai": openai_error, "gemini": gemini_error}


def set_dialect(request: Request, dialect: str) -> None:
    request.state.dialect = dialect


async def openai_dialect(request: Request) -> None:
    """A router dependency: errors on these routes are rendered in OpenAI's shape."""
    set_dialect(request, "openai")


async def gemini_dialect(request: Request) -> None:
    """A router dependency: errors on these routes are rendered in Google's shape."""
    set_dialect(request, "gemini")


async def dialect_by_client(request: Request) -> None:
    """A router dependency for the paths OpenAI's API and Google's share (``/v1/models``, ``/v1/files``,
    ``/v1/batches``; ``v1`` is the Gemini SDKs' default version): the client's own headers decide."""
    set_dialect(request, "gemini" if sent_by_google_client(request.headers, request.url.query) else "openai")


def is_gemini(request: Request) -> bool:
    return bool(getattr(request.state, "dialect", None) == "gemini")


def sent_by_google_client(headers: Any, query: str) -> bool:
    """Google's SDKs send their key as ``x-goog-api-key`` (or ``?key=``) and name themselves in
    ``x-goog-api-client``; OpenAI's send a bearer token."""
    return "x-goog-api-key" in headers or "x-goog-api-client" in headers or "key" in parse_qs(query, True)


def guess_dialect(path: str, headers: Any, query: str = "") -> str:
    """The dialect of a request no router has claimed: Google's clients use ``/v1beta``, ``:method``
    paths and Interactions, and are known by their headers."""
    if path.startswith(("/v1beta/", "/upload/")) or path == "/v1beta" or "/interactions" in path:
        return "gemini"
    if ":" in path.rsplit("/", 1)[-1] or sent_by_google_client(headers, query):
        return "gemini"
    return "openai"


def error_response(
    request: Request, error: PixelgateError, headers: dict[str, str] | None = None
) -> JSONResponse:
    dialect = getattr(request.state, "dialect", None) or guess_dialect(
        request.url.path, request.headers, request.url.query
    )
    body = RENDERERS.get(dialect, openai_error)(error)
    headers = dict(headers or {})
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return JSONResponse(body, status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_pixelgate_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PixelgateError)
        return error_response(request, exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "path", "query"))
        return error_response(
            request,
            InvalidRequest(
                f"{where or 'the request'} is not valid: {first.get('msg', 'malformed')}", param=where or None
            ),
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            error: PixelgateError = NotFound(
                f"there is no endpoint {request.method} {request.url.path}: see GET /v1/models, "
                "POST /v1/images/generations, POST /v1/images/edits, POST /v1/chat/completions, "
                "POST /v1/responses, GET /v1/tasks/{id}, POST /v1beta/models/{model}:generateContent and "
                "POST /v1beta/interactions",
                code="unknown_endpoint",
            )
        elif exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            error = MethodNotAllowed(
                f"{request.url.path} does not take {request.method}" + (f": use {allow}" if allow else "")
            )
        else:
            error = InvalidRequest(f"the request was refused: {exc.detail}")
        return error_response(request, error, dict(exc.headers or {}))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            request,
            PixelgateError(
                "pixelgate failed on this request (the server log has the details); nothing was billed",
                code="internal_error",
            ),
        )

    app.add_exception_handler(PixelgateError, on_pixelgate_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


async def render_plain_error(scope: Scope, receive: Receive, send: Send, error: PixelgateError) -> None:
    """Answer with ``error`` from ASGI middleware, before any router has run."""
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None
    header_names = {name.decode("latin-1").lower() for name, _ in scope.get("headers", [])}
    dialect = guess_dialect(
        scope.get("path", ""), header_names, scope.get("query_string", b"").decode("latin-1")
    )
    response = JSONResponse(RENDERERS[dialect](error), status_code=error.status, headers=headers)
    await response(scope, receive, send)


@contextmanager
def task_called(noun: str, task_id: str, *, param: str) -> Iterator[None]:
    """The queue's "no such task" 404 and "already ended" 409 in a dialect's own words: a task is an
    interaction to the Interactions API and a response to the Responses API."""
    try:
        yield
    except NotFound as exc:
        if exc.code != "task_not_found":
            raise
        raise NotFound(f"no {noun} has the id {task_id!r}", param=param, code=f"{noun}_not_found") from None
    except Conflict as exc:
        raise Conflict(exc.message.replace("task", noun, 1), param=param, code=exc.code) from None
