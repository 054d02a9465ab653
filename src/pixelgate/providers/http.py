"""What every HTTP upstream has in common: one connection pool per channel, any vendor's error answer turned
into pixelgate's errors, images checked before they are trusted, and result URLs downloaded with a cap.

How an upstream's answer is classified (the router acts on the class, see ``providers/base.py``):

    429                          RateLimited        (Retry-After honoured)
    401, 403, a refused key      UpstreamError      upstream_auth_failed: the channel's key, not the caller's
    404                          UpstreamError      upstream_not_found: the channel doesn't serve the model
    408, timeouts                UpstreamTimeout
    other 4xx                    UpstreamRejected   the request itself; the upstream's message is passed on
    5xx, cut connections         UpstreamError
    2xx that is not what it says UpstreamError      upstream_malformed (no image, broken base64, HTML)

The channel's key never appears in a message: upstream text is redacted before it is quoted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import aiohttp
import orjson
import pybase64
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from pixelgate.config import ChannelConfig
from pixelgate.core.errors import (
    InvalidRequest,
    PixelgateError,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from pixelgate.core.images import inspect_image
from pixelgate.providers.answer_reader import AnswerReader, DecodedBase64, UnreadableAnswer
from pixelgate.providers.base import Generation, ProviderImage, abandons_upstream_task

T = TypeVar("T")

MAX_QUOTED_CHARS = 300
MAX_POLL_MISSES = 5
# Codes with which an upstream task says the request itself was refused.
REFUSAL_CODES = frozenset(
    {
        "invalid_request_error",
        "invalid_request",
        "content_policy_violation",
        "content_blocked",
        "moderation_blocked",
    }
)
MAX_UPSTREAM_IMAGE_PIXELS = 16384 * 16384
# Answers whose bodies are read at once, per channel. The rest wait with their bytes in the kernel's socket
# buffers: a thousand answers that arrive together, read side by side, would all be half in memory at once.
MAX_ANSWERS_READ_AT_ONCE = 32
# What an answer not being read may hold in memory before its connection stops reading (twice this, plus
# one read of the socket): the rest waits in the kernel. At aiohttp's default (64 KiB), 3,000 tasks in
# flight peaked at 702 MiB; at this, 288 MiB.
ANSWER_BUFFER_BYTES = 16 * 1024
_CODE = re.compile(r"^[A-Za-z][\w.-]{0,63}$")
_TITLE = re.compile(r"<title>(.*?)</title>", re.I | re.S)
_TAGS = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class UpstreamAnswer:
    """What an upstream answered, read in full: an error's body, or a 2xx body nobody streamed."""

    status: int
    headers: Mapping[str, str]
    content: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class UpstreamHttp:
    """One channel's HTTP client. ``channel`` names it in messages; ``secret`` is redacted from them.

    aiohttp, for its C parser and the few Python steps it takes per piece of an answer: with httpx2, a
    2.3 MB image answer cost three times the CPU (5.6 against 1.8 ms, the reader included). Its pool hands
    out a connection in constant time, so one pool serves a channel with a thousand requests in flight."""

    def __init__(
        self,
        *,
        channel: str,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        max_connections: int,
        secret: str | None,
        max_download_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.channel = channel
        self.secret = secret
        self.timeout = timeout
        self.max_download_bytes = max_download_bytes
        self.base_url = URL(base_url.rstrip("/"))
        self._background: set[asyncio.Task[None]] = set()
        self._reading = asyncio.Semaphore(MAX_ANSWERS_READ_AT_ONCE)
        self.max_connections = max_connections
        self.headers = headers
        self._proxies: dict[tuple[str, str], tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    def _proxy_for(self, url: URL) -> dict[str, Any]:
        """The proxy the environment names for ``url``'s origin (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``,
        as every other client of the upstream honours them), looked up once per origin. aiohttp's
        ``trust_env`` looks it up again for every request, with ``~/.netrc``, in two trips to a thread."""
        origin = (url.scheme, url.host or "")
        if origin not in self._proxies:
            try:
                self._proxies[origin] = get_env_proxy_for_url(url)
            except LookupError:  # none named, or NO_PROXY names the host
                self._proxies[origin] = (None, None)
        proxy, proxy_auth = self._proxies[origin]
        return {"proxy": proxy, "proxy_auth": proxy_auth}

    # The pools are made on first use, in the event loop they serve: a channel is built (and checked by
    # `pixelgate channels --offline`) where no loop runs.

    @cached_property
    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers=self.headers,
            timeout=self._timeouts(),
            connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0),
            read_bufsize=ANSWER_BUFFER_BYTES,
            json_serialize=_json_text,
        )

    @cached_property
    def downloads(self) -> aiohttp.ClientSession:
        """Result images are fetched without the channel's key (their URLs are signed by their host), on
        a pool of their own kept for the channel's life: a client per download pays its setup every time."""
        return aiohttp.ClientSession(
            timeout=self._timeouts(),
            connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0),
            read_bufsize=ANSWER_BUFFER_BYTES,
        )

    def _timeouts(self) -> aiohttp.ClientTimeout:
        # The timeout bounds each wait for the upstream (connecting, then each read), not the whole answer:
        # a 4K image that streams for minutes is fine as long as it keeps coming.
        return aiohttp.ClientTimeout(total=None, sock_connect=min(self.timeout, 10.0), sock_read=self.timeout)

    @classmethod
    def for_channel(
        cls, config: ChannelConfig, base_url: str, auth: dict[str, str], secret: str | None
    ) -> UpstreamHttp:
        """The client of one channel: its pool as large as its concurrency, its timeout per image."""
        return cls(
            channel=config.name,
            base_url=base_url,
            headers=auth,
            timeout=config.timeout,
            max_connections=config.concurrency,
            secret=secret,
        )

    async def close(self) -> None:
        # Upstream cancels still on their way go out before the connections close.
        await asyncio.gather(*self._background, return_exceptions=True)
        for pool in ("client", "downloads"):
            if pool in self.__dict__:  # made
                await self.__dict__[pool].close()

    def redact(self, text: str) -> str:
        if self.secret:
            text = text.replace(self.secret, "[redacted]")
        return text

    async def send(
        self,
        method: str,
        path: str,
        *,
        into: AnswerReader | None = None,
        json: Any = None,
        data: dict[str, str] | None = None,
        files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> UpstreamAnswer:
        """Send a request to ``path`` under the channel's base URL; return the answer if it is 2xx, else
        raise the error it stands for. ``files`` (with the fields of ``data``) go as multipart/form-data.
        With ``into``, a 2xx body goes to that reader as it arrives instead of being kept."""
        body: Any = _multipart(data or {}, files) if files else data
        try:
            async with self.client.request(
                method,
                f"{self.base_url}{path}",
                json=json,
                data=body,
                headers=headers,
                params=params,
                allow_redirects=False,
                **self._proxy_for(self.base_url),
            ) as response:
                ok = 200 <= response.status < 300
                async with self._reading:
                    if into is None or not ok:
                        content = await response.read()
                    else:
                        content = b""
                        into.expect(response.content_length)
                        async for piece in response.content.iter_any():
                            into.feed(piece)
                answer = UpstreamAnswer(response.status, response.headers, content)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.transport_error(exc) from None
        except UnreadableAnswer as exc:
            raise self.malformed(str(exc)) from None
        if not answer.ok:
            raise self.status_error(answer)
        return answer

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The 2xx JSON answer to a request; its long strings (images in base64) come decoded, as
        ``DecodedBase64`` (see ``answer_reader.py``: a 4K image is 36 MB of base64)."""
        reader = AnswerReader()
        answer = await self.send(method, path, into=reader, **kwargs)
        try:
            return reader.result()
        except UnreadableAnswer:
            kind = answer.headers.get("content-type", "no content type").split(";")[0]
            described = self.describe_text(kind, reader.text())
            raise self.malformed(f"an answer that is not JSON: {described}") from None

    async def download(self, url: str) -> bytes:
        """Fetch a result image by URL (no auth header: result URLs are signed by their host)."""
        try:
            target = self.base_url.join(URL(url))
            if target.scheme not in ("http", "https") or not target.host:
                raise ValueError(url)
        except ValueError:
            raise self.malformed(f"a result URL that is not a URL: {self.quote(url)}") from None
        try:
            async with self.downloads.get(target, **self._proxy_for(target)) as response:
                if not 200 <= response.status < 300:
                    answer = UpstreamAnswer(response.status, response.headers, await response.read())
                    raise self.malformed(
                        f"HTTP {response.status} for its result image: {self.describe_body(answer)}"
                    )
                if (response.content_length or 0) > self.max_download_bytes:
                    raise self.too_large_download()
                chunks, size = [], 0
                async with self._reading:
                    async for chunk in response.content.iter_any():
                        size += len(chunk)
                        if size > self.max_download_bytes:
                            raise self.too_large_download()
                        chunks.append(chunk)
                return b"".join(chunks)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.transport_error(exc) from None

    def too_large_download(self) -> UpstreamError:
        return self.malformed(f"a result image of more than {self.max_download_bytes:,} bytes")

    async def poll(
        self, path: str, *, interval: float, max_interval: float, running: frozenset[str]
    ) -> dict[str, Any]:
        """GET an upstream task until its status leaves ``running``; return its last state.

        A few failed polls in a row are waited out (the task runs on upstream whatever our GET met);
        the channel's timeout bounds the whole wait."""
        misses = 0
        while True:
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, max_interval)
            try:
                answer = await self.json("GET", path)
            except (RateLimited, UpstreamError) as exc:
                if getattr(exc, "code", "") == "upstream_not_found" or misses >= MAX_POLL_MISSES:
                    raise
                misses += 1
                continue
            misses = 0
            if not isinstance(answer, dict):
                raise self.malformed(f"a task status that is not a JSON object: {self.quote(str(answer))}")
            if str(answer.get("status", "")).lower() not in running:
                return answer

    async def list_models(self, path: str, field: str, **params: Any) -> str:
        """A channel check that costs nothing upstream: list the models (which also proves the key)."""
        answer = await self.json("GET", path, params=params or None)
        models = answer.get(field) if isinstance(answer, dict) else None
        return f"{len(models) if isinstance(models, list) else 0} models listed"

    async def started(
        self,
        generation: Generation,
        create: Callable[[], Awaitable[T]],
        task_of: Callable[[T], str | None],
        cancel_path_of: Callable[[str], str | None],
    ) -> tuple[T, bool]:
        """``create()``'s answer and whether the upstream task it made (``task_of`` the answer: None when
        the answer is already the result) was saved with the pixelgate task so that a restart resumes it.

        Creating the task and saving its id are one step that a cancel cannot split: a cancel that comes
        meanwhile takes effect once the id is saved (so that whoever takes the task over polls it instead
        of paying for another), or once the task is stopped upstream, if the id could not be saved (the
        pixelgate task was cancelled: nobody else will ever know of it)."""

        async def step() -> tuple[T, bool]:
            answer = await create()
            task_id = task_of(answer)
            saved = False
            if task_id is not None and generation.remember is not None:
                saved = await generation.remember({"task": task_id})
            return answer, saved

        stepping = asyncio.ensure_future(step())
        try:
            return await asyncio.shield(stepping)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                answer, saved = await stepping
                task_id = task_of(answer)
                if task_id is not None and not saved and (path := cancel_path_of(task_id)):
                    self.cancel_quietly(path)
            raise

    async def follow(
        self,
        *,
        saved: bool,
        task_path: str,
        cancel_path: str | None,
        interval: float,
        max_interval: float,
        running: frozenset[str],
    ) -> dict[str, Any]:
        """Poll an upstream task to its end. Stopped upstream when it is given up on here (a timeout, polls
        that keep failing), or when it was not ``saved`` with a running task (made here as a cancel came):
        then nobody else knows of it."""
        try:
            return await self.poll(task_path, interval=interval, max_interval=max_interval, running=running)
        except BaseException as exc:
            if cancel_path and (abandons_upstream_task(exc) or not saved):
                self.cancel_quietly(cancel_path)
            raise

    def cancel_quietly(self, path: str) -> None:
        """Ask the upstream to stop a task we no longer want, without waiting for (or minding) its answer."""

        async def cancel() -> None:
            with contextlib.suppress(Exception):
                await self.send("POST", path)

        task = asyncio.get_running_loop().create_task(cancel())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def task_failed(self, answer: dict[str, Any]) -> PixelgateError:
        """The error an upstream task ended with: a refusal of the request is not retried, the rest is."""
        error = answer.get("error")
        if isinstance(error, dict):
            message, code = (
                str(error.get("message") or error),
                str(error.get("code") or error.get("type") or ""),
            )
        else:
            message, code = str(error or answer.get("fail_reason") or "no reason given"), ""
        status = str(answer.get("status", "failed"))
        if code in REFUSAL_CODES:
            return UpstreamRejected(f"the upstream refused the request: {self.quote(message)}", code=code)
        return UpstreamError(
            f"channel {self.channel!r}: the upstream's task ended {status}: {self.quote(message)}",
            code="upstream_task_failed",
        )

    # -- turning what came back into pixelgate's errors ---------------------------------------------------

    def transport_error(self, exc: aiohttp.ClientError | TimeoutError) -> UpstreamError:
        # The exception's own text can carry the URL; only its kind is quoted.
        if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors too
            return UpstreamTimeout(
                f"channel {self.channel!r}: the upstream did not answer within {self.timeout:g} s "
                f"({type(exc).__name__})",
                code="upstream_timeout",
            )
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.InvalidURL):
            return UpstreamError(
                f"channel {self.channel!r}: cannot connect to the upstream ({type(exc).__name__})",
                code="upstream_unreachable",
            )
        return UpstreamError(
            f"channel {self.channel!r}: the upstream closed the connection before its answer was complete "
            f"({type(exc).__name__})",
            code="upstream_connection_lost",
        )

    def status_error(self, response: UpstreamAnswer) -> PixelgateError:
        status = response.status
        message, code, reason, retry_delay = self._error_fields(response)
        said = f"channel {self.channel!r}: the upstream answered HTTP {status}: {message}"
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return RateLimited(
                said,
                retry_after=retry_after if retry_after is not None else retry_delay,
                code="upstream_rate_limited",
            )
        if status in (401, 403) or reason in ("API_KEY_INVALID", "API_KEY_EXPIRED"):
            return UpstreamError(
                f"channel {self.channel!r}: the upstream refused the channel's key (HTTP {status}): {message}",
                code="upstream_auth_failed",
            )
        if status == 404:
            return UpstreamError(said, code="upstream_not_found")
        if code == "FAILED_PRECONDITION":
            # Google's word for "not with this project" (billing off, a region it doesn't serve): the
            # channel's trouble, which another channel may not have.
            return UpstreamError(said, code="upstream_unavailable")
        if status == 408:
            return UpstreamTimeout(said, code="upstream_timeout")
        if 400 <= status < 500:
            return UpstreamRejected(
                f"the upstream refused the request (HTTP {status}): {message}",
                code=code if code and _CODE.match(code) else "upstream_rejected",
            )
        return UpstreamError(said, code="upstream_unavailable" if status == 503 else "upstream_error")

    def _error_fields(self, response: UpstreamAnswer) -> tuple[str, str | None, str | None, float | None]:
        """The upstream's message, code, Google's ErrorInfo reason and RetryInfo delay, from whichever
        shape it answers in."""
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self.describe_body(response), None, None, None
        error = body.get("error", body) if isinstance(body, dict) else body
        if isinstance(error, str):
            return self.quote(error), None, None, None
        if not isinstance(error, dict):
            return self.quote(json.dumps(body)), None, None, None
        message = error.get("message") or error.get("detail") or json.dumps(error)
        code = (
            error.get("code")
            if isinstance(error.get("code"), str)
            else error.get("type") or error.get("status")
        )
        reason, delay = None, None
        for detail in error.get("details") or []:
            if not isinstance(detail, dict):
                continue
            if detail.get("reason"):
                reason = str(detail["reason"])
            if isinstance(detail.get("retryDelay"), str):  # google.rpc.RetryInfo: "12s", "0.5s"
                delay = parse_retry_after(detail["retryDelay"].removesuffix("s"))
        return self.quote(str(message)), str(code) if code else None, reason, delay

    def describe_body(self, response: UpstreamAnswer) -> str:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return self.describe_text(kind, response.text)

    def describe_text(self, kind: str, text: str) -> str:
        start = text.lstrip()[:64].lower()
        if "html" in kind or start.startswith(("<!doctype html", "<html")):
            title = _TITLE.search(text)
            words = (title.group(1) if title else _TAGS.sub(" ", text)).split()
            return f"an HTML page ({self.quote(' '.join(words)) or 'empty'})"
        if "xml" in kind or start.startswith("<"):
            # An object store's error (S3, GCS): <Error><Code>AccessDenied</Code><Message>…
            return f"an XML document ({self.quote(' '.join(_TAGS.sub(' ', text).split())) or 'empty'})"
        if not text.strip():
            return f"an empty {kind} body"
        return f"{kind}: {self.quote(text)}"

    def quote(self, text: str) -> str:
        """Upstream text fit to put in a message: on one line, the key redacted, then cut short."""
        text = self.redact(" ".join(text.split()))
        return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 1] + "…"

    def malformed(self, what: str) -> UpstreamError:
        return UpstreamError(f"channel {self.channel!r}: the upstream sent {what}", code="upstream_malformed")

    # -- images ------------------------------------------------------------------------------------------

    def decode_base64(self, text: object, where: str) -> bytes:
        if isinstance(text, DecodedBase64):
            return text.data
        if not isinstance(text, str) or not text:
            raise self.malformed(f"no image data in {where}")
        try:
            return pybase64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            try:  # some upstreams (and Google's own SDK) use the URL-safe alphabet
                return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            except (binascii.Error, ValueError):
                raise self.malformed(f"broken base64 in {where} (starts with {text[:16]!r})") from None

    async def image(self, data: bytes, where: str, text: str | None = None) -> ProviderImage:
        """Check that ``data`` is a whole image before anyone stores or bills it: by its structure, on the
        event loop (0.3 ms for a 4K PNG's chunks, less than a hop to a thread; see ``inspect_image``)."""
        try:
            info = inspect_image(data, field=where, max_pixels=MAX_UPSTREAM_IMAGE_PIXELS, structure_only=True)
        except InvalidRequest as exc:
            raise self.malformed(f"something that is not a usable image in {where}: {exc.message}") from None
        return ProviderImage(
            data=data, mime_type=info.mime_type, width=info.width, height=info.height, text=text
        )


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _multipart(fields: dict[str, str], files: list[tuple[str, tuple[str, bytes, str]]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, content_type) in files:
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: either delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
        if not math.isfinite(seconds):
            return None
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds)


def as_count(value: object) -> int:
    """A token count from an upstream's usage block; anything that is not a whole number counts 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def bearer(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
