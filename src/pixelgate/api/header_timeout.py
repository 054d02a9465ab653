"""A deadline for a request's headers, which uvicorn does not have.

uvicorn's only read timer is the keep-alive one, armed after a response and cancelled by the next byte
that arrives: a connection that opens and says nothing, or sends half a request line and stalls, is held
for as long as the client likes, and a few thousand of them ("slowloris") hold every file descriptor.
Here each request's headers must be complete within ``seconds`` of the connection opening or of the
request's first byte; past that the connection gets a ``408 Request Timeout`` and is closed. The body is
not timed here (a large upload on a slow link is fine; ``--max-body-bytes`` bounds its size).

Use: ``uvicorn.run(app, http=header_timeout_protocol(20.0))``. Behind a reverse proxy its own header
timeout (nginx ``client_header_timeout``) applies first; this one guards a server exposed directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_MESSAGE = b"the request's headers did not arrive in time\r\n"
RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_MESSAGE)
    + _MESSAGE
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline (``seconds``, set by the factory below)."""

    seconds: float = 20.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.seconds, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request behind one still being answered: a 408 now would cut into that answer.
            # Its time starts again; the answer in progress has its own limits.
            self._arm()
            return
        self.transport.write(RESPONSE)
        self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class to hand uvicorn (``http=``): it builds connections from a class, not an object."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"seconds": seconds})
