"""The blob store: the same fixed-image upstream relayed by three pixelgates, one keeping its images in a
folder (``local``, the baseline), one in an S3 bucket (``s3``: ``--blob-store s3://bench/…``) and one in
the bucket handing out the bucket's presigned URLs (``presigned``: ``--blob-urls presigned``), for 1K and
4K results, ``url`` and ``b64_json`` answers, at 1 and 16 clients. A ``url`` answer is followed by the
client's download of its URL, so that a presigned URL is measured end to end (its bytes come from the
bucket, not from pixelgate).

The bucket is moto's S3 server, a Python process on the same machine started by the benchmark: the S3
figures include moto's own cost (its CPU is reported apart) and are an upper bound on what the store adds
to pixelgate. Reports throughput, p50 added latency against the upstream called directly, and server CPU
per image (from /proc), as ratios S3/local and presigned/local measured in the same run; and the peak
resident memory per 4K result in flight with the S3 store, in copies of the image (target: at most two).
"""

from __future__ import annotations

import asyncio
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench.common import Service, free_port, mib, python_command
from bench.gateways import MODEL, UPSTREAM_MODEL, CpuPerImage, base_url, pixelgate, upstream
from bench.load import Request, closed_loop

BUCKET = "bench"
FORMATS = ("url", "b64_json")
TARGETS = ("direct", "local", "s3", "presigned")
MOTO_NOTE = (
    "the S3 store's bucket is moto's S3 server, a Python process on the same machine: the S3 figures include "
    "moto's own cost (its CPU is shown apart) and are an upper bound on the store's overhead in pixelgate"
)
# Dummy credentials for moto, and no ~/.aws of whoever runs the benchmark.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def plan(quick: bool) -> dict[str, Any]:
    if quick:
        return {"images": {"1k": (1, 4)}, "duration": 0.5, "memory_clients": 2, "memory_duration": 1.0}
    return {
        "images": {"1k": (1, 16), "4k": (1, 16)},
        "duration": 4.0,
        "memory_clients": 4,
        "memory_duration": 6.0,
    }


