"""Work in flight: many asynchronous tasks against a slow upstream (10 s an image) through one channel that
allows 1,000 at once. Measures the submission rate, the polling rate (``GET /v1/tasks/{id}``), pixelgate's
peak memory, and that every task completes exactly once (the upstream counts what it was asked for).

The baseline is the least time the work could take: ``ceil(tasks / concurrency) x latency``.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.common import mib
from bench.gateways import MODEL, base_url, pixelgate, upstream
from bench.load import session

TERMINAL = {"completed", "failed", "cancelled"}


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"tasks": 200, "latency": 1.0, "concurrency": 100, "submitters": 16, "pollers": 16}
    return {"tasks": 10_000, "latency": 10.0, "concurrency": 1000, "submitters": 32, "pollers": 8}


async def submit_all(url: str, count: int, submitters: int) -> tuple[list[str], float, int]:
    """Every task submitted by ``submitters`` concurrent clients: the ids, the seconds it took, errors."""
    ids: list[str] = []
    errors = 0
    body = {"model": MODEL, "prompt": "one of ten thousand", "size": "1024x1024", "async": True}
    queue = iter(range(count))
    started = time.perf_counter()
    async with session(submitters) as http:

        async def submitter() -> None:
            nonlocal errors
            for _ in queue:
                try:
                    async with http.post(f"{url}/v1/images/generations", json=body) as response:
                        answer = await response.json()
                        if response.status in (200, 202) and "id" in answer:
                            ids.append(answer["id"])
                        else:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        await asyncio.gather(*(submitter() for _ in range(submitters)))
    return ids, time.perf_counter() - started, errors


async def poll_until_done(url: str, ids: list[str], pollers: int) -> tuple[dict[str, str], int, float]:
    """Poll every task until each has ended, round-robin (each task again once every other pending one
    has been polled): final states, polls made, and the polls per second."""
    pending = collections.deque(ids)
    states: dict[str, str] = {}
    polls = 0
    started = time.perf_counter()
    async with session(pollers) as http:

        async def poller() -> None:
            nonlocal polls
            while pending:
                task_id = pending.popleft()
                try:
                    async with http.get(f"{url}/v1/tasks/{task_id}") as response:
                        status = (await response.json()).get("status")
                except aiohttp.ClientError:
                    status = None
                polls += 1
                if status in TERMINAL:
                    states[task_id] = str(status)
                else:
                    pending.append(task_id)
                    if len(pending) < pollers * 4:
                        await asyncio.sleep(0.2)  # near the end: don't spin on the last few

        await asyncio.gather(*(poller() for _ in range(pollers)))
    return states, polls, polls / (time.perf_counter() - started)


def run(workdir: Path, *, quick: bool) -> dict[str, Any]:
    settings = plan(quick)
    with (
        upstream(workdir, "512", latency=settings["latency"]) as up,
        pixelgate(
            workdir,
            base_url(up),
            concurrency=settings["concurrency"],
            worker_concurrency=settings["concurrency"],
        ) as gateway,
    ):
        url = base_url(gateway)
        assert gateway.memory is not None
        idle_rss = gateway.memory.reset_peak()
        started = time.perf_counter()
        ids, submit_seconds, submit_errors = asyncio.run(
            submit_all(url, settings["tasks"], settings["submitters"])
        )
        states, polls, poll_rate = asyncio.run(poll_until_done(url, ids, settings["pollers"]))
        makespan = time.perf_counter() - started
        asked = httpx.get(f"{base_url(up)}/stats", timeout=10).json()["generations"]
        peak = gateway.memory.peak
    ideal = math.ceil(settings["tasks"] / settings["concurrency"]) * settings["latency"]
    completed = sum(1 for s in states.values() if s == "completed")
    result = {
        **settings,
        "submitted": len(ids),
        "submit_errors": submit_errors,
        "submissions_per_s": round(len(ids) / submit_seconds, 1),
        "polls": polls,
        "polls_per_s": round(poll_rate, 1),
        "completed": completed,
        "upstream_generations": asked,
        "exactly_once": completed == settings["tasks"] == asked,
        "makespan_s": round(makespan, 1),
        "ideal_makespan_s": ideal,
        "ratio_to_ideal": round(makespan / ideal, 2),
        "idle_rss_mib": mib(idle_rss),
        "peak_rss_mib": mib(peak),
        "memory_target_met": peak < 500 * 2**20,
    }
    print(
        f"  in flight: {result['submitted']} tasks at {result['submissions_per_s']}/s, polled at "
        f"{result['polls_per_s']}/s, all done in {result['makespan_s']} s ({result['ratio_to_ideal']}x the "
        f"ideal {ideal:g} s), {completed} completed, upstream asked {asked} times, peak RSS "
        f"{result['peak_rss_mib']} MiB",
        flush=True,
    )
    return result
