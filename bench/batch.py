"""Interactive latency while a batch runs: the same closed-loop interactive load through one emulator
channel, first alone (the baseline) and then while a batch of 1,000 lines fills the channel. The ratio of
the two p50s is how much a batch costs interactive callers; the batch's rate, against the spare capacity
the channel has for it, is how well the batch uses what interactive work leaves."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from bench.gateways import base_url, pixelgate_serve
from bench.load import closed_loop, post_json

MODEL = "gemini-3.1-flash-image"
LATENCY = 0.2  # seconds per image at the emulated upstream
CONCURRENCY = 8  # the channel's slots; batch lines may hold 6 of them
CLIENTS = 2  # interactive callers, each sending its next request when the last is answered


def _create_batch(url: str, lines: int) -> str:
    rows = [
        {
            "custom_id": f"line-{i}",
            "method": "POST",
            "url": "/v1/images/generations",
            "body": {"model": MODEL, "prompt": f"catalog shot {i}", "size": "1:1", "resolution": "512"},
        }
        for i in range(lines)
    ]
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    with httpx.Client(base_url=url, timeout=60) as client:
        file_id = client.post(
            "/v1/files", files={"file": ("lines.jsonl", data)}, data={"purpose": "batch"}
        ).json()["id"]
        made = client.post(
            "/v1/batches",
            json={"input_file_id": file_id, "endpoint": "/v1/images/generations", "completion_window": "24h"},
        )
        return str(made.json()["id"])


def _batch(url: str, batch_id: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{url}/v1/batches/{batch_id}", timeout=30).json()
    return found


def run(workdir: Path, *, quick: bool) -> dict[str, Any]:
    lines = 100 if quick else 1000
    duration = 1.5 if quick else 10.0
    config = workdir / "batch-channels.toml"
    config.write_text(
        f"""
[[channels]]
name = "emulator"
provider = "emulator"
concurrency = {CONCURRENCY}
options = {{ latency = {LATENCY} }}
"""
    )
    body = {
        "model": MODEL,
        "prompt": "a product shot",
        "size": "1:1",
        "resolution": "512",
        "response_format": "url",
    }
    with pixelgate_serve(workdir, "pixelgate", "--config", str(config)) as server:
        url = base_url(server)
        endpoint = f"{url}/v1/images/generations"
        alone = asyncio.run(closed_loop(post_json(endpoint, body), CLIENTS, duration, warmup=1)).summary()
        batch_id = _create_batch(url, lines)
        started = time.perf_counter()
        while _batch(url, batch_id)["request_counts"]["completed"] < 20:  # the batch fills the channel
            time.sleep(0.1)
        during = asyncio.run(closed_loop(post_json(endpoint, body), CLIENTS, duration, warmup=1)).summary()
        left = _batch(url, batch_id)
        counts = left["request_counts"]
        still_running = counts["total"] - counts["completed"] - counts["failed"]
        while _batch(url, batch_id)["status"] not in ("completed", "failed", "cancelled", "expired"):
            time.sleep(0.2)
        batch_seconds = time.perf_counter() - started
        done = _batch(url, batch_id)
    spare = (CONCURRENCY - CONCURRENCY // 4) / LATENCY  # lines/s the batch may use at most
    rate = done["request_counts"]["completed"] / batch_seconds
    result = {
        "lines": lines,
        "interactive_clients": CLIENTS,
        "channel": f"{CONCURRENCY} slots, {LATENCY} s per image",
        "alone": alone,
        "during_batch": during,
        "batch_lines_left_after_interactive_run": still_running,
        "p50_ratio": round(float(during["p50_ms"]) / float(alone["p50_ms"]), 2),  # type: ignore[arg-type]
        "p99_ratio": round(float(during["p99_ms"]) / float(alone["p99_ms"]), 2),  # type: ignore[arg-type]
        "batch_status": done["status"],
        "batch_completed": done["request_counts"]["completed"],
        "batch_lines_per_s": round(rate, 2),
        "batch_share_of_spare_capacity": round(rate / spare, 2),
    }
    print(
        f"  interactive p50 {alone['p50_ms']} ms alone, {during['p50_ms']} ms during a batch of {lines} "
        f"({result['p50_ratio']}x); the batch ran {result['batch_lines_per_s']} lines/s "
        f"({result['batch_share_of_spare_capacity']} of the capacity left to it)",
        flush=True,
    )
    return result
