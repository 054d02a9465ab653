"""Relay overhead: the same upstream called directly, through pixelgate's ``openai`` provider and through
the LiteLLM proxy, at several numbers of concurrent clients, for ``b64_json`` and ``url`` answers.

Added latency is each gateway's percentile minus the direct call's at the same concurrency, measured in
the same run, one target after another for every cell, so that a noisy machine shifts all three alike.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import Service, mib
from bench.gateways import MODEL, UPSTREAM_MODEL, base_url, generations, litellm, pixelgate, upstream
from bench.load import closed_loop, post_json

FORMATS = ("b64_json", "url")


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"images": {"1k": (1, 16)}, "duration": 1.0}
    return {"images": {"1k": (1, 16, 64, 256), "4k": (1, 16)}, "duration": 4.0}


def run(workdir: Path, *, quick: bool, litellm_exe: Path | None) -> dict[str, Any]:
    settings = plan(quick)
    rows: list[dict[str, Any]] = []
    persisted = 0
    for image, levels in settings["images"].items():
        with ExitStack() as stack:
            up = stack.enter_context(upstream(workdir, image))
            targets: dict[str, tuple[str, str, Service | None]] = {
                "direct": (base_url(up), UPSTREAM_MODEL, None)
            }
            gateway = stack.enter_context(pixelgate(workdir, base_url(up)))
            targets["pixelgate"] = (base_url(gateway), MODEL, gateway)
            if litellm_exe is not None:
                proxy = stack.enter_context(litellm(workdir, litellm_exe, base_url(up)))
                targets["litellm"] = (base_url(proxy), UPSTREAM_MODEL, proxy)
            for response_format in FORMATS:
                for clients in levels:
                    direct: dict[str, Any] | None = None
                    for target, (url, model, service) in targets.items():
                        row = measure(
                            up,
                            target,
                            url,
                            model,
                            service,
                            image,
                            response_format,
                            clients,
                            settings["duration"],
                        )
                        if direct is None:
                            direct = row
                        row["added_p50_ms"] = round(row["p50_ms"] - direct["p50_ms"], 1)
                        row["added_p99_ms"] = round(row["p99_ms"] - direct["p99_ms"], 1)
                        rows.append(row)
                        print(describe(row), flush=True)
            persisted += completed_tasks(gateway)
    return {"rows": rows, "pixelgate_tasks_persisted": persisted, "verdict": verdict(rows)}


def measure(
    up: Service,
    target: str,
    url: str,
    model: str,
    service: Service | None,
    image: str,
    response_format: str,
    clients: int,
    duration: float,
) -> dict[str, Any]:
    body = {
        "model": model,
        "prompt": "a lighthouse at dusk",
        "size": "1024x1024",
        "response_format": response_format,
    }
    if service is not None and service.memory is not None:
        service.memory.reset_peak()
    made, cpu = generations(up), service.cpu_seconds() if service is not None else 0.0
    result = asyncio.run(closed_loop(post_json(f"{url}/v1/images/generations", body), clients, duration))
    # Per image the upstream made, warm-up requests included (their CPU is counted too): each made one.
    images = max(1, generations(up) - made)
    cpu_ms = (service.cpu_seconds() - cpu) / images * 1000 if service is not None else None
    return {
        "image": image,
        "response_format": response_format,
        "clients": clients,
        "target": target,
        **result.summary(),
        "server_cpu_ms_per_image": round(cpu_ms, 1) if cpu_ms is not None else None,
        "peak_rss_mib": mib(service.memory.peak) if service is not None and service.memory else None,
    }


def describe(row: dict[str, Any]) -> str:
    errors = f", errors {row['errors']}" if row["errors"] else ""
    cpu = row["server_cpu_ms_per_image"]
    cpu_text = f", CPU {cpu:6.1f} ms/image" if cpu is not None else ""
    return (
        f"  relay {row['image']} {row['response_format']:8} {row['clients']:>3} clients {row['target']:9}: "
        f"{row['throughput_rps']:7.1f} req/s, p50 {row['p50_ms']:7.1f} ms, p99 {row['p99_ms']:7.1f} ms"
        f"{cpu_text}{errors}"
    )


def completed_tasks(gateway: Service) -> int:
    """Tasks pixelgate stored as completed: every relayed request was persisted before it was answered."""
    assert gateway.data_dir is not None
    with sqlite3.connect(gateway.data_dir / "pixelgate.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM tasks WHERE status = 'succeeded'").fetchone()[0])


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, at 64 clients with 1K b64_json answers: pixelgate's throughput at least twice
    LiteLLM's, and its added p99 at most half of LiteLLM's."""
    cell = {
        r["target"]: r
        for r in rows
        if r["image"] == "1k" and r["response_format"] == "b64_json" and r["clients"] == 64
    }
    if "pixelgate" not in cell or "litellm" not in cell:
        return {"checked": False, "why": "needs the full run with LiteLLM (1K, b64_json, 64 clients)"}
    ours, theirs = cell["pixelgate"], cell["litellm"]
    ratio = ours["throughput_rps"] / theirs["throughput_rps"] if theirs["throughput_rps"] else float("inf")
    added = ours["added_p99_ms"] / theirs["added_p99_ms"] if theirs["added_p99_ms"] > 0 else float("nan")
    return {
        "checked": True,
        "throughput_ratio": round(ratio, 2),
        "throughput_target_met": ratio >= 2.0,
        "added_p99_ratio": round(added, 2),
        "added_p99_target_met": added <= 0.5,
    }
