"""Relay overhead: the same upstream called directly, through the bare gateway (``bench/bare.py``: the
least code that relays and stores each image), through pixelgate's ``openai`` provider and through the
LiteLLM proxy, at several numbers of concurrent clients, for ``b64_json`` and ``url`` answers.

Added latency is each gateway's percentile minus the direct call's at the same concurrency, measured in
the same run, one target after another for every cell, so that a noisy machine shifts them all alike.
pixelgate's CPU per image is also given as a multiple of the bare gateway's in the same cell: how much of
it is pixelgate's own, apart from what the machine charges for moving the bytes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import Service, mib
from bench.gateways import (
    MODEL,
    UPSTREAM_MODEL,
    CpuPerImage,
    bare,
    base_url,
    litellm,
    pixelgate,
    upstream,
)
from bench.load import closed_loop, post_json

FORMATS = ("b64_json", "url")


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"images": {"1k": (1, 16)}, "duration": 0.5}
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
            plain = stack.enter_context(bare(workdir, base_url(up)))
            targets["bare"] = (base_url(plain), UPSTREAM_MODEL, plain)
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
    cpu = CpuPerImage(up, service)
    result = asyncio.run(closed_loop(post_json(f"{url}/v1/images/generations", body), clients, duration))
    [cpu_ms] = cpu.ms()
    return {
        "image": image,
        "response_format": response_format,
        "clients": clients,
        "target": target,
        **result.summary(),
        "server_cpu_ms_per_image": cpu_ms,
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


# Issue 24's targets: pixelgate's CPU per relayed image, by image and answer format.
CPU_TARGETS_MS = {("1k", "url"): 5.0, ("1k", "b64_json"): 6.0, ("4k", "url"): 50.0}


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets: pixelgate's CPU per image (every row of each kind within its target), its throughput at
    least twice LiteLLM's on every 1K row at 16 and 64 clients, and its added p50 at one client (1K) at most
    5 ms."""
    ours = [r for r in rows if r["target"] == "pixelgate"]
    cpu = {}
    for (image, response_format), target in CPU_TARGETS_MS.items():
        measured = [
            r["server_cpu_ms_per_image"]
            for r in ours
            if (r["image"], r["response_format"]) == (image, response_format)
        ]
        if measured:
            cpu[f"{image} {response_format}"] = {
                "worst_ms": max(measured),
                "target_ms": target,
                "met": max(measured) <= target,
            }
    theirs = {(r["image"], r["response_format"], r["clients"]): r for r in rows if r["target"] == "litellm"}
    ratios = {}
    for r in ours:
        key = (r["image"], r["response_format"], r["clients"])
        if (
            r["image"] == "1k"
            and r["clients"] in (16, 64)
            and key in theirs
            and theirs[key]["throughput_rps"]
        ):
            ratio = r["throughput_rps"] / theirs[key]["throughput_rps"]
            ratios[f"{r['response_format']} {r['clients']}"] = {"ratio": round(ratio, 2), "met": ratio >= 2.0}
    added = {
        r["response_format"]: {"added_p50_ms": r["added_p50_ms"], "met": r["added_p50_ms"] <= 5.0}
        for r in ours
        if r["image"] == "1k" and r["clients"] == 1
    }
    return {
        "cpu_per_image": cpu,
        "cpu_over_bare": over_bare(rows),
        "throughput_vs_litellm": ratios,
        "added_p50_one_client": added,
    }


def over_bare(rows: list[dict[str, Any]]) -> dict[str, float]:
    """pixelgate's CPU per image as a multiple of the bare gateway's, for each cell where both were
    measured."""
    baseline = {
        (r["image"], r["response_format"], r["clients"]): r["server_cpu_ms_per_image"]
        for r in rows
        if r["target"] == "bare"
    }
    ratios = {}
    for r in rows:
        plain = baseline.get((r["image"], r["response_format"], r["clients"]))
        if r["target"] == "pixelgate" and plain:
            ratios[f"{r['image']} {r['response_format']} {r['clients']}"] = round(
                r["server_cpu_ms_per_image"] / plain, 2
            )
    return ratios
