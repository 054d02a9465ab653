"""Requests per minute per key: in this process, or in Redis so that every process shares the count.

A fixed window per minute, counted before the request is served: simple, and exact at the window's edge
to within one window. The count is of task-creating requests only (generations, edits, interactions);
reading a task's state is not limited, since clients are told to poll.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from pixelgate.auth.redis_store import shared_counts
from pixelgate.core.errors import RateLimited


class RequestRate(Protocol):
    async def hit(self, key_id: str, limit: int) -> None:
        """Count one request of ``key_id``; raise ``RateLimited`` if it is over ``limit`` a minute."""
        ...


def _over(key_id: str, count: int, limit: int, now: float) -> RateLimited:
    wait = 60 - now % 60
    return RateLimited(
        f"key {key_id} has sent {count} requests this minute, over its limit of {limit} requests per "
        f"minute: the count resets in {wait:.0f} s",
        code="rate_limit_exceeded",
        param="requests_per_minute",
        retry_after=wait,
    )


class LocalRequestRate:
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, key_id: str, limit: int) -> None:
        now = time.time()
        window = int(now // 60)
        if len(self._counts) > 10_000:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
        count = self._counts.get((key_id, window), 0) + 1
        self._counts[(key_id, window)] = count
        if count > limit:
            raise _over(key_id, count, limit, now)


class RedisRequestRate:
    """One counter per key and minute (``pixelgate:rpm:<key>:<minute>``), expiring after two minutes."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def hit(self, key_id: str, limit: int) -> None:
        now = time.time()
        name = f"pixelgate:rpm:{key_id}:{int(now // 60)}"
        with shared_counts("requests per minute"):
            async with self.client.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(name).expire(name, 120).execute()
        if count > limit:
            raise _over(key_id, int(count), limit, now)
