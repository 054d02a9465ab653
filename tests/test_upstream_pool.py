"""A channel's connection pool: it allows exactly ``max_connections`` requests at once (a thousand in the
in-flight benchmark), a light load stays on one connection, and a failed request gives its place back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pixelgate.core.errors import UpstreamError
from upstreams.client import channel_client


@dataclass
class HeldUpstream:
    """An HTTP/1.1 server on a loopback port that holds every request until ``release`` is set (or hangs
    up without answering, if ``hang_up``), counting connections and requests in progress."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    hang_up: bool = False
    connections: int = 0
    waiting: int = 0
    most_waiting: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.waiting += 1
                self.most_waiting = max(self.most_waiting, self.waiting)
                try:
                    if self.hang_up:
                        return
                    await self.release.wait()
                finally:
                    self.waiting -= 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture()
async def upstream() -> AsyncIterator[HeldUpstream]:
    held = HeldUpstream()
    server = await asyncio.start_server(held.handle, "127.0.0.1", 0, backlog=1024)
    held.port = server.sockets[0].getsockname()[1]
    async with server:
        yield held


async def test_the_pool_allows_exactly_max_connections(upstream: HeldUpstream) -> None:
    http = channel_client(upstream.port, max_connections=130, timeout=30)
    try:
        requests = [asyncio.ensure_future(http.send("GET", f"/{i}")) for i in range(131)]
        for _ in range(500):
            if upstream.waiting == 130:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # time enough for a 131st to arrive, if the pool let it through
        assert upstream.most_waiting == 130
        assert upstream.connections == 130

        upstream.release.set()
        answers = await asyncio.gather(*requests)
    finally:
        await http.close()
    assert [a.content for a in answers] == [b"ok"] * 131


async def test_a_light_load_stays_on_one_connection(upstream: HeldUpstream) -> None:
    upstream.release.set()
    http = channel_client(upstream.port, max_connections=1000, timeout=30)
    try:
        for _ in range(20):
            assert (await http.send("GET", "/")).content == b"ok"
    finally:
        await http.close()
    assert upstream.connections == 1


async def test_a_failed_request_gives_its_place_back(upstream: HeldUpstream) -> None:
    upstream.hang_up = True
    http = channel_client(upstream.port, max_connections=4, timeout=30)
    try:
        outcomes = await asyncio.gather(*(http.send("GET", "/") for _ in range(8)), return_exceptions=True)
        assert all(
            isinstance(outcome, UpstreamError) and outcome.code == "upstream_connection_lost"
            for outcome in outcomes
        ), outcomes
        # Every place is free again: four requests held at once get all four.
        upstream.hang_up = False
        held = [asyncio.ensure_future(http.send("GET", "/")) for _ in range(4)]
        for _ in range(500):
            if upstream.waiting == 4:
                break
            await asyncio.sleep(0.01)
        assert upstream.waiting == 4
        upstream.release.set()
        assert [a.content for a in await asyncio.gather(*held)] == [b"ok"] * 4
    finally:
        await http.close()
