"""The long fuzz run: ``python scripts/fuzz.py [--cases N] [--database-url URL] [--workers N]`` (the test
suite runs a bounded one).

Starts ``pixelgate serve --emulate --no-auth`` on a fresh data dir (and on ``--database-url``, a PostgreSQL
database, when given: most of the 500s schemathesis has found were PostgreSQL's), makes one of everything
that has an id (tasks, an interaction, files, batches of both dialects, webhooks and a delivery, keys, a
signed image URL), then lets schemathesis send every endpoint of its ``/openapi.json`` N generated cases per
phase (default 500), checking only that none is a 5xx. ``fuzz_hooks.py`` swaps about half of the generated
path parameters and cursors for those real ids, and counts the responses. At the end it prints the total
of requests and of responses of 500 or more (with the first of them), and checks that the server still
answers and makes an image. Needs the test extras.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

MODEL = "gemini-3.1-flash-image"
SCRIPTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        )
    answer: dict[str, Any] = response.json()
    return answer


def make_ids(url: str, *, copies: int = 3) -> dict[str, list[str]]:
    """One of everything with an id (``copies`` of what a fuzzed DELETE may take away), by kind, as
    ``fuzz_hooks`` reads them."""
    ids: dict[str, list[str]] = {"versions": ["v1beta", "v1"], "owners": ["fuzz-owner"]}
    with httpx.Client(base_url=url, timeout=120) as http:
        generate = {"model": MODEL, "prompt": "a kite", "image_size": "512"}
        ids["tasks"] = [_ok(http.post("/v1/images/generations", json={**generate, "async": True}))["id"]]
        made = _ok(http.post("/v1/images/generations", json={**generate, "response_format": "url"}))
        image = urlsplit(made["data"][0]["url"])
        _, _, task_id, name = image.path.split("/")
        query = parse_qs(image.query)
        ids["blob"] = [task_id, name, query["expires"][0], query["signature"][0]]
        interaction = {"model": MODEL, "input": "a kite", "background": True}
        ids["tasks"] += [
            _ok(http.post("/v1beta/interactions", json=interaction))["id"] for _ in range(copies)
        ]
        line = {"custom_id": "a", "method": "POST", "url": "/v1/images/generations", "body": generate}
        ids["files"] = [
            _ok(
                http.post(
                    "/v1/files",
                    files={"file": ("in.jsonl", json.dumps(line).encode() + b"\n", "application/jsonl")},
                    data={"purpose": "batch"},
                )
            )["id"]
            for _ in range(copies * 2)
        ]
        batch = {"endpoint": "/v1/images/generations", "completion_window": "24h"}
        ids["batches"] = [
            _ok(http.post("/v1/batches", json={**batch, "input_file_id": file_id}))["id"]
            for file_id in ids["files"][copies:]
        ]
        inline = {"requests": {"requests": [{"request": {"contents": [{"parts": [{"text": "a kite"}]}]}}]}}
        for _ in range(copies):
            made = _ok(
                http.post(
                    f"/v1beta/models/{MODEL}:batchGenerateContent", json={"batch": {"inputConfig": inline}}
                )
            )
            ids["batches"].append(made["name"].removeprefix("batches/"))
        hook = {"uri": "http://127.0.0.1:9/hook", "subscribed_events": ["batch.succeeded"], "name": "fuzz"}
        ids["webhooks"] = [_ok(http.post("/v1beta/webhooks", json=hook))["id"] for _ in range(copies)]
        _ok(http.post(f"/v1beta/webhooks/{ids['webhooks'][0]}:ping"))
        ids["deliveries"] = [d["id"] for d in _ok(http.get("/v1/webhooks/deliveries"))["data"]]
        key = {"name": "fuzz", "owner": "fuzz-owner"}
        ids["keys"] = [http.post("/admin/keys", json=key).json()["id"] for _ in range(copies)]
        ids["channels"] = [c["name"] for c in _ok(http.get("/admin/channels"))["data"]]
        ids["models"] = [m["id"] for m in _ok(http.get("/v1/models"))["data"]]
    return ids


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=500, help="cases per endpoint and phase")
    parser.add_argument("--database-url", help="a PostgreSQL database to run on (postgresql+asyncpg://…)")
    parser.add_argument("--workers", type=int, default=2, help="schemathesis' concurrent workers")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pixelgate-fuzz-") as data:
        log_path = Path(data) / "serve.log"
        command = [
            sys.executable, "-m", "pixelgate", "serve", "--emulate", "--no-auth", "--port", str(port),
            "--data-dir", data, "--log-level", "warning", "--fetch-allow", "127.0.0.1",
        ]  # fmt: skip
        if args.database_url:
            command += ["--database-url", args.database_url]
        server = subprocess.Popen(command, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            counts_path = Path(data) / "counts.json"
            env = {
                **os.environ,
                "SCHEMATHESIS_HOOKS": "fuzz_hooks",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")])),
                "PIXELGATE_FUZZ_IDS": json.dumps(make_ids(url)),
                "PIXELGATE_FUZZ_COUNTS": str(counts_path),
            }
            run = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
                 "--checks", "not_a_server_error", "--max-examples", str(args.cases),
                 "--workers", str(args.workers), "--continue-on-failure", "--suppress-health-check", "all"],
                env=env,
                cwd=data,  # its cache (.schemathesis/) goes with the data dir
            )  # fmt: skip
            counts = json.loads(counts_path.read_text()) if counts_path.exists() else {}
            alive = httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            for channel in json.loads(env["PIXELGATE_FUZZ_IDS"])["channels"]:  # a fuzzed case may disable one
                httpx.post(f"{url}/admin/channels/{channel}/enable", timeout=10)
            made = httpx.post(
                f"{url}/v1/images/generations", json={"model": MODEL, "prompt": "x"}, timeout=60
            ).status_code
            unexpected = log_path.read_text(errors="replace").count("unexpected error")
        finally:
            server.terminate()
            server.wait(30)
    print(
        f"\nrequests: {counts.get('requests', 0):,}; responses of 500 or more: {counts.get('server_errors', 0)}"
    )
    print("by status:", ", ".join(f"{k}: {v:,}" for k, v in sorted(counts.get("statuses", {}).items())))
    for error in counts.get("errors", [])[:20]:
        print(
            f"  {error['status']} {error['method']} {error['path']} {error['query']}: {error['body'][:160]}"
        )
    print(f"'unexpected error' lines in the server log: {unexpected}")
    print(f"after the run: /healthz {'answers' if alive else 'is down'}, a generation answered {made}")
    print(
        f"database: {'PostgreSQL' if args.database_url else 'SQLite'}; {time.monotonic() - started:,.0f} s in all"
    )
    failed = counts.get("server_errors", 1) or unexpected or not alive or made != 200
    return 1 if failed or run.returncode else 0


if __name__ == "__main__":
    raise SystemExit(main())
