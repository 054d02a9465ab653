"""One relay cell, measured and optionally profiled: where pixelgate's CPU per image goes.

    python -m bench.profile [--image 1k|4k] [--format url|b64_json] [--clients 16] [--seconds 10]
                            [--repeat 3] [--py-spy out.txt] [--polls] [--bare]

Starts the fixed-image upstream and one pixelgate relaying to it (as ``python -m bench relay`` does), runs
closed-loop clients against pixelgate, and prints its throughput and its CPU per image (from /proc, every
image the upstream made). ``--repeat`` runs the load again on the same servers and prints each run, so the
spread is visible. With ``--py-spy``, the last run is sampled by py-spy and the collapsed stacks are written
to that file, with a summary of the functions that hold the most samples (own and cumulative).

With ``--polls``, the load is ``GET /v1/tasks/{id}`` of 300 async tasks that are still running (against an
upstream that answers after an hour), as the pollers of ``python -m bench inflight`` send it, and the CPU
is per poll.

With ``--bare``, the gateway measured is ``bench/bare.py`` (the least code that relays and stores each
image) instead of pixelgate: the same cell's baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import Service
from bench.gateways import MODEL, UPSTREAM_MODEL, bare, base_url, generations, pixelgate, upstream
from bench.inflight import submit_all
from bench.load import closed_loop, post_json


def measure(
    up: Service, gateway: Service, model: str, response_format: str, clients: int, seconds: float
) -> str:
    body = {"model": model, "prompt": "a lighthouse", "size": "1024x1024", "response_format": response_format}
    assert gateway.memory is not None
    made, cpu, split = generations(up), gateway.cpu_seconds(), gateway.memory.process.cpu_times()
    result = asyncio.run(
        closed_loop(post_json(f"{base_url(gateway)}/v1/images/generations", body), clients, seconds)
    )
    images = max(1, generations(up) - made)
    cpu_ms = (gateway.cpu_seconds() - cpu) / images * 1000
    user_ms, system_ms = split_ms(gateway, split, images)
    summary = result.summary()
    errors = f", errors {summary['errors']}" if summary["errors"] else ""
    return (
        f"{summary['throughput_rps']:7.1f} req/s, p50 {summary['p50_ms']:7.1f} ms, "
        f"CPU {cpu_ms:6.2f} ms/image (user {user_ms:.2f}, system {system_ms:.2f}) over {images} images{errors}"
    )


def measure_polls(gateway: Service, clients: int, seconds: float) -> str:
    """CPU per ``GET /v1/tasks/{id}`` of a running task, the in-flight bench's poll."""
    url = base_url(gateway)
    ids, _, _ = asyncio.run(submit_all(url, 300, 16))
    assert gateway.memory is not None
    before = gateway.memory.process.cpu_times()

    async def poll(http: aiohttp.ClientSession) -> tuple[int, int]:
        async with http.get(f"{url}/v1/tasks/{random.choice(ids)}") as response:
            return response.status, len(await response.read())

    result = asyncio.run(closed_loop(poll, clients, seconds))
    user_ms, system_ms = split_ms(gateway, before, max(1, len(result.latencies)))
    summary = result.summary()
    return (
        f"{summary['throughput_rps']:7.1f} polls/s, p50 {summary['p50_ms']:6.2f} ms, "
        f"CPU {user_ms + system_ms:5.3f} ms/poll (user {user_ms:.3f}, system {system_ms:.3f})"
    )


def split_ms(gateway: Service, before: Any, count: int) -> tuple[float, float]:
    """The user and the system CPU time of the gateway's process since ``before`` (its ``cpu_times()``),
    in milliseconds per one of ``count``."""
    assert gateway.memory is not None
    after = gateway.memory.process.cpu_times()
    return (after.user - before.user) / count * 1000, (after.system - before.system) / count * 1000


def summarize(collapsed: Path, top: int = 25) -> str:
    """The functions with the most samples in py-spy's collapsed stacks: own (at the top of the stack) and
    cumulative (anywhere in it, counted once per stack)."""
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            cumulative[frame] += count
    lines = [f"{total} samples", "own:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines.append("cumulative:")
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in cumulative.most_common(top * 2)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", choices=("1k", "4k"), default="1k")
    parser.add_argument("--format", choices=("url", "b64_json"), default="url")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--py-spy", type=Path, help="sample the last run with py-spy into this file")
    parser.add_argument("--polls", action="store_true", help="measure polls of running tasks instead")
    parser.add_argument("--bare", action="store_true", help="measure bench/bare.py instead of pixelgate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixelgate-profile-") as tmp:
        workdir = Path(tmp)
        latency = 3600.0 if args.polls else 0.0
        model = UPSTREAM_MODEL if args.bare else MODEL
        with (
            upstream(workdir, args.image, latency=latency) as up,
            (bare if args.bare else pixelgate)(workdir, base_url(up)) as gateway,
        ):
            for run in range(args.repeat):
                spy = None
                if args.py_spy is not None and run == args.repeat - 1:
                    assert gateway.process is not None
                    spy = subprocess.Popen(
                        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(gateway.process.pid), "--format", "raw",
                         "--output", str(args.py_spy), "--rate", "200", "--gil", "--nonblocking"],
                        stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                if args.polls:
                    print(f"polls, {args.clients} clients: "
                          f"{measure_polls(gateway, args.clients, args.seconds)}", flush=True)  # fmt: skip
                else:
                    print(f"{args.image} {args.format} {args.clients} clients: "
                          f"{measure(up, gateway, model, args.format, args.clients, args.seconds)}", flush=True)  # fmt: skip
                if spy is not None:
                    spy.send_signal(2)  # py-spy writes its file when interrupted
                    spy.wait(30)
    if args.py_spy is not None:
        print(summarize(args.py_spy))


if __name__ == "__main__":
    main()
