"""The Redis that several pixelgate processes share their counts through (``--redis-url``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis
from redis.exceptions import RedisError

from pixelgate.core.errors import ServiceUnavailable


def connect(url: str) -> Any:
    # Short timeouts: a Redis that hangs must turn into a quick 503, not a request that hangs with it.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def without_password(url: str) -> str:
    """The URL as logs may show it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


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
        raise ServiceUnavailable(
            f"the Redis that keeps {purpose} did not answer ({type(error).__name__}: {error}): retry shortly, "
            "or ask the gateway's operator to check --redis-url",
            code="redis_unavailable",
            retry_after=5.0,
        ) from None
