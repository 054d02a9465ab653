"""How ``providers/http.py`` reads what an upstream answered: each vendor's error shape turned into
pixelgate's errors, ``Retry-After`` in both its forms and Google's ``RetryInfo``, bodies described without
pasting them, and the channel key redacted before anything is cut short."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from conftest import png_bytes
from pixelgate.catalog import default_catalog
from pixelgate.catalog.validation import validate
from pixelgate.core.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamRejected
from pixelgate.core.images import inspect_image
from pixelgate.core.png import png_chunks
from pixelgate.core.request import ImageRequest, Limits
from pixelgate.providers.base import LEFT_TO_OTHERS, Generation
from pixelgate.providers.http import UpstreamAnswer, UpstreamHttp, parse_retry_after
from upstreams.client import channel_client

KEY = "sk-live-0123456789abcdef"


@pytest.fixture()
async def http() -> Any:
    upstream = channel_client(9, path="/v1", max_connections=1, timeout=5, secret=KEY)
    yield upstream
    await upstream.close()


def answer(status: int, body: Any = None, *, text: str | None = None, **headers: str) -> UpstreamAnswer:
    if text is not None:
        return UpstreamAnswer(status, {"content-type": "text/plain", **headers}, text.encode())
    return UpstreamAnswer(status, {"content-type": "application/json", **headers}, json.dumps(body).encode())


Handler = Callable[[web.Request], Awaitable[web.Response]]


@asynccontextmanager
async def upstream_serving(handler: Handler) -> AsyncIterator[UpstreamHttp]:
    """A channel's client of a real HTTP server on a loopback port, answering every request with
    ``handler``; the channel's base URL ends in ``/v1``."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    http = channel_client(port, path="/v1", timeout=5, secret=KEY)
    try:
        yield http
    finally:
        await http.close()
        await runner.cleanup()


def google_error(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "status": status, "message": message, "details": list(details)}}


def test_google_429_takes_its_wait_from_retry_info(http: UpstreamHttp) -> None:
    body = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"},
    )
    error = http.status_error(answer(429, body))
    assert isinstance(error, RateLimited) and error.retry_after == 17
    assert error.message == (
        "channel 'chan': the upstream answered HTTP 429: Resource has been exhausted (e.g. check quota)."
    )
    # The header, where there is one, wins.
    assert http.status_error(answer(429, body, **{"retry-after": "3"})).retry_after == 3


