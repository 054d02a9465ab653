"""Misbehaviour on demand: the fault queue, and the odd responses no vendor handler would produce itself."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from dataclasses import dataclass

from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .images import encode_image

#: Faults that replace the answer with an error in the vendor's own shape, and their HTTP status.
STATUS_FAULTS = {"400": 400, "429": 429, "500": 500, "503": 503}
#: Faults that answer HTTP 200 with a well-formed vendor body whose image is missing or broken.
PAYLOAD_FAULTS = frozenset({"no_image", "bad_base64", "not_image"})
FAULT_KINDS = frozenset({*STATUS_FAULTS, *PAYLOAD_FAULTS, "hang", "html", "cut"})

#: What "hang" sleeps when the test gives no ``seconds``: long enough to count as forever.
HANG_FOREVER = 3600.0
BAD_BASE64 = "!!!notbase64"
NOT_IMAGE = b"hello world"

#: What an nginx in front of a dead upstream really answers.
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Fault:
    """One queued misbehaviour (see :meth:`Simulator.fail_next`)."""

    kind: str
    retry_after: float | None = None
    seconds: float | None = None
    path_contains: str | None = None

    def applies_to(self, path: str, generation: bool) -> bool:
        # Without a path filter a fault is meant for the expensive call (the generation), never for the
        # polls and downloads around it; with one, the test has said exactly where it belongs.
        if self.path_contains is None:
            return generation
        return self.path_contains in path

    @property
    def hang_seconds(self) -> float:
        return HANG_FOREVER if self.seconds is None else self.seconds


class FaultQueue:
    """Faults in the order they were queued, each good for a number of requests.

    Appended to by the test thread and consumed by the server's thread, hence the lock. A request takes
    the *first* pending fault that applies to it, so a fault aimed at polls does not block one aimed at
    the create call behind it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Fault, int]] = []

    def add(self, fault: Fault, times: int) -> None:
        with self._lock:
            self._pending.append((fault, times))

    def take(self, path: str, generation: bool) -> Fault | None:
        with self._lock:
            for index, (fault, left) in enumerate(self._pending):
                if fault.applies_to(path, generation):
                    if left > 1:
                        self._pending[index] = (fault, left - 1)
                    else:
                        del self._pending[index]
                    return fault
        return None

    def pending(self) -> list[tuple[Fault, int]]:
        with self._lock:
            return list(self._pending)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()


def image_bytes(fault: Fault | None, width: int, height: int, fmt: str = "png") -> bytes | None:
    """The image a vendor would deliver as a file (URL mode), as the fault has it: None for "no_image",
    bytes that are no picture for "not_image" and "bad_base64" (a file cannot carry bad base64)."""
    kind = fault.kind if fault is not None else None
    if kind == "no_image":
        return None
    if kind == "not_image":
        return NOT_IMAGE
    if kind == "bad_base64":
        return BAD_BASE64.encode()
    return encode_image(width, height, fmt)


def image_b64(fault: Fault | None, width: int, height: int, fmt: str = "png") -> str | None:
    """The base64 text a vendor would inline, as the fault has it (None for "no_image")."""
    if fault is not None and fault.kind == "bad_base64":
        return BAD_BASE64
    data = image_bytes(fault, width, height, fmt)
    return None if data is None else base64.b64encode(data).decode("ascii")


def html_error_page() -> Response:
    """A proxy's error page where the client expects JSON."""
    return HTMLResponse(NGINX_502, status_code=502)


def format_retry_after(seconds: float) -> str:
    # Whole seconds as the RFC wants them; fractions stay so that tests can keep their waits short.
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class ConnectionCut(Exception):
    """Raised by :class:`CutResponse` after part of the body went out.

    An exception escaping an ASGI app *after* the response started is the one thing uvicorn answers by
    simply closing the connection, which is precisely the failure this fault wants the client to see.
    """


class CutResponse(Response):
    """The normal answer, cut off: headers promise the whole body, half of it arrives, the connection closes.

    A streamed answer (no Content-Length, chunked) is cut after its first chunk instead, leaving the
    chunked encoding unterminated. Either way the client sees an incomplete message
    (httpx.RemoteProtocolError), not a short-but-valid one.
    """

    def __init__(self, source: Response, body: bytes, streamed: bool) -> None:
        super().__init__(status_code=source.status_code)
        self._source = source
        self._partial = body if streamed else body[: len(body) // 2]
        self._streamed = streamed
        self._declared = len(body)

    @classmethod
    async def of(cls, source: Response) -> CutResponse:
        if isinstance(source, StreamingResponse):
            first = b""
            async for chunk in source.body_iterator:
                first = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                break
            return cls(source, first, streamed=True)
        return cls(source, bytes(source.body), streamed=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(name, value) for name, value in self._source.raw_headers if name != b"content-length"]
        if not self._streamed:
            headers.append((b"content-length", str(self._declared).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": self._partial, "more_body": True})
        raise ConnectionCut("simulated connection cut mid-body")


class _HideDeliberateCuts(logging.Filter):
    """Keeps uvicorn from logging a traceback for every cut the tests asked for, and for every hung request
    that stop() cancels (uvicorn's own "Cancel N running task(s)" line still says so); real errors show."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_type = record.exc_info[0] if record.exc_info else None
        return not (exc_type is not None and issubclass(exc_type, ConnectionCut | asyncio.CancelledError))


def install_cut_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _HideDeliberateCuts) for existing in logger.filters):
        logger.addFilter(_HideDeliberateCuts())
