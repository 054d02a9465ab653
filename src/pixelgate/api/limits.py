"""The request body limit, enforced before the body is read into memory (answer: 413)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelgate.core.errors import PayloadTooLarge


class BodyLimitMiddleware:
    """Refuses a body over ``max_bytes``: at once when Content-Length says so, else as the bytes arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: int | str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the request body is {size} bytes: at most {self.max_bytes:,} are accepted "
            "(send large images by URL, or raise --max-body-bytes)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                from pixelgate.api.errors import render_plain_error

                await render_plain_error(scope, receive, send, self._too_large(f"{int(value):,}"))
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large(f"more than {self.max_bytes:,}")
            return message

        await self.app(scope, limited_receive, send)