def moto(workdir: Path) -> Service:
    """moto's S3 server in a process of its own (not a child of a pixelgate, whose memory is watched)."""
    port = free_port()
    return Service(
        name="moto",
        command=python_command("-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)),
        health_url=f"http://127.0.0.1:{port}/",
        env=S3_ENV,
        log_path=workdir / f"moto-{port}.log",
    )


def s3_client(endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def empty_bucket(client: Any) -> None:
    """Delete every object: moto keeps them all, and a run stores gigabytes of 4K PNGs."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


def generate(url: str, model: str, response_format: str) -> Request:
    """One generation; for ``url`` answers, the download of the URL too (the client's whole wait)."""
    body = {
        "model": model,
        "prompt": "a lighthouse at dusk",
        "size": "1024x1024",
        "response_format": response_format,
    }

    async def send(http: aiohttp.ClientSession) -> tuple[int, int]:
        async with http.post(f"{url}/v1/images/generations", json=body) as response:
            data = await response.read()
            if response.status != 200 or response_format != "url":
                return response.status, len(data)
            image_url = (await response.json())["data"][0]["url"]
        async with http.get(image_url) as download:
            image = await download.read()
            return download.status, len(data) + len(image)

    return send


def measure(
    up: Service,
    bucket: Service,
    target: str,
    url: str,
    model: str,
    service: Service | None,
    image: str,
    response_format: str,
    clients: int,
    duration: float,
) -> dict[str, Any]:
    cpu = CpuPerImage(up, service, bucket if target in ("s3", "presigned") else None)
    result = asyncio.run(closed_loop(generate(url, model, response_format), clients, duration))
    server_ms, moto_ms = cpu.ms()
    return {
        "image": image,
        "response_format": response_format,
        "clients": clients,
        "target": target,
        **result.summary(),
        "server_cpu_ms_per_image": server_ms,
        "moto_cpu_ms_per_image": moto_ms,
    }


def ratio(ours: float | None, base: float | None) -> float | None:
    if ours is None or not base or base <= 0:
        return None
    return round(ours / base, 2)


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """S3/local and presigned/local for every image, answer and number of clients."""
    cells: dict[tuple[str, str, int], dict[str, dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault((row["image"], row["response_format"], row["clients"]), {})[row["target"]] = row
    out = []
    for (image, response_format, clients), cell in cells.items():
        local = cell["local"]
        for target in ("s3", "presigned"):
            ours = cell[target]
            out.append(
                {
                    "image": image,
                    "response_format": response_format,
                    "clients": clients,
                    "vs_local": target,
                    "throughput_ratio": ratio(ours["throughput_rps"], local["throughput_rps"]),
                    "added_p50_ratio": ratio(ours["added_p50_ms"], local["added_p50_ms"]),
                    "server_cpu_ratio": ratio(
                        ours["server_cpu_ms_per_image"], local["server_cpu_ms_per_image"]
                    ),
                    "server_and_moto_cpu_ratio": ratio(
                        (ours["server_cpu_ms_per_image"] or 0) + (ours["moto_cpu_ms_per_image"] or 0),
                        local["server_cpu_ms_per_image"],
                    ),
                }
            )
    return out


def memory(
    workdir: Path,
    up: Service,
    bucket: Service,
    client: Any,
    clients: int,
    duration: float,
    formats: tuple[str, ...],
    stores: tuple[str, ...],
) -> list[dict[str, Any]]:
    """Peak resident memory per 4K result in flight, for a fresh pixelgate on each store (memory a process
    once took is seldom given back): its growth over its idle level, divided by the clients, in copies."""
    payload = int(httpx.get(f"{base_url(up)}/stats", timeout=10).json()["image_bytes"])
    rows = []
    for store in stores:
        args = s3_args(bucket, "memory") if store == "s3" else ()
        for response_format in formats:
            with pixelgate(workdir, base_url(up), *args, name=f"pixelgate {store}", env=S3_ENV) as gateway:
                assert gateway.memory is not None
                asyncio.run(closed_loop(generate(base_url(gateway), MODEL, response_format), 1, 0, warmup=1))
                idle = gateway.memory.reset_peak()
                result = asyncio.run(
                    closed_loop(
                        generate(base_url(gateway), MODEL, response_format), clients, duration, warmup=1
                    )
                )
                per_request = (gateway.memory.peak - idle) / clients
                rows.append(
                    {
                        "store": store,
                        "response_format": response_format,
                        "clients": clients,
                        **result.summary(),
                        "payload_mib": mib(payload),
                        "idle_rss_mib": mib(idle),
                        "peak_rss_mib": mib(gateway.memory.peak),
                        "memory_per_request_mib": mib(per_request),
                        "payload_copies": round(per_request / payload, 2),
                    }
                )
            empty_bucket(client)
            row = rows[-1]
            print(
                f"  storage memory 4k {store:5} {response_format:8} {clients} clients: +{row['memory_per_request_mib']}"
                f" MiB per result in flight ({row['payload_copies']} copies of {row['payload_mib']} MiB)"
                f"{', errors ' + str(row['errors']) if row['errors'] else ''}",
                flush=True,
            )
    return rows


def s3_args(bucket: Service, prefix: str, *more: str) -> tuple[str, ...]:
    return ("--blob-store", f"s3://{BUCKET}/{prefix}", "--s3-endpoint-url", base_url(bucket), *more)


def run(workdir: Path, *, quick: bool) -> dict[str, Any]:
    settings = plan(quick)
    rows: list[dict[str, Any]] = []
    memory_rows: list[dict[str, Any]] = []
    print(f"  note: {MOTO_NOTE}", flush=True)
    with moto(workdir) as bucket:
        client = s3_client(base_url(bucket))
        client.create_bucket(Bucket=BUCKET)
        for image, levels in settings["images"].items():
            with ExitStack() as stack:
                up = stack.enter_context(upstream(workdir, image))
                gateways: dict[str, tuple[str, str, Service | None]] = {
                    "direct": (base_url(up), UPSTREAM_MODEL, None)
                }
                for target, args in (
                    ("local", ()),
                    ("s3", s3_args(bucket, f"{image}-s3")),
                    ("presigned", s3_args(bucket, f"{image}-presigned", "--blob-urls", "presigned")),
                ):
                    gateway = stack.enter_context(
                        pixelgate(workdir, base_url(up), *args, name=f"pixelgate {target}", env=S3_ENV)
                    )
                    gateways[target] = (base_url(gateway), MODEL, gateway)
                for response_format in FORMATS:
                    for clients in levels:
                        direct: dict[str, Any] | None = None
                        for target, (url, model, service) in gateways.items():
                            row = measure(
                                up,
                                bucket,
                                target,
                                url,
                                model,
                                service,
                                image,
                                response_format,
                                clients,
                                settings["duration"],
                            )
                            direct = direct or row
                            row["added_p50_ms"] = round(row["p50_ms"] - direct["p50_ms"], 1)
                            rows.append(row)
                            print(describe(row), flush=True)
                            empty_bucket(client)
        with upstream(workdir, "4k") as up:
            # --quick checks the S3 store's one answer; the full run has the local store's beside it.
            formats, stores = (("b64_json",), ("s3",)) if quick else (FORMATS, ("local", "s3"))
            memory_rows = memory(
                workdir,
                up,
                bucket,
                client,
                settings["memory_clients"],
                settings["memory_duration"],
                formats,
                stores,
            )
    s3_memory = [r for r in memory_rows if r["store"] == "s3"]
    return {
        "note": MOTO_NOTE,
        "rows": rows,
        "ratios": ratios(rows),
        "memory": memory_rows,
        "s3_within_two_copies": all(r["payload_copies"] <= 2.0 for r in s3_memory) if s3_memory else None,
    }


def describe(row: dict[str, Any]) -> str:
    errors = f", errors {row['errors']}" if row["errors"] else ""
    cpu = (
        f", server CPU {row['server_cpu_ms_per_image']} ms/image"
        if row["server_cpu_ms_per_image"] is not None
        else ""
    )
    moto_cpu = f" (+ moto {row['moto_cpu_ms_per_image']})" if row["moto_cpu_ms_per_image"] is not None else ""
    return (
        f"  storage {row['image']} {row['response_format']:8} {row['clients']:>2} clients {row['target']:9}: "
        f"{row['throughput_rps']:7.1f} req/s, p50 {row['p50_ms']:7.1f} ms (added {row['added_p50_ms']}){cpu}"
        f"{moto_cpu}{errors}"
    )
