"""Every request gets an id and one log line.

The id is the caller's ``X-Request-Id`` where it sent a usable one (so that its own logs and ours join up),
else a new ``req_…``; it is sent back in ``X-Request-Id``, and a task the request makes carries it into the
task's own log lines. The line (event ``request``) says the method, the path, the dialect, the status and
how long the answer took, once it has been sent whole.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelgate.api.errors import guess_dialect
from pixelgate.core import metrics
from pixelgate.core.logs import event, request_id

log = logging.getLogger("pixelgate.requests")
_USABLE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _USABLE_ID.match(given) else f"req_{secrets.token_hex(12)}"
        token = request_id.set(rid)
        status = 500  # what the caller gets if the app fails before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
            state = scope.get("state") or {}
            dialect = state.get("dialect") or guess_dialect(
                scope["path"], {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()},
                scope.get("query_string", b"").decode("latin-1"),
            )  # fmt: skip
            seconds = time.perf_counter() - started
            metrics.requests.labels(dialect, str(status)).inc()
            metrics.request_seconds.labels(dialect).observe(seconds)
            event(
                log,
                "request",
                request_id=rid,
                method=scope["method"],
                path=scope["path"],
                dialect=dialect,
                status=status,
                duration_ms=round(seconds * 1000, 1),
            )
