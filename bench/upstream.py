"""A stand-in OpenAI Images upstream for benchmarks: the same fixed PNG for every request, as fast as
uvicorn can send it, so that what is measured is what sits between the client and it.

    python -m bench.upstream --port 9000 --image 1k|4k [--latency SECONDS]

POST /v1/images/generations and /v1/images/edits (multipart, read in full and dropped) answer
``{"created", "data": [{"b64_json"}]}``, or ``[{"url"}]`` for ``response_format: "url"``, pointing at
GET /files/image.png. GET /stats counts the generations answered, so a benchmark can tell that each
request reached the upstream exactly once, and gives the size of the PNG it answers with.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from PIL import Image

SIZES = {"512": (512, 512), "1k": (1024, 1024), "4k": (5504, 3072)}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def make_png(width: int, height: int) -> bytes:
    """A PNG about as large as an image model's: noise keeps it from compressing to nothing (1K is about
    1.7 MB, 4K about 27 MB)."""
    noise = Image.effect_noise((width, height), 40)
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (noise, gradient, Image.blend(noise, gradient, 0.5)))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


class FixedImageUpstream:
    def __init__(self, png: bytes, latency: float, port: int) -> None:
        self.png = png
        self.latency = latency
        self.served = 0
        created = int(time.time())
        b64 = base64.b64encode(png).decode()
        self.b64_answer = json.dumps({"created": created, "data": [{"b64_json": b64}]}).encode()
        url = f"http://127.0.0.1:{port}/files/image.png"
        self.url_answer = json.dumps({"created": created, "data": [{"url": url}]}).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        path, method = scope["path"], scope["method"]
        body = await read_body(receive)
        if method == "POST" and path in ("/v1/images/generations", "/v1/images/edits"):
            if self.latency:
                await asyncio.sleep(self.latency)
            self.served += 1
            wants_url = (
                path.endswith("generations") and json.loads(body or b"{}").get("response_format") == "url"
            )
            await answer(send, 200, self.url_answer if wants_url else self.b64_answer)
        elif method == "GET" and path == "/files/image.png":
            await answer(send, 200, self.png, "image/png")
        elif method == "GET" and path == "/stats":
            stats = {"generations": self.served, "image_bytes": len(self.png)}
            await answer(send, 200, json.dumps(stats).encode())
        elif method == "GET" and path in ("/healthz", "/v1/models"):
            await answer(send, 200, b'{"object": "list", "data": [{"id": "bench-image", "object": "model"}]}')
        else:
            await answer(send, 404, b'{"error": {"message": "not here", "type": "invalid_request_error"}}')


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def answer(send: Send, status: int, body: bytes, content_type: str = "application/json") -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(app: Any, port: int) -> None:
    """Serve the ASGI ``app`` on a loopback port, as the benchmarks' stand-ins all are: no limit on
    connections, kept alive between requests."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        limit_concurrency=None,
        timeout_keep_alive=120,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--image", choices=sorted(SIZES), default="1k")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each image is answered")
    args = parser.parse_args()
    serve(FixedImageUpstream(make_png(*SIZES[args.image]), args.latency, args.port), args.port)


if __name__ == "__main__":
    main()
