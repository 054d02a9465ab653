"""The long fuzz run: ``python scripts/fuzz.py [--cases N]`` (the test suite runs a bounded one).

Starts ``pixelgate serve --emulate`` on a fresh data dir, lets schemathesis send every endpoint of its
``/openapi.json`` N generated cases (default 500 per endpoint), checking only that none is a 5xx, then checks
that the server still answers and makes an image. Prints schemathesis' summary (cases tried, failures with
a curl line to reproduce each). Needs the test extras.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500, help="cases per endpoint")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="pixelgate-fuzz-") as data:
        log = (Path(data) / "serve.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "pixelgate", "serve", "--emulate", "--port", str(port), "--data-dir", data,
             "--log-level", "warning"],
            stdout=log, stderr=log,
        )  # fmt: skip
        try:
            for _ in range(150):
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            run = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
                 "--checks", "not_a_server_error", "--max-examples", str(args.cases), "--workers", "2"],
            )  # fmt: skip
            alive = httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            made = httpx.post(
                f"{url}/v1/images/generations",
                json={"model": "gemini-3.1-flash-image", "prompt": "x"},
                timeout=60,
            ).status_code
            print(
                f"after the run: /healthz {'answers' if alive else 'is down'}, a generation answered {made}"
            )
            return run.returncode or (0 if alive and made == 200 else 1)
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())
