"""Memory under reference images that are small to send and huge to decode: six edits at once, each with
twelve PNGs of 8000x8000 in one colour (about 186 KB each, 192 MB each once decoded), through ``pixelgate
serve --emulate``, whose picture draws a thumbnail of every reference. Reports the server's peak resident
memory over its idle level, against the baseline of one such request alone in the same run: a server that
bounds its decoded pixels grows far less than six times, and far less than the 13 GB the references
would take decoded all at once."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from pathlib import Path
from typing import Any

from bench.common import Service, mib
from bench.gateways import base_url, pixelgate_serve
from bench.large import post_edit
from bench.load import session

MODEL = "gemini-3.1-flash-image"


def plan(quick: bool) -> dict[str, int]:
    if quick:
        return {"side": 2000, "references": 4, "requests": 2}
    return {"side": 8000, "references": 12, "requests": 6}


def solid_png(side: int, color: tuple[int, int, int]) -> bytes:
    """A ``side`` x ``side`` RGB PNG of one colour, compressed row by row (never held decoded here)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(color) * side
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9)
    compressed = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", compressed) + chunk(b"IEND", b"")


async def send_all(url: str, pngs: list[bytes], requests: int) -> tuple[list[int], float]:
    """``requests`` edits at once; their statuses and the seconds until the last was answered."""
    edit = post_edit(url, MODEL, pngs)
    started = time.perf_counter()
    async with session(requests) as http:
        answers = await asyncio.gather(*(edit(http) for _ in range(requests)))
    return [status for status, _ in answers], time.perf_counter() - started


def measure(server: Service, pngs: list[bytes], requests: int) -> dict[str, Any]:
    assert server.memory is not None
    idle = server.memory.reset_peak()
    cpu = server.memory.process.cpu_times()
    statuses, seconds = asyncio.run(send_all(base_url(server), pngs, requests))
    used = server.memory.process.cpu_times()
    return {
        "requests": requests,
        "ok": statuses.count(200),
        "statuses": sorted(set(statuses)),
        "seconds": round(seconds, 2),
        "server_cpu_s": round(used.user + used.system - cpu.user - cpu.system, 2),
        "idle_rss_mib": mib(idle),
        "peak_rss_mib": mib(server.memory.peak),
        "growth_mib": mib(server.memory.peak - idle),
    }


def run(workdir: Path, *, quick: bool) -> dict[str, Any]:
    settings = plan(quick)
    side, count = settings["side"], settings["references"]
    pngs = [solid_png(side, (20 * i, 200 - 10 * i, 90)) for i in range(count)]
    cases = {}
    for case, requests in (("alone", 1), ("together", settings["requests"])):
        # A fresh server for each: memory a process once took is seldom given back to the system.
        with pixelgate_serve(workdir, "pixelgate --emulate", "--emulate", "--no-auth") as server:
            asyncio.run(send_all(base_url(server), [solid_png(64, (0, 0, 0))], 1))  # imports, fonts, a task
            cases[case] = measure(server, pngs, requests)
    alone, together = cases["alone"], cases["together"]
    decoded = side * side * 3 * count * settings["requests"]
    result = {
        "side": side,
        "references_per_request": count,
        "reference_kib": round(sum(len(p) for p in pngs) / count / 1024, 1),
        "decoded_if_all_at_once_mib": mib(decoded),
        "alone": alone,
        "together": together,
        "growth_ratio_to_alone": round(together["growth_mib"] / alone["growth_mib"], 2)
        if alone["growth_mib"]
        else None,
    }
    print(
        f"  memory {settings['requests']} x {count} PNGs of {side}x{side} ({result['reference_kib']} KiB): peak "
        f"{together['peak_rss_mib']} MiB (+{together['growth_mib']} MiB from {together['idle_rss_mib']}; one "
        f"request alone +{alone['growth_mib']} MiB, {result['growth_ratio_to_alone']}x), "
        f"{together['ok']}/{together['requests']} answered 200 in {together['seconds']} s "
        f"({together['server_cpu_s']} s of server CPU)",
        flush=True,
    )
    return result
