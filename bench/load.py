"""Load generators: closed-loop clients (each sends its next request when the last one is answered)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from bench.common import percentile

# One request: sends it with the session and returns (status, bytes received).
Request = Callable[[aiohttp.ClientSession], Awaitable[tuple[int, int]]]


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    received: int = 0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def summary(self) -> dict[str, object]:
        """What every benchmark reports of a load: counts, throughput and latency percentiles."""
        return {
            "requests": len(self.latencies),
            "errors": dict(self.errors),
            "throughput_rps": round(self.throughput, 2),
            "p50_ms": round(percentile(self.latencies, 50) * 1000, 1),
            "p99_ms": round(percentile(self.latencies, 99) * 1000, 1),
        }


def session(clients: int, timeout: float = 600) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=clients + 8, limit_per_host=clients + 8, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout))


def post_json(url: str, body: dict[str, object], headers: dict[str, str] | None = None) -> Request:
    async def send(http: aiohttp.ClientSession) -> tuple[int, int]:
        async with http.post(url, json=body, headers=headers) as response:
            data = await response.read()
            return response.status, len(data)

    return send


async def closed_loop(request: Request, clients: int, duration: float, *, warmup: int = 2) -> LoadResult:
    """``clients`` concurrent clients sending ``request`` back to back for ``duration`` seconds (after
    ``warmup`` requests each, which are not counted)."""
    result = LoadResult()
    async with session(clients) as http:
        await asyncio.gather(*(request(http) for _ in range(min(clients, 8) * warmup)))
        started = time.perf_counter()
        deadline = started + duration

        async def client() -> None:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    status, size = await request(http)
                except (aiohttp.ClientError, TimeoutError) as error:
                    result.errors[type(error).__name__] += 1
                    continue
                if status == 200:
                    result.latencies.append(time.perf_counter() - sent)
                    result.received += size
                else:
                    result.errors[f"HTTP {status}"] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
        result.elapsed = time.perf_counter() - started
    return result
