"""The laned connection pool of a channel: together the lanes allow exactly ``max_connections`` requests at
once, a light load stays on one connection, and a failed request gives its place back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx2
import pytest

from pixelgate.providers.lanes import LanedTransport


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


async def test_the_lanes_together_allow_exactly_max_connections(upstream: HeldUpstream) -> None:
    transport = LanedTransport(max_connections=130, lane_size=64)
    assert len(transport.lanes) == 3
    async with httpx2.AsyncClient(
        transport=transport, base_url=f"http://127.0.0.1:{upstream.port}"
    ) as client:
        requests = [asyncio.ensure_future(client.get(f"/{i}")) for i in range(131)]
        for _ in range(500):
            if upstream.waiting == 130:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # time enough for a 131st to arrive, if a lane let it through
        assert upstream.most_waiting == 130
        assert transport.sizes == [44, 43, 43]
        assert sum(transport.busy) == 131  # the 131st waits in a lane, as it would in one pool

        upstream.release.set()
        answers = await asyncio.gather(*requests)

    assert [a.text for a in answers] == ["ok"] * 131
    assert transport.busy == [0, 0, 0]


async def test_a_light_load_stays_on_one_connection(upstream: HeldUpstream) -> None:
    upstream.release.set()
    transport = LanedTransport(max_connections=1000)
    async with httpx2.AsyncClient(
        transport=transport, base_url=f"http://127.0.0.1:{upstream.port}"
    ) as client:
        for _ in range(20):
            assert (await client.get("/")).text == "ok"
    assert upstream.connections == 1
    assert transport.busy == [0] * 16


async def test_a_failed_request_gives_its_place_back(upstream: HeldUpstream) -> None:
    upstream.hang_up = True
    transport = LanedTransport(max_connections=4, lane_size=2)
    async with httpx2.AsyncClient(
        transport=transport, base_url=f"http://127.0.0.1:{upstream.port}"
    ) as client:
        outcomes = await asyncio.gather(*(client.get("/") for _ in range(8)), return_exceptions=True)
    assert all(isinstance(outcome, httpx2.RemoteProtocolError) for outcome in outcomes)
    assert transport.busy == [0, 0]
