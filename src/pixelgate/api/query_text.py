"""Query strings without NUL: no id, cursor or filter holds one, and PostgreSQL refuses it in a query's
text (``?owner=a%00`` was a 500 there). Refused here, once, for every endpoint, naming the parameter."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from pixelgate.api.errors import render_plain_error
from pixelgate.api.parsing import check_text
from pixelgate.core.errors import InvalidRequest


class QueryTextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if b"%00" in query or b"\x00" in query:
            # As Starlette reads it (so the names are those the endpoints see).
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                try:
                    if "\x00" in name:
                        raise InvalidRequest(
                            f"the query parameter {name!r} holds a NUL character (U+0000) in its name: "
                            "give names without NUL",
                            param=name,
                            code="invalid_text",
                        )
                    check_text(value, name)
                except InvalidRequest as exc:
                    await render_plain_error(scope, receive, send, exc)
                    return
        await self.app(scope, receive, send)
