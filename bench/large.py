"""Large payloads: 4K results (5504x3072, about 27 MB as PNG) and edits with 14 reference images of about
2 MB each, through pixelgate and directly. Reports the added latency and the peak memory per request in
flight, also as a number of copies of the payload (the target is at most two)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.common import Service, mib
from bench.gateways import MODEL, UPSTREAM_MODEL, base_url, pixelgate, upstream
from bench.load import Request, closed_loop, post_json
from bench.upstream import make_png

REFERENCES = 14


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"clients": (1,), "duration": 1.0}
    return {"clients": (1, 4), "duration": 6.0}


def reference_pngs() -> list[bytes]:
    """Fourteen different PNGs of about 2 MB each."""
    return [make_png(1100 + i, 1100) for i in range(REFERENCES)]


def post_edit(url: str, model: str, pngs: list[bytes]) -> Request:
    async def send(http: aiohttp.ClientSession) -> tuple[int, int]:
        form = aiohttp.FormData()
        form.add_field("model", model)
        form.add_field("prompt", "put them all in one scene")
        form.add_field("size", "1024x1024")
        form.add_field("response_format", "b64_json")
        for i, png in enumerate(pngs):
            form.add_field("image[]", io.BytesIO(png), filename=f"ref-{i}.png", content_type="image/png")
        async with http.post(f"{url}/v1/images/edits", data=form) as response:
            data = await response.read()
            return response.status, len(data)

    return send


def measure(
    case: str,
    target: str,
    request: Request,
    service: Service | None,
    clients: int,
    duration: float,
    payload: int,
) -> dict[str, Any]:
    idle = service.memory.reset_peak() if service is not None and service.memory is not None else 0
    result = asyncio.run(closed_loop(request, clients, duration, warmup=1))
    row: dict[str, Any] = {
        "case": case,
        "target": target,
        "clients": clients,
        **result.summary(),
        "payload_mib": mib(payload),
    }
    if service is not None and service.memory is not None:
        per_request = (service.memory.peak - idle) / clients
        row["peak_rss_mib"] = mib(service.memory.peak)
        row["memory_per_request_mib"] = mib(per_request)
        row["payload_copies"] = round(per_request / payload, 2)
    return row


def run(workdir: Path, *, quick: bool) -> dict[str, Any]:
    settings = plan(quick)
    rows: list[dict[str, Any]] = []
    pngs = reference_pngs()
    # (case, the upstream's image, the references sent); a 4K PNG takes seconds to make and to move, so
    # only the full run measures it.
    cases: list[tuple[str, str, list[bytes] | None]] = [("14-references", "512", pngs)]
    if not quick:
        cases.insert(0, ("4k-result", "4k", None))
    for case, image, references in cases:
        with upstream(workdir, image) as up, pixelgate(workdir, base_url(up)) as gateway:
            answered = httpx.get(f"{base_url(up)}/stats", timeout=10).json()["image_bytes"]
            payload = answered if references is None else sum(len(p) for p in references)
            for clients in settings["clients"]:
                direct_row: dict[str, Any] | None = None
                for target, url, model, service in (
                    ("direct", base_url(up), UPSTREAM_MODEL, None),
                    ("pixelgate", base_url(gateway), MODEL, gateway),
                ):
                    if references is None:
                        body = {"model": model, "prompt": "a city at 4K", "size": "5504x3072"}
                        request = post_json(
                            f"{url}/v1/images/generations", {**body, "response_format": "b64_json"}
                        )
                    else:
                        request = post_edit(url, model, references)
                    row = measure(case, target, request, service, clients, settings["duration"], payload)
                    direct_row = direct_row or row
                    row["added_p50_ms"] = round(row["p50_ms"] - direct_row["p50_ms"], 1)
                    rows.append(row)
                    copies = (
                        f", {row['payload_copies']} payload copies per request"
                        if "payload_copies" in row
                        else ""
                    )
                    print(
                        f"  large {case} {clients} clients {target:9}: p50 {row['p50_ms']} ms (added "
                        f"{row['added_p50_ms']} ms){copies}{', errors ' + str(row['errors']) if row['errors'] else ''}",
                        flush=True,
                    )
    return {"rows": rows}
