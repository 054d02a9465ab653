"""Guessing keys: failed key checks are counted per client address, and past a limit refused with a 429.

Counted in this process, or in Redis (``--redis-url``) so that a guesser spreading attempts over several
processes behind one load balancer meets one count.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import Any, Protocol

from redis.exceptions import RedisError

from pixelgate.auth.redis_store import complain
from pixelgate.core.errors import RateLimited

MAX_FAILURES = 20
FAILURE_WINDOW = 60.0


class FailureGuard(Protocol):
    limit: int
    window: float

    async def check(self, address: str) -> None:
        """Raise ``RateLimited`` if ``address`` has failed ``limit`` times within the last ``window`` s."""
        ...

    async def failed(self, address: str) -> None:
        """Count one failed key check from ``address``."""
        ...


def _refusal(address: str, failures: int, limit: int, window: float, wait: float) -> RateLimited:
    return RateLimited(
        f"too many invalid API keys from {address}: {failures} in the last {window:g} s (at most {limit}); "
        f"try again in {max(wait, 1):.0f} s",
        code="too_many_invalid_keys",
        retry_after=max(wait, 1.0),
    )


class LocalFailureGuard:
    """Failed key checks per client address in a sliding window, in this process."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    async def check(self, address: str) -> None:
        now = time.monotonic()
        failures = self._recent(address, now)
        if len(failures) >= self.limit:
            raise _refusal(address, len(failures), self.limit, self.window, failures[0] + self.window - now)

    async def failed(self, address: str) -> None:
        now = time.monotonic()
        self._recent(address, now).append(now)
        if len(self._failures) > 10_000:  # forget quiet addresses rather than grow without bound
            for stale in [a for a, f in self._failures.items() if not f or f[-1] <= now - self.window]:
                del self._failures[stale]


class RedisFailureGuard:
    """The same sliding window, as one sorted set per address (``pixelgate:keyfail:<address>``, scored by
    the time of each failure) that every process on that Redis shares.

    If Redis fails, this process counts on its own until it answers again: the guard is a second line of
    defence (keys carry 256 random bits), and a Redis outage must not lock every caller out, the admin
    included. Requests per minute, a limit someone pays for, stay refused while Redis is down.
    """

    def __init__(self, client: Any, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.client = client
        self.limit = limit
        self.window = window
        self.fallback = LocalFailureGuard(limit, window)

    async def check(self, address: str) -> None:
        try:
            await self._check(address)
        except RedisError as error:
            complain("failed key checks (counted in this process meanwhile)", error)
            await self.fallback.check(address)

    async def failed(self, address: str) -> None:
        try:
            await self._failed(address)
        except RedisError as error:
            complain("failed key checks (counted in this process meanwhile)", error)
            await self.fallback.failed(address)

    async def _check(self, address: str) -> None:
        now = time.time()
        name = f"pixelgate:keyfail:{address}"
        # Read only: every authenticated request passes here; old failures are trimmed where one is added.
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zcount(name, f"({now - self.window}", "+inf")
            pipe.zrangebyscore(name, f"({now - self.window}", "+inf", start=0, num=1, withscores=True)
            count, oldest = await pipe.execute()
        if count >= self.limit:
            first = oldest[0][1] if oldest else now
            raise _refusal(address, int(count), self.limit, self.window, first + self.window - now)

    async def _failed(self, address: str) -> None:
        now = time.time()
        name = f"pixelgate:keyfail:{address}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(name, "-inf", now - self.window)
            # A random member: two failures in the same instant, from two processes, are two.
            pipe.zadd(name, {f"{now:.6f}:{secrets.token_hex(4)}": now})
            pipe.expire(name, int(self.window) + 1)
            await pipe.execute()