def test_google_failed_precondition_is_the_channel_s_trouble(http: UpstreamHttp) -> None:
    body = google_error(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")
    error = http.status_error(answer(400, body))
    assert type(error) is UpstreamError and error.code == "upstream_unavailable"
    plain = http.status_error(answer(400, google_error(400, "INVALID_ARGUMENT", "bad aspect ratio")))
    assert isinstance(plain, UpstreamRejected) and plain.message.endswith("bad aspect ratio")


def test_google_refused_key_is_an_auth_failure_not_the_caller_s_400(http: UpstreamHttp) -> None:
    body = google_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
    )
    error = http.status_error(answer(400, body))
    assert type(error) is UpstreamError and error.code == "upstream_auth_failed"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5", 5.0), ("0.5", 0.5), ("-3", 0.0), ("inf", None), ("nan", None), ("soon", None), ("", None)],
)
def test_retry_after_seconds(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    parsed = parse_retry_after(later)
    assert parsed is not None and 28 <= parsed <= 31


def test_an_xml_error_is_called_xml_and_html_is_summarised(http: UpstreamHttp) -> None:
    xml = (
        "<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    )
    described = http.describe_body(answer(403, text=xml, **{"content-type": "application/xml"}))
    assert described == "an XML document (AccessDenied Request has expired)"
    page = "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    assert http.describe_body(answer(502, text=page, **{"content-type": "text/html"})) == (
        "an HTML page (502 Bad Gateway)"
    )


def test_the_key_is_redacted_before_a_long_message_is_cut(http: UpstreamHttp) -> None:
    # The key sits across the cut: cutting first would leave a prefix of it in the message.
    message = "x" * 280 + f" key {KEY} was refused"
    error = http.status_error(answer(400, {"error": {"message": message}}))
    assert KEY[:10] not in error.message and "[redacted]" in error.message
    assert len(error.message) < 400


async def test_a_result_url_that_is_not_a_url_is_a_malformed_answer(http: UpstreamHttp) -> None:
    with pytest.raises(UpstreamError) as caught:
        await http.download("http://[::1")
    assert caught.value.code == "upstream_malformed"
    assert "a result URL that is not a URL" in caught.value.message


async def test_an_upstream_png_is_checked_by_its_chunks_not_its_crcs(http: UpstreamHttp) -> None:
    """An upstream's PNG came through TCP's checksums and HTTP's framing: what a transfer can do to it is
    cut it short, and that is refused wherever the cut falls. Its CRCs are not computed (the cost of a
    4K PNG's is milliseconds per image), so one made with a wrong CRC is taken as it is."""
    png = png_bytes(48, 32)
    image = await http.image(png, "data[0].b64_json")
    assert (image.mime_type, image.width, image.height) == ("image/png", 48, 32)

    assert (await http.image(with_a_wrong_crc(png), "data[0].b64_json")).width == 48

    first_data = next(start for kind, start, _ in png_chunks(png) if kind == b"IDAT")

    for cut in (len(png) - 1, len(png) - 12, len(png) // 2, 40):
        with pytest.raises(UpstreamError) as caught:
            await http.image(png[:cut], "data[0].b64_json")
        assert caught.value.code == "upstream_malformed"
        assert "something that is not a usable image in data[0].b64_json" in caught.value.message
        if cut >= first_data:  # Pillow opens it: the check of its chunks says what is wrong
            assert f"a PNG cut short: its {cut:,} bytes end before its IEND chunk" in caught.value.message


def test_a_caller_s_png_with_a_wrong_crc_is_refused() -> None:
    png = png_bytes(48, 32)
    inspect_image(png, field="image", max_pixels=10_000)
    with pytest.raises(InvalidRequest) as caught:
        inspect_image(with_a_wrong_crc(png), field="image", max_pixels=10_000)
    assert caught.value.code == "invalid_image"


def with_a_wrong_crc(png: bytes) -> bytes:
    """``png`` with the CRC of its last IDAT chunk flipped (Pillow does not check the IEND's)."""
    *_, (_, _, end) = (chunk for chunk in png_chunks(png) if chunk[0] == b"IDAT")
    return png[:end] + bytes(b ^ 0xFF for b in png[end : end + 4]) + png[end + 4 :]


# -- following an upstream task: who stops it ----------------------------------------------------------------


def generation_remembering(saved: bool, into: list[dict[str, Any]] | None = None) -> Generation:
    request, spec = validate(
        ImageRequest(model="gemini-3.1-flash-image", prompt="x"), default_catalog(), Limits()
    )

    async def remember(state: dict[str, Any]) -> bool:
        if into is not None:
            into.append(state)
        return saved

    return Generation(request=request, spec=spec, remember=remember)


@pytest.mark.parametrize(
    ("saved", "cancelled_upstream"),
    [
        (True, False),  # the process stops: the id is saved first, and whoever takes over polls it
        (False, True),  # the task was cancelled meanwhile: nobody will poll it, so it is stopped upstream
    ],
)
async def test_a_cancel_during_creation_waits_until_the_upstream_task_is_saved(
    saved: bool, cancelled_upstream: bool
) -> None:
    """Cancelled while the upstream makes its task: the cancel takes effect only once the task's id is
    saved with the pixelgate task (or the task is stopped upstream), never between the two."""
    seen: list[str] = []
    asked, answer_now = asyncio.Event(), asyncio.Event()

    async def upstream(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        if request.path.endswith("/tasks"):
            asked.set()
            await answer_now.wait()
        return web.json_response({"id": "up-2", "status": "queued"})

    remembered: list[dict[str, Any]] = []
    async with upstream_serving(upstream) as http:

        async def create() -> Any:
            return await http.json("POST", "/tasks")

        starting = asyncio.ensure_future(
            http.started(
                generation_remembering(saved, remembered),
                create,
                lambda made: made["id"],
                lambda task: f"/tasks/{task}/cancel",
            )
        )
        await asyncio.wait_for(asked.wait(), 5)
        starting.cancel(LEFT_TO_OTHERS)
        await asyncio.sleep(0.01)
        assert not starting.done(), "the cancel waits for the step to end"
        answer_now.set()
        with pytest.raises(asyncio.CancelledError):
            await starting
        assert remembered == [{"task": "up-2"}]
        await asyncio.gather(*http._background)
    assert ("POST /v1/tasks/up-2/cancel" in seen) is cancelled_upstream


@pytest.mark.parametrize(
    ("saved", "stop", "cancelled_upstream"),
    [
        (True, LEFT_TO_OTHERS, False),  # saved: a restart resumes it, a cancel's caller stops it
        (False, LEFT_TO_OTHERS, True),  # a cancel came before it was saved: nobody else knows of it
        (True, None, True),  # given up on here (a timeout cancels without the message)
    ],
)
async def test_who_stops_an_upstream_task(saved: bool, stop: str | None, cancelled_upstream: bool) -> None:
    seen: list[str] = []
    polled = asyncio.Event()

    async def upstream(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path}")
        if request.method == "GET":
            polled.set()
        return web.json_response({"id": "up-1", "status": "processing"})

    async with upstream_serving(upstream) as http:
        following = asyncio.ensure_future(
            http.follow(
                saved=saved,
                task_path="/tasks/up-1",
                cancel_path="/tasks/up-1/cancel",
                interval=0.01,
                max_interval=0.01,
                running=frozenset({"processing"}),
            )
        )
        await asyncio.wait_for(polled.wait(), 5)
        following.cancel(stop)
        with pytest.raises(asyncio.CancelledError):
            await following
        await asyncio.gather(*http._background)
    assert ("POST /v1/tasks/up-1/cancel" in seen) is cancelled_upstream


@asynccontextmanager
async def forward_proxy(seen: list[str]) -> AsyncIterator[int]:
    """A real HTTP forward proxy on a loopback port that answers every request itself (``{"via": "proxy"}``)
    and records its request line: a client that goes through a proxy asks it for the whole URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        seen.append(head.split("\r\n", 1)[0])
        length = next(
            (
                int(line.split(":", 1)[1])
                for line in head.split("\r\n")
                if line.lower().startswith("content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        body = b'{"via": "proxy"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("no_proxy", [None, "upstream.invalid"])
async def test_the_environment_s_proxy_is_used_unless_no_proxy_names_the_host(
    no_proxy: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HTTP_PROXY``/``HTTPS_PROXY`` and ``NO_PROXY``, as every other client of an upstream honours them
    (read once per origin: a second request goes the same way)."""
    seen: list[str] = []
    async with forward_proxy(seen) as port:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        if no_proxy is not None:
            monkeypatch.setenv("NO_PROXY", no_proxy)
        http = UpstreamHttp(
            channel="chan",
            base_url="http://upstream.invalid/v1",
            headers={},
            timeout=5,
            max_connections=2,
            secret=None,
        )
        try:
            if no_proxy is None:
                for _ in range(2):
                    assert await http.json("POST", "/images/generations", json={"prompt": "x"}) == {
                        "via": "proxy"
                    }
                assert seen == ["POST http://upstream.invalid/v1/images/generations HTTP/1.1"] * 2
            else:
                with pytest.raises(
                    UpstreamError, match="chan"
                ):  # upstream.invalid, asked directly, is nowhere
                    await http.json("POST", "/images/generations", json={"prompt": "x"})
                assert seen == []
        finally:
            await http.close()
