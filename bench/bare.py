"""The bare gateway: the least code that relays and stores each image, in Python on uvicorn.

    python -m bench.bare --port 9100 --upstream http://127.0.0.1:9000 --data-dir DIR

POST /v1/images/generations reads the client's JSON, asks the upstream for ``b64_json`` over one shared
aiohttp session, finds the base64 in the answer without parsing the rest, decodes it with pybase64,
writes it to a fresh folder (as pixelgate's local blob store does) and answers ``{"data": [{"url"}]}``,
or, for ``b64_json``, the upstream's base64 as it came rather than encoded again.

Nothing is checked, no database is touched, no key, price or task is kept: less than any real gateway
does. Its CPU per image (the ``bare`` rows of ``python -m bench relay``) is about what this machine
charges for moving and storing the bytes, a baseline that shows how much of a gateway's CPU per image is
its own. It is not a strict floor: it reads each answer whole, the plain way, and a gateway that streams
it (pixelgate) can use less CPU on a large image. Its files are never served.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import aiohttp
import orjson
import pybase64

from bench.upstream import Receive, Scope, Send, answer, read_body, serve

_KEY = b'"b64_json"'


class BareGateway:
    def __init__(self, upstream: str, data_dir: Path, port: int) -> None:
        self.upstream = f"{upstream}/v1/images/generations"
        self.data_dir = data_dir
        self.port = port
        self.numbers = itertools.count()
        self.http: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        body = await read_body(receive)
        if scope["method"] == "GET" and scope["path"] == "/healthz":
            await answer(send, 200, b"{}")
            return
        if scope["method"] != "POST" or scope["path"] != "/v1/images/generations":
            await answer(send, 404, b'{"error": {"message": "not here"}}')
            return
        asked = orjson.loads(body)
        b64 = await self._generate(asked["prompt"])
        name = self._store(pybase64.b64decode(b64, validate=True))
        if asked.get("response_format") == "b64_json":
            await answer(send, 200, b'{"data": [{"b64_json": "' + b64 + b'"}]}')
        else:
            url = f"http://127.0.0.1:{self.port}/files/{name}"
            await answer(send, 200, orjson.dumps({"data": [{"url": url}]}))

    async def _generate(self, prompt: str) -> bytes:
        assert self.http is not None
        request = {"model": "bench-image", "prompt": prompt, "response_format": "b64_json"}
        async with self.http.post(self.upstream, json=request) as response:
            answer = await response.read()
        start = answer.index(b'"', answer.index(b":", answer.index(_KEY) + len(_KEY))) + 1
        return answer[start : answer.index(b'"', start)]

    def _store(self, image: bytes) -> str:
        # On the event loop: a thread would cost more CPU than it saves, and CPU is what is measured.
        folder = str(next(self.numbers))
        (self.data_dir / folder).mkdir()
        (self.data_dir / folder / "out-0.png").write_bytes(image)
        return f"{folder}/out-0.png"

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "lifespan.shutdown":
            self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            await send({"type": "lifespan.startup.complete"})
        if self.http is not None:
            await self.http.close()
        await send({"type": "lifespan.shutdown.complete"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's base URL, without /v1")
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    serve(BareGateway(args.upstream, args.data_dir, args.port), args.port)


if __name__ == "__main__":
    main()
