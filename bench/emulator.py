"""The emulator's speed, since people run it in their CI: images per second at 512, 1K, 2K and 4K through
``pixelgate serve --emulate``, against the baseline of encoding the same PNG in this process (what an
emulator cannot avoid doing)."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

from PIL import Image

from bench.common import mib
from bench.gateways import base_url, pixelgate_serve
from bench.load import closed_loop, post_json

MODEL = "gemini-3.1-flash-image"
SIDES = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}  # the model's 1:1 sizes
CLIENTS = 4


def encode_rate(side: int, duration: float) -> float:
    """PNGs of ``side`` x ``side`` encoded per second by Pillow in this process (one core)."""
    image = Image.new("RGB", (side, side), (40, 90, 160))
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < duration or count < 2:
        image.save(io.BytesIO(), "PNG")
        count += 1
    return count / (time.perf_counter() - started)


def run(workdir: Path, *, quick: bool) -> dict[str, Any]:
    duration = 0.5 if quick else 5.0
    rows = []
    with pixelgate_serve(workdir, "pixelgate --emulate", "--emulate") as server:
        url = f"{base_url(server)}/v1/images/generations"
        for size, side in SIDES.items():
            body = {
                "model": MODEL,
                "prompt": "a test card",
                "resolution": size,
                "response_format": "b64_json",
            }
            assert server.memory is not None
            server.memory.reset_peak()
            summary = asyncio.run(closed_loop(post_json(url, body), CLIENTS, duration, warmup=1)).summary()
            baseline = encode_rate(side, min(duration, 3.0))
            row = {
                "size": size,
                "pixels": f"{side}x{side}",
                "clients": CLIENTS,
                "images_per_s": summary["throughput_rps"],
                "p50_ms": summary["p50_ms"],
                "errors": summary["errors"],
                "baseline_png_encodes_per_s": round(baseline, 2),
                "ratio_to_baseline": round(float(summary["throughput_rps"]) / baseline, 2)
                if baseline
                else None,
                "peak_rss_mib": mib(server.memory.peak),
            }
            rows.append(row)
            print(
                f"  emulator {size:>3}: {row['images_per_s']:7.2f} images/s ({row['ratio_to_baseline']}x a bare "
                f"PNG encode), p50 {row['p50_ms']} ms",
                flush=True,
            )
    return {"rows": rows}
