"""Image URLs are fetched from public addresses only (``core/safe_urls.py``): loopback, private, link-local
(cloud metadata) addresses are refused through every field that takes a URL, in every dialect, also when
a host name resolves to them and when a redirect leads to them; an operator's ``--fetch-allow`` lets one
private host in, and its images are fetched within the redirect, size and content checks."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from conftest import MakeServer, ServerProcess, free_port, png_bytes

FLASH = "gemini-3.1-flash-image"
PNG = png_bytes(40, 30, (10, 200, 10))
ALLOWED_HOST = "127.0.0.2"  # a loopback address of its own, which the allowing server lets in


@pytest.fixture(scope="module")
def images() -> Iterator[str]:
    """A host of images on 127.0.0.2: /cat.png, /hello.txt, /to?url=… (a redirect), /loop (endless)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path)
            if path.path == "/cat.png":
                self._answer(200, PNG, "image/png")
            elif path.path == "/hello.txt":
                self._answer(200, b"hello", "text/plain")
            elif path.path == "/to":
                self._redirect(parse_qs(path.query)["url"][0])
            elif path.path == "/loop":
                self._redirect("/loop")
            else:
                self._answer(404, b"not here", "text/plain")

        def _answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((ALLOWED_HOST, 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://{ALLOWED_HOST}:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def plain(make_server: MakeServer) -> ServerProcess:
    """A server with the default policy (which address is refused doesn't depend on the database)."""
    return make_server("sqlite", "--emulate")


@pytest.fixture(scope="module")
def allowing(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", "--fetch-allow", ALLOWED_HOST)


# -- each field that takes a URL, in each dialect -------------------------------------------------------------

Send = Callable[[httpx.Client, str], httpx.Response]


def openai_field(field: str) -> Send:
    def send(client: httpx.Client, url: str) -> httpx.Response:
        item: Any = {"image_url": url} if field == "images" else url
        return client.post("/v1/images/generations", json={"model": FLASH, "prompt": "x", field: [item]})

    return send


def gemini_file_data(client: httpx.Client, url: str) -> httpx.Response:
    parts = [{"text": "x"}, {"fileData": {"mimeType": "image/png", "fileUri": url}}]
    return client.post(f"/v1beta/models/{FLASH}:generateContent", json={"contents": [{"parts": parts}]})


def interactions_uri(client: httpx.Client, url: str) -> httpx.Response:
    blocks = [{"type": "text", "text": "x"}, {"type": "image", "uri": url, "mime_type": "image/png"}]
    return client.post("/v1beta/interactions", json={"model": FLASH, "input": blocks})


FIELDS = {
    "openai-reference_images": openai_field("reference_images"),
    "openai-image_urls": openai_field("image_urls"),
    "openai-images": openai_field("images"),
    "gemini-fileData": gemini_file_data,
    "interactions-uri": interactions_uri,
}


def refused(response: httpx.Response, *fragments: str) -> None:
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    for fragment in (*fragments, "only public addresses can be fetched"):
        assert fragment in message, message


@pytest.mark.parametrize("send", FIELDS.values(), ids=FIELDS.keys())
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/cat.png", "127.0.0.1, a loopback address"),
        ("http://[::1]:{port}/cat.png", "::1, a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a cloud metadata address"),
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "a NAT64 address which carries 169.254.169.254"),
        ("http://10.0.0.1/cat.png", "10.0.0.1, a private address"),
        ("http://localhost:{port}/cat.png", "localhost (127.0.0.1), a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/cat.png", "a loopback address"),
        ("http://0.0.0.0:{port}/cat.png", "0.0.0.0, the unspecified address"),
    ],
    ids=["127.0.0.1", "::1", "metadata", "nat64-metadata", "10.0.0.1", "localhost", "ipv4-mapped", "0.0.0.0"],
)
def test_what_only_the_server_can_reach_is_refused(
    plain: ServerProcess, send: Send, url: str, reason: str
) -> None:
    with httpx.Client(base_url=plain.url, timeout=30) as client:
        refused(send(client, url.format(port=plain.port)), reason)


def test_a_redirect_to_loopback_is_refused(allowing: ServerProcess, images: str) -> None:
    target = f"http://127.0.0.1:{allowing.port}/healthz"
    with httpx.Client(base_url=allowing.url, timeout=30) as client:
        response = openai_field("reference_images")(client, f"{images}/to?url={target}")
    refused(response, f"{target!r} points at 127.0.0.1, a loopback address")


def test_the_allow_list_lets_one_host_in(allowing: ServerProcess, images: str) -> None:
    with httpx.Client(base_url=allowing.url, timeout=30) as client:
        for send in FIELDS.values():
            response = send(client, f"{images}/cat.png")
            assert response.status_code == 200, response.text
        # A redirect within the allowed host is followed.
        redirected = openai_field("image_urls")(client, f"{images}/to?url=/cat.png")
        assert redirected.status_code == 200, redirected.text


@pytest.mark.parametrize(
    ("path", "status", "code", "fragment"),
    [
        ("/loop", 400, "image_fetch_failed", "redirected more than 5 times"),
        ("/hello.txt", 400, "invalid_image", "is not a readable image (5 bytes"),
        ("/missing.png", 400, "image_fetch_failed", "the server answered HTTP 404"),
    ],
)
def test_an_allowed_host_still_has_its_limits(
    allowing: ServerProcess, images: str, path: str, status: int, code: str, fragment: str
) -> None:
    with httpx.Client(base_url=allowing.url, timeout=30) as client:
        response = openai_field("reference_images")(client, f"{images}{path}")
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and fragment in error["message"], error


def test_an_allow_list_entry_that_is_neither_network_nor_host_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pixelgate", "serve", "--emulate", "--port", str(free_port()),
         "--data-dir", str(tmp_path), "--fetch-allow", "10.0.0.0/8,not a host"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"},
    )  # fmt: skip
    assert result.returncode != 0
    said = " ".join((result.stdout + result.stderr).split())
    assert "'not a host' is neither an address, a network (10.0.0.0/8) nor a host name" in said, said
