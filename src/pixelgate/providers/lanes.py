"""A connection pool for a channel with a thousand requests in flight: several small pools ("lanes").

httpcore's pool walks every connection it holds each time a request starts or ends, and asks each idle
one whether its socket is readable. With a pool as large as a channel's concurrency (1,000 in the
in-flight benchmark), a burst of answers costs a million of those checks and stalls the event loop for
seconds. Lanes of at most ``LANE_SIZE`` connections keep each walk short; a request takes the lane with
the most room, and the lanes' sizes sum to ``max_connections``, so together they allow exactly as many at
once as one pool would.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable

import httpx2

LANE_SIZE = 64


class LanedTransport(httpx2.AsyncBaseTransport):
    def __init__(self, max_connections: int, lane_size: int = LANE_SIZE) -> None:
        count = max(1, math.ceil(max_connections / lane_size))
        base, extra = divmod(max_connections, count)
        self.sizes = [base + (1 if lane < extra else 0) for lane in range(count)]  # summing to the max
        tls = httpx2.create_ssl_context()  # one for all lanes: each would load the CA bundle, about 1 MB
        self.lanes = [
            httpx2.AsyncHTTPTransport(
                limits=httpx2.Limits(max_connections=size, max_keepalive_connections=size), verify=tls
            )
            for size in self.sizes
        ]
        self.busy = [0] * count

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        # The lane with the most room, the first of them on a tie: lane 0 fills first, so that a light
        # load reuses its connections. With every lane full the request waits in one, as in one pool.
        lane = max(range(len(self.lanes)), key=lambda i: self.sizes[i] - self.busy[i])
        self.busy[lane] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.busy[lane] -= 1

        try:
            response = await self.lanes[lane].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _ReleasedOnClose(response.stream, release)
        return response

    async def aclose(self) -> None:
        for lane in self.lanes:
            await lane.aclose()


class _ReleasedOnClose(httpx2.AsyncByteStream):
    """A response body that frees its lane when it is closed, as the connection returns to the pool."""

    def __init__(self, stream: httpx2.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()
