"""Latency of a synchronous request whose task runs in another process: ``python -m bench.cross_process
--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test [--requests 50]``.

Two ``pixelgate serve --emulate --emulate-latency 0`` processes on one fresh PostgreSQL database (made from
the URL's server, dropped at the end) and one data dir: A accepts and runs nothing (``--no-workers``), B runs
every task. ``--requests`` sequential ``POST /v1/images/generations`` go to A, after a few to warm up. Run
twice: the baseline with ``PIXELGATE_LISTEN=false`` (B finds the task by polling every second, A's waiter
polls with backoff up to a second), then with LISTEN/NOTIFY (each is woken by the other's NOTIFY), then in
one process that runs its own tasks (woken by its bus: the floor). Prints p50, p95 and the mean of each, and
their ratios to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from bench.common import Service, free_port, percentile, python_command

MODEL = "gemini-3.1-flash-image"
# What each run sets in both processes' environment, and whether B runs the tasks (else A runs them itself).
MODES: dict[str, tuple[dict[str, str], bool]] = {
    "polling (LISTEN off)": ({"PIXELGATE_LISTEN": "false"}, True),
    "LISTEN/NOTIFY": ({}, True),
    "one process (floor)": ({}, False),
}


def serve(name: str, url: str, data_dir: Path, env: dict[str, str], *args: str) -> Service:
    port = free_port()
    command = python_command(
        "-m", "pixelgate", "serve", "--port", str(port), "--data-dir", str(data_dir), "--database-url", url,
        "--emulate", "--emulate-latency", "0", "--log-level", "warning", *args,
    )  # fmt: skip
    return Service(name, command, f"http://127.0.0.1:{port}/healthz", env, data_dir / f"{name}.log", data_dir)


def timed_requests(base: str, count: int, warmup: int) -> list[float]:
    """Seconds each of ``count`` sequential synchronous requests took, after ``warmup`` untimed ones."""
    seconds = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for i in range(warmup + count):
            body = {"model": MODEL, "prompt": f"a lighthouse, take {i}", "response_format": "b64_json"}
            started = time.perf_counter()
            response = client.post("/v1/images/generations", json=body)
            took = time.perf_counter() - started
            response.raise_for_status()
            if i >= warmup:
                seconds.append(took)
    return seconds


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_mode(
    admin_url: str, env: dict[str, str], elsewhere: bool, count: int, warmup: int, workdir: Path
) -> list[float]:
    name = f"pixelgate_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin(admin_url, f'CREATE DATABASE "{name}"'))
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    data_dir = workdir / name
    data_dir.mkdir()
    try:
        with contextlib.ExitStack() as running:
            if elsewhere:
                running.enter_context(serve("back", url, data_dir, env))
            front = running.enter_context(
                serve("front", url, data_dir, env, *(["--no-workers"] if elsewhere else []))
            )
            return timed_requests(front.health_url.removesuffix("/healthz"), count, warmup)
    finally:
        asyncio.run(admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cross_process", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", required=True, help="postgresql+asyncpg://… of a server to test on")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pixelgate-bench-") as tmp:
        for mode, (env, elsewhere) in MODES.items():
            print(f"running {mode}…", flush=True)
            seconds = run_mode(args.database_url, env, elsewhere, args.requests, args.warmup, Path(tmp))
            rows.append((mode, [s * 1000 for s in seconds]))
    base = rows[0][1]
    print(f"{args.requests} sequential synchronous requests to A, run by B (emulator, no latency)")
    print(f"{'':22} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}   vs baseline (p50, p95)")
    for mode, ms in rows:
        p50, p95, mean = percentile(ms, 50), percentile(ms, 95), statistics.fmean(ms)
        ratio = f"{p50 / percentile(base, 50):.3f}x, {p95 / percentile(base, 95):.3f}x"
        print(f"{mode:22} {p50:8.1f} {p95:8.1f} {mean:8.1f}   {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
