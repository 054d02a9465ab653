"""The common machinery of the upstream simulators: serving, recording, auth and faults.

A vendor simulator subclasses :class:`Simulator`, lists its routes with :meth:`Simulator.route` and says how
its errors look (:meth:`Simulator.error`) and how it authenticates (:meth:`Simulator.authorized`,
:meth:`Simulator.auth_error`). Everything a test controls or inspects lives here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .faults import (
    FAULT_KINDS,
    PAYLOAD_FAULTS,
    STATUS_FAULTS,
    CutResponse,
    Fault,
    FaultQueue,
    format_retry_after,
    html_error_page,
    install_cut_log_filter,
)
from .recording import Recorded, record
from .server import ServerThread

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: How often a waiting handler checks whether its client has gone away.
DISCONNECT_POLL = 0.05
SIMULATED_BAD_REQUEST = "simulated bad request: the simulator was told to reject this request"


class Rejected(Exception):
    """Raised by a handler to answer with the vendor's error shape (``fields`` are vendor extras)."""

    def __init__(self, status: int, message: str | None = None, **fields: Any) -> None:
        super().__init__(message or str(status))
        self.status = status
        self.message = message
        self.fields = fields


@dataclass
class Call:
    """What a handler gets: the request, its record, and the payload fault (if any) it must act out."""

    request: Request
    record: Recorded
    fault: Fault | None

    def json_object(self) -> dict[str, Any]:
        """The JSON body when it is an object, else Rejected(400)."""
        if not isinstance(self.record.json, dict):
            raise Rejected(400, "The request body is not a JSON object.")
        return self.record.json


Handler = Callable[[Call], Awaitable[Response]]


class Simulator:
    """A vendor's API on ``http://127.0.0.1:<free port>``, for the length of a ``with`` block.

    ``with GeminiSimulator() as sim: ...`` or ``sim.start()`` / ``sim.stop()``.
    """

    name: ClassVar[str] = "upstream"

    def __init__(self, *, api_key: str | None = None, delay: float = 0.0) -> None:
        #: When set, requests without exactly this key get the vendor's authentication error.
        self.api_key = api_key
        #: Seconds every generation answer waits before it is sent: a slow upstream.
        self.delay = delay
        #: Every request received, in order.
        self.requests: list[Recorded] = []
        #: Generation requests being handled right now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._faults = FaultQueue()
        self._server: ServerThread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, once started."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; start() it first")
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> Self:
        if self._server is not None:
            return self
        install_cut_log_filter()
        catch_all = self.route("/{path:path}", self._unknown_route, methods=ALL_METHODS, auth=False)
        app = Starlette(routes=[*self.routes(), catch_all])
        server = ServerThread(app, name=f"{self.name}-simulator")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stops serving; a request still hanging is cancelled after about a second."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what tests control and inspect ---------------------------------------------------------------

    def reset(self) -> None:
        """Forgets recorded requests, pending faults and the in-flight high-water mark."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight
        self._faults.clear()
        self._reset_vendor_state()

    def fail_next(
        self,
        fault: str,
        times: int = 1,
        *,
        retry_after: float | None = None,
        seconds: float | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Queues ``fault`` for the next ``times`` matching requests.

        Kinds: "429", "500", "503", "400" (vendor-shaped errors; "429" sends Retry-After only when
        ``retry_after`` is given), "hang" (waits ``seconds``, default an hour, then answers normally),
        "no_image", "bad_base64", "not_image" (HTTP 200 with a missing or broken image), "html" (502 with
        nginx's HTML page) and "cut" (the connection closes mid-body).

        Without ``path_contains`` only generation endpoints take faults; with it, any request whose path
        contains the string does (polls, downloads, listings). Faults are taken in the order queued; a
        request takes the first one that applies to it.
        """
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULT_KINDS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.add(Fault(fault, retry_after, seconds, path_contains), times)

    def pending_faults(self) -> list[tuple[Fault, int]]:
        """Faults not yet used up, with the number of uses left."""
        return self._faults.pending()

    def calls(self, path_contains: str = "") -> list[Recorded]:
        """Recorded requests whose path contains ``path_contains`` (all of them by default)."""
        with self._lock:
            return [rec for rec in self.requests if path_contains in rec.path]

    # -- what a vendor subclass provides --------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        raise NotImplementedError

    def error(self, status: int, message: str | None = None, **fields: Any) -> Response:
        """The vendor's error body for ``status``; ``message`` None means the vendor's usual wording."""
        raise NotImplementedError

    def authorized(self, request: Request) -> bool:
        raise NotImplementedError

    def auth_error(self, request: Request) -> Response:
        raise NotImplementedError

    def _reset_vendor_state(self) -> None:
        """Clears vendor-specific pending misbehaviour (queued task failures...)."""

    # -- helpers for subclasses -----------------------------------------------------------------------

    def route(
        self,
        path: str,
        handler: Handler,
        *,
        methods: Sequence[str] = ("GET",),
        generation: bool = False,
        auth: bool = True,
    ) -> Route:
        """A route that records, authenticates, applies faults, and (for ``generation``) counts the request
        in flight and honours :attr:`delay`."""

        async def endpoint(request: Request) -> Response:
            recorded = await record(request)
            with self._lock:
                self.requests.append(recorded)
            if auth and self.api_key is not None and not self.authorized(request):
                return self.auth_error(request)
            fault = self._faults.take(recorded.path, generation)
            call = Call(request, recorded, fault)
            if not generation:
                return await self._answer(handler, call)
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                if self.delay > 0:
                    await wait(request, self.delay)
                return await self._answer(handler, call)
            finally:
                with self._lock:
                    self.in_flight -= 1

        return Route(path, endpoint, methods=list(methods))

    async def _answer(self, handler: Handler, call: Call) -> Response:
        fault = call.fault
        kind = fault.kind if fault is not None else None
        if fault is None or kind in PAYLOAD_FAULTS:
            return await self._handle(handler, call)
        if kind in STATUS_FAULTS:
            status = STATUS_FAULTS[fault.kind]
            response = self.error(status, SIMULATED_BAD_REQUEST if status == 400 else None)
            if status == 429 and fault.retry_after is not None:
                response.headers["Retry-After"] = format_retry_after(fault.retry_after)
            return response
        if kind == "html":
            return html_error_page()
        normal = Call(call.request, call.record, None)
        if kind == "hang":
            await wait(call.request, fault.hang_seconds)
            return await self._handle(handler, normal)
        if kind == "cut":
            return await CutResponse.of(await self._handle(handler, normal))
        raise AssertionError(f"fault {kind!r} has no behaviour")

    async def _handle(self, handler: Handler, call: Call) -> Response:
        try:
            return await handler(call)
        except Rejected as rejected:
            return self.error(rejected.status, rejected.message, **rejected.fields)

    async def _unknown_route(self, call: Call) -> Response:
        return self.error(404, f"Unknown path {call.request.method} {call.request.url.path}")


async def wait(request: Request, seconds: float) -> None:
    """Sleeps ``seconds``, or less if the client disconnects: a hung handler whose client gave up should
    stop counting as in flight, and should not hold up stop()."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(left, DISCONNECT_POLL))
        if await request.is_disconnected():
            return
