"""A task's images are all made or none: once one image of an ``n > 1`` task fails, the task fails, and the
images still being made are stopped (so their upstream work is cancelled, not made and paid for)."""

from __future__ import annotations

import asyncio
import time

import pytest

from pixelgate.core.errors import UpstreamRejected
from pixelgate.core.task import Usage
from pixelgate.providers.base import ProviderResult
from pixelgate.tasks.execution import _all_or_none


async def test_the_first_failure_stops_the_other_images() -> None:
    stopped: list[int] = []

    async def image(index: int) -> ProviderResult:
        if index == 1:
            await asyncio.sleep(0.01)
            raise UpstreamRejected(
                "the upstream refused the request (HTTP 400): no", code="upstream_rejected"
            )
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.append(index)
            raise
        return ProviderResult(images=(), usage=Usage())

    started = time.monotonic()
    with pytest.raises(UpstreamRejected):
        await _all_or_none([image(i) for i in range(4)])
    assert time.monotonic() - started < 5
    assert sorted(stopped) == [0, 2, 3]


async def test_all_images_in_order_when_none_fails() -> None:
    async def image(index: int) -> ProviderResult:
        await asyncio.sleep(0.01 * (3 - index))
        return ProviderResult(images=(), usage=Usage(images=index))

    results = await _all_or_none([image(i) for i in range(3)])
    assert [r.usage.images for r in results] == [0, 1, 2]
