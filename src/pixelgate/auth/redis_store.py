"""The Redis that several pixelgate processes share their counts through (``--redis-url``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as redis
from redis.exceptions import RedisError

from pixelgate.core.errors import ServiceUnavailable

log = logging.getLogger("pixelgate.redis")
_last_logged = 0.0


def connect(url: str, max_connections: int = 64) -> Any:
    """A client whose pool makes a burst wait for a free connection (redis-py's default pool fails the
    101st concurrent caller instead), with short timeouts: a Redis that hangs must turn into a quick 503,
    not a request that hangs with it."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, socket_timeout=5, socket_connect_timeout=5
    )
    return redis.Redis(connection_pool=pool)


def without_password(url: str) -> str:
    """The URL as logs may show it: a password in the address or in the query masked."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    query = [
        (k, "***" if k.lower() == "password" else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


async def answers(client: Any) -> bool:
    try:
        return bool(await client.ping())
    except RedisError:
        return False


@contextmanager
def shared_counts(purpose: str) -> Iterator[None]:
    """Turn Redis being down into a 503 that says so (a limit that cannot be counted is not skipped)."""
    try:
        yield
    except RedisError as error:
        complain(purpose, error)
        # The details (addresses, host names) are for the operator's log, not for whoever is calling.
        raise ServiceUnavailable(
            f"the shared store that keeps {purpose} did not answer: retry shortly",
            code="redis_unavailable",
            retry_after=5.0,
        ) from None


def complain(purpose: str, error: Exception) -> None:
    """Log a Redis failure, at most once every 10 s: an outage must show in the log, not flood it."""
    global _last_logged
    now = time.monotonic()
    if now - _last_logged >= 10:
        _last_logged = now
        log.warning("pixelgate: Redis failed while counting %s: %s: %s", purpose, type(error).__name__, error)
